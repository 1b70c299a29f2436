"""Model sources: packaged weights checked against pinned digests, faster-whisper's names, the Hub's
cache offline (laid out as huggingface_hub lays it out), and clear words when weights are missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from longscribe_core import hub, weights

from ..hub_cache import hub_cache_from


def flip_one_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_faster_whispers_short_names_map_to_the_same_repositories() -> None:
    from faster_whisper.utils import _MODELS  # the table our copy was taken from

    assert hub.ALIASES == dict(_MODELS)


def test_packaged_weights_match_their_pinned_digests() -> None:
    assert Path(weights.resolve("tiny.en"), "model.bin").is_file()
    assert Path(weights.resolve("base"), "model.bin").is_file()


def test_a_copy_with_one_byte_flipped_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "tiny.en"
    shutil.copytree(weights.resolve("tiny.en"), copy)
    weights.verify(copy, "tiny.en")  # the faithful copy passes
    flip_one_byte(copy / "model.bin", offset=(copy / "model.bin").stat().st_size // 2)
    with pytest.raises(weights.WeightsCorrupt, match=r"tiny\.en.*model\.bin.*SHA-256"):
        weights.verify(copy, "tiny.en")


def test_a_corrupted_join_is_redone_and_checked_after_joining(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LONGSCRIBE_CACHE_DIR", str(tmp_path))
    joined = Path(weights.resolve("base")) / "model.bin"
    assert joined.is_relative_to(tmp_path)
    flip_one_byte(joined, offset=1000)  # same size: the size check alone would keep it
    assert (
        weights.sha256_of(Path(weights.resolve("base")) / "model.bin") == weights.PACKAGED["base"].sha256["model.bin"]
    )


def test_joined_parts_that_hash_wrong_are_refused(tmp_path: Path) -> None:
    """A part corrupted before the join: the joined file is checked, and refused."""
    side = Path(weights.resolve("base"))
    parts = []
    for i, size in enumerate((1000, 2000)):
        part = tmp_path / f"part{i}"
        part.write_bytes(os.urandom(size))
        parts.append(part)
    target = weights.joined_model(side, parts, tmp_path / "joined")
    with pytest.raises(weights.WeightsCorrupt, match="base"):
        weights.verify(target, "base")


def resolve_offline(source: str, cache: Path) -> subprocess.CompletedProcess[str]:
    """`weights.resolve` in a fresh interpreter: huggingface_hub reads HF_* once, at import."""
    code = textwrap.dedent(f"""
        from longscribe_core import weights
        try:
            print(weights.resolve({source!r}))
        except weights.WeightsNotInstalled as exc:
            print(exc)
            raise SystemExit(3)
    """)
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_a_hub_id_an_alias_and_a_pinned_revision_resolve_from_the_cache_offline(tmp_path: Path) -> None:
    revision = hub_cache_from(Path(weights.resolve("tiny.en")), tmp_path, "Systran/faster-whisper-small")
    for source in ("Systran/faster-whisper-small", "small", f"Systran/faster-whisper-small@{revision}"):
        done = resolve_offline(source, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        path = Path(done.stdout.strip())
        assert path.parent.name == "snapshots" and path.name == revision
        assert weights.sha256_of(path / "model.bin") == weights.PACKAGED["tiny.en"].sha256["model.bin"]


def test_a_hub_id_missing_offline_names_the_model_and_how_to_fetch_it(tmp_path: Path) -> None:
    done = resolve_offline("Org/not-cached", tmp_path)
    assert done.returncode == 3, done.stdout + done.stderr
    message = done.stdout
    assert "Org/not-cached" in message and "hf download Org/not-cached" in message and "HF_HUB_OFFLINE" in message


def test_an_unknown_name_lists_what_is_accepted() -> None:
    with pytest.raises(weights.WeightsNotInstalled, match="tiny.en.*large-v3"):
        weights.resolve("no-such-model")


def test_sources_are_told_apart(tmp_path: Path) -> None:
    assert weights.describe("tiny.en") == "packaged"
    assert weights.describe("turbo") == "hub"
    assert weights.describe("Systran/faster-whisper-large-v3@main") == "hub"
    assert weights.describe(str(tmp_path)) == "directory"
    assert weights.describe("nonsense") == "unknown"
