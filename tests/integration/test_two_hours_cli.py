"""The mission's scale through the CLI: a recording of over two hours, `longscribe transcribe` with its
self-started service and default chunk sizes, prints the whole transcript.

Before events carried references, this crashed after all the work: the
`end` event held the whole job, and the CLI's line reader stops at 512 KiB.
About 3 minutes of compute on 2 idle cores, plus Triton's start.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from ..corpus import Recording, repeated_recording, wer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
TWO_HOURS_S = 2 * 3600.0
SPEECH_MP3 = ["-ar", "16000", "-ac", "1", "-b:a", "48k"]  # two hours in about 43 MB
LONG_FORM_WER = 0.08  # tests/integration/test_long_form_accuracy.py's bound


@pytest.fixture(scope="module")
def two_hours(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    work = tmp_path_factory.mktemp("two-hours")
    recording = repeated_recording(work, TWO_HOURS_S / 60 + 5, SPEECH_MP3)  # a little over, whatever the long form
    assert recording.duration_s >= TWO_HOURS_S and recording.path.suffix == ".mp3"
    return recording


async def test_a_two_hour_recording_goes_through_the_cli_and_prints_the_whole_transcript(
    two_hours: Recording,
) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "transcribe", str(two_hours.path), "--format", "text",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 2200)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = stderr.decode()
    assert proc.returncode == 0, log[-4000:]
    text = stdout.decode()
    error_rate = wer(two_hours.reference, text)
    summary = next(line for line in log.splitlines() if line.startswith("input_duration_sec="))
    print(f"{two_hours.duration_s / 3600:.2f} h, {len(text)} characters printed, WER {error_rate:.3f}; {summary}")
    assert error_rate <= LONG_FORM_WER
    assert float(summary.split()[0].split("=")[1]) == pytest.approx(two_hours.duration_s, abs=1.0)
    progress_lines = [line for line in log.splitlines() if line.startswith("[")]
    assert len(progress_lines) >= TWO_HOURS_S / 300 - 1, "a progress line per macro chunk"
