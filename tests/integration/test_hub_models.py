"""The Hub path offline: an id resolved from a cache laid out as huggingface_hub lays it out
serves and transcribes; an id missing from it stops the start with words that say what to do."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from longscribe_core import weights
from orchestrator.common.net import free_port

from ..corpus import manifest, wer
from ..hub_cache import hub_cache_from
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration
LONGSCRIBE = [sys.executable, "-m", "orchestrator.cli"]
REPO_ID = "Systran/faster-whisper-tiny.en"


def offline(cache: Path) -> dict[str, str]:
    """HF_HOME points nowhere useful: HF_HUB_CACHE alone must be honoured."""
    return {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache / "home"), "HF_HUB_OFFLINE": "1"}


async def run(*args: str, env: dict[str, str], timeout_s: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def test_a_hub_id_from_the_cache_serves_and_transcribes_jfk(tmp_path: Path) -> None:
    hub_cache_from(Path(weights.resolve("tiny.en")), tmp_path, REPO_ID)
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    code, text, log = await run(
        "transcribe", str(jfk.path), "--model", REPO_ID, "--triton-log", env=offline(tmp_path), timeout_s=300
    )
    assert code == 0, log
    assert f"{tmp_path}/models--Systran--faster-whisper-tiny.en/snapshots/" in log  # served from that cache
    assert wer(jfk.reference, text) <= JFK_MAX_WER


async def test_an_id_missing_offline_fails_at_start_naming_it_and_how_to_fetch_it(tmp_path: Path) -> None:
    code, _, log = await run(
        "serve", "--no-auth", "--model", "tiny.en", "--model", "Org/not-cached",
        "--port", str(free_port()), "--triton-http-port", "0", "--triton-grpc-port", "0",
        "--triton-metrics-port", "0",
        env=offline(tmp_path), timeout_s=60,
    )  # fmt: skip
    assert code != 0
    assert "Org/not-cached" in log and "hf download Org/not-cached" in log and "HF_HUB_OFFLINE" in log
    assert "Triton ready" not in log  # refused before anything started
