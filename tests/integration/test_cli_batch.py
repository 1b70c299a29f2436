"""`longscribe transcribe` with many inputs, as `whisper` takes them: a file per input and format,
a progress line per input, and a failure named without stopping the others."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import srt
import webvtt

from ..corpus import clips_under, manifest, speech_dir, wer
from ..keyed_service import SERVICE_KEY
from ..wer_bounds import JFK_MAX_WER, LJ001_0001_MAX_WER

pytestmark = pytest.mark.integration
LONGSCRIBE = [sys.executable, "-m", "orchestrator.cli"]


async def test_three_inputs_one_a_404_write_two_sets_of_files_and_name_the_failure(
    keyed_service_url: str, allowed_media_url: str, tmp_path: Path
) -> None:
    """A file (uploaded), a URL the service may fetch, and a URL that answers 404: all three reported."""
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    lj = clips_under("ljspeech")[0]
    lj_url = f"{allowed_media_url}/speech/{lj.path.relative_to(speech_dir()).as_posix()}"
    missing = f"{allowed_media_url}/no-such-recording.m4a"
    out = tmp_path / "out"
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE, "transcribe", str(jfk.path), lj_url, missing, "--server", keyed_service_url,
        "--output-dir", str(out), "--format", "srt,vtt,txt,json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LONGSCRIBE_API_KEY": SERVICE_KEY},
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 300)
    log = stderr.decode()
    assert proc.returncode == 1, log
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("jfk", lj.path.stem) for ext in ("srt", "vtt", "txt", "json")
    )
    for clip, stem, max_wer in ((jfk, "jfk", JFK_MAX_WER), (lj, lj.path.stem, LJ001_0001_MAX_WER)):
        assert wer(clip.reference, (out / f"{stem}.txt").read_text()) <= max_wer
        answer = json.loads((out / f"{stem}.json").read_text())  # the service's own answer, as on stdout
        assert answer["segments"] and answer["text"] and answer["input_duration_sec"] > 0
        cues = list(srt.parse((out / f"{stem}.srt").read_text()))
        assert [c.start for c in cues] == sorted(c.start for c in cues)
        assert len(webvtt.from_string((out / f"{stem}.vtt").read_text()).captions) == len(cues)
    failures = [line for line in log.splitlines() if line.startswith("longscribe:") and "failed" in line]
    assert len(failures) == 1 and "no-such-recording.m4a" in failures[0] and "404" in failures[0]
    progress = {line.split(":", 1)[0] for line in log.splitlines() if not line.startswith("longscribe")}
    assert {"jfk", lj.path.stem, "no-such-recording"} <= progress  # a line per input
    done = [line for line in log.splitlines() if ": done: " in line]
    assert len(done) == 2  # every input's outcome: two done, one failed
    assert stdout == b""


async def test_an_unknown_format_is_refused_before_any_work() -> None:
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE, "transcribe", "a.wav", "b.wav", "--format", "srt,docx", "--server", "http://127.0.0.1:9",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await proc.communicate()
    assert proc.returncode == 2 and b"docx" in stderr
