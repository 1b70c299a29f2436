"""`longscribe transcribe --server` as a user meets a production service (keys on, loopback media refused):
URLs it may fetch pass through, what it may not is one line, an unreachable server or a wrong key is one
line and exit 3, standard input is uploaded, and --verbose prints segments as they settle."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

import pytest

import longscribe
from orchestrator import formats
from orchestrator.common.net import free_port

from ..corpus import Recording, clips_under, manifest, speech_dir, wer
from ..keyed_service import SERVICE_KEY
from ..wer_bounds import JFK_MAX_WER, LJ001_0001_MAX_WER

pytestmark = pytest.mark.integration
LONGSCRIBE = [sys.executable, "-m", "orchestrator.cli"]
JFK = next(c for c in manifest() if c.path.name == "jfk.flac")
SEGMENT_LINE = re.compile(r"^\[(\d\d:)?\d\d:\d\d\.\d{3} --> (\d\d:)?\d\d:\d\d\.\d{3}\] (.*)$")


async def longscribe_cli(*args: str, key: str | None = SERVICE_KEY, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run `longscribe <args>` with LONGSCRIBE_API_KEY set to `key`; (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "LONGSCRIBE_API_KEY"}
    if key is not None:
        env["LONGSCRIBE_API_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE, *args, env=env,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(stdin), 240)
    return proc.returncode or 0, stdout.decode(), stderr.decode()


def one_line(log: str) -> str:
    lines = log.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in log, log
    return lines[0]


async def test_a_url_the_service_may_fetch_is_passed_through_and_json_is_its_full_answer(
    keyed_service_url: str, allowed_media_url: str
) -> None:
    clip = clips_under("ljspeech")[0]
    url = f"{allowed_media_url}/speech/{clip.path.relative_to(speech_dir()).as_posix()}"
    code, out, log = await longscribe_cli("transcribe", url, "--server", keyed_service_url, "-f", "json")
    assert code == 0, log
    answer = json.loads(out)  # the service's native answer, as the transcript route gives it
    assert answer["segments"] and answer["input_duration_sec"] > 0 and answer["speedup"] > 0
    assert wer(clip.reference, answer["text"]) <= LJ001_0001_MAX_WER


async def test_a_loopback_url_is_refused_by_the_service_in_one_line(keyed_service_url: str, media_url: str) -> None:
    """The twin of the URL above: the default policy holds for every host not listed (127.0.0.1 here)."""
    code, out, log = await longscribe_cli("transcribe", f"{media_url}/speech/jfk.flac", "--server", keyed_service_url)
    assert code == 1 and out == ""
    lines = log.strip().splitlines()  # the job's id, then why it failed
    assert "Traceback" not in log and [x for x in lines if x.startswith("longscribe:")] == lines[-1:]
    assert "media_url_forbidden" in lines[-1]


async def test_an_unreachable_server_is_one_line_and_exit_3() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    code, out, log = await longscribe_cli("transcribe", str(JFK.path), "--server", closed)
    assert code == 3 and out == ""
    line = one_line(log)
    assert line.startswith(f"longscribe: cannot reach the service at {closed}")


async def test_a_batch_against_an_unreachable_server_reports_every_input() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    inputs = [str(JFK.path), "https://example.invalid/a.mp3", str(JFK.path)]
    code, _, log = await longscribe_cli("transcribe", *inputs, "--server", closed, "-q")
    assert code == 3
    failed = [line for line in log.splitlines() if line.startswith("longscribe: ")]
    assert len(failed) == 3 and all("cannot reach the service" in line for line in failed) and "Traceback" not in log


async def test_a_wrong_key_is_one_line_and_exit_3(keyed_service_url: str) -> None:
    code, out, log = await longscribe_cli("transcribe", str(JFK.path), "--server", keyed_service_url, key="wrong")
    assert code == 3 and out == ""
    assert "unauthorized" in one_line(log) and "401" in log


async def test_standard_input_is_uploaded(keyed_service_url: str) -> None:
    code, out, log = await longscribe_cli(
        "transcribe", "-", "--server", keyed_service_url, "--quiet", stdin=JFK.path.read_bytes()
    )
    assert code == 0, log
    assert wer(JFK.reference, out) <= JFK_MAX_WER and log == ""


async def test_verbose_prints_each_segment_as_it_settles(
    keyed_service_url: str, media_root: Path, lj_recording: Recording
) -> None:
    code, out, log = await longscribe_cli(
        "transcribe", str(media_root / "lj001.wav"), "--server", keyed_service_url,
        "--macro-chunk-size-sec", "60", "--verbose",
    )  # fmt: skip
    assert code == 0, log
    said = [m.group(3) for m in map(SEGMENT_LINE.match, log.splitlines()) if m]
    assert len(said) >= 10  # a line per segment, as the chunks settle
    assert wer(lj_recording.reference, " ".join(said)) <= 0.08
    assert wer(lj_recording.reference, out) <= 0.08  # and the transcript on stdout, as without it


async def test_the_version_is_the_packages() -> None:
    code, out, _ = await longscribe_cli("--version")
    assert code == 0 and out.strip() == f"longscribe {longscribe.__version__}"


@pytest.mark.skipif("tsv" not in formats.FORMATS, reason="the service renders tsv and wraps subtitles (formats' part)")
async def test_subtitle_wrapping_and_tsv_are_rendered_by_the_service(keyed_service_url: str, tmp_path: Path) -> None:
    code, out, log = await longscribe_cli(
        "transcribe", str(JFK.path), "--server", keyed_service_url, "-f", "srt", "--max-line-width", "16", "-q"
    )
    assert code == 0, log
    text_lines = [line for line in out.splitlines() if line and "-->" not in line and not line.isdigit()]
    assert len(text_lines) > 4  # JFK's four segments, wrapped
    assert all(len(line.strip()) <= 16 or " " not in line.strip() for line in text_lines)  # a long word stays whole
    code, _, log = await longscribe_cli(
        "transcribe", str(JFK.path), str(JFK.path), "--server", keyed_service_url, "-o", str(tmp_path), "-q"
    )
    assert code == 0, log
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{stem}.{ext}" for stem in ("jfk", "jfk-2") for ext in ("txt", "srt", "vtt", "tsv", "json")
    )
    assert (tmp_path / "jfk.tsv").read_text().startswith("start\tend\ttext\n")
