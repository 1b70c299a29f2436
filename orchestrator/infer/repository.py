"""The model repository the managed Triton serves: one `whisper` model per configured model.

Triton names a model after its directory, so several Whisper models need
several directories. We build them, per server, in a fresh directory under
the environment's cache: each a copy of `whisper/` with its own name and
weights, beside links to the other models (`micro_chunker`). The weights are
resolved here, before Triton starts: packaged ones are checked against their
digests, Hub ones fetched (with progress on stderr) or found in the cache, and
a failure stops the start with its reason instead of a model Triton cannot load.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from pathlib import Path

from longscribe_core import weights
from orchestrator.infer.catalogue import Catalogue
from orchestrator.settings import Settings

log = logging.getLogger("longscribe.triton")
TEMPLATE = "whisper"  # the model directory each Whisper model is copied from
_NAME = re.compile(r'^name:\s*"[^"]*"', re.MULTILINE)
_MODEL_PARAM = re.compile(r'(\{\s*key:\s*"model",\s*value:\s*\{\s*string_value:\s*)"[^"]*"')


class ModelsUnavailable(RuntimeError):
    """A configured model's weights are missing or corrupt: the service does not start."""


def resolve_all(catalogue: Catalogue) -> dict[str, str]:
    """Each model's Triton name -> its CTranslate2 directory (blocking: hashing, maybe downloading)."""
    resolved: dict[str, str] = {}
    for model in catalogue.models:
        try:
            resolved[model.triton_name] = weights.resolve(model.source)
        except (weights.WeightsNotInstalled, weights.WeightsCorrupt) as exc:
            raise ModelsUnavailable(str(exc)) from exc
        log.info(
            "model %s: %s (%s) -> %s",
            model.name,
            model.source,
            weights.describe(model.source),
            resolved[model.triton_name],
        )
    return resolved


def whisper_config(template: str, triton_name: str, weights_dir: str) -> str:
    """The template's config.pbtxt with this model's name and weights."""
    text, named = _NAME.subn(f"name: {json.dumps(triton_name)}", template, count=1)
    text, weighted = _MODEL_PARAM.subn(lambda m: m.group(1) + json.dumps(weights_dir), text, count=1)
    if not (named and weighted):
        raise ModelsUnavailable(f"{TEMPLATE}/config.pbtxt lost its `name` or `model` parameter; cannot derive models")
    return text


def build(settings: Settings, resolved: dict[str, str], parent: Path) -> Path:
    """A new repository under `parent`: the Whisper models as resolved, the others linked."""
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="repository-", dir=parent))
    source = settings.model_repository
    for entry in source.iterdir():
        if entry.name != TEMPLATE and (entry / "config.pbtxt").is_file():
            (root / entry.name).symlink_to(entry.resolve(), target_is_directory=True)
    template = (source / TEMPLATE / "config.pbtxt").read_text()
    for triton_name, weights_dir in resolved.items():
        model_dir = root / triton_name
        (model_dir / "1").mkdir(parents=True)
        (model_dir / "config.pbtxt").write_text(whisper_config(template, triton_name, weights_dir))
        shutil.copy2(source / TEMPLATE / "1" / "model.py", model_dir / "1" / "model.py")
    return root


def load_list(settings: Settings, catalogue: Catalogue) -> list[str]:
    """Every Whisper model, then the other models of `triton_models` (the micro chunker, the speaker encoder).

    The speaker encoder is left out where the repository lacks it: that service serves all but diarization
    (refused with DiarizationUnsupported); any other model missing stops Triton's start, as it should."""
    whisper = [m.triton_name for m in catalogue.models]
    others = [m for m in settings.triton_models if m != TEMPLATE and m not in whisper]
    held = (settings.model_repository / settings.speaker_model / "config.pbtxt").is_file()
    return whisper + [m for m in others if m != settings.speaker_model or held]
