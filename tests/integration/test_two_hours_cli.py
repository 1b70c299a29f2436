"""The mission's scale through the CLI: over two hours of three people taking turns, `longscribe transcribe
--diarize` with its self-started service and default chunk sizes prints the whole transcript, and who said
each part of it.

Before events carried references, this crashed after all the work: the
`end` event held the whole job, and the CLI's line reader stops at 512 KiB.

One run answers both what was said and who said it: the recording is a
conversation of whole clips that all have references (`write_read_aloud`:
a LibriSpeech reader, President Kennedy, the LJ Speech reader, turns of one
or two clips; "mixed", the one set whose every clip has a reference and
whose voices stay apart), so its transcript is scored by WER and its labels
by DER against turns known to the sample. This replaced a plain run of the
repeated long form rather than joining it: a second 2-hour run would double
this test, the suite's longest, where diarizing the one run costs about
10 % more. Measured once (2026-12-03) on 2 cores shared with other runs
(load 14-17, so the times say little): building 140 s, the run 1489 s
(5.0x real time, as a diarized REST request beside it ran).

Who spoke when, measured: three speakers; DER 10.4 % over the two hours, of
which missed speech 7.8 % (turn time outside the transcript's segments,
joined where under 1 s apart: pauses of a second or more, within clips and
between a turn's clips, and speech Whisper's segments do not span), false
alarm 2.1 %, confusion 0.55 % (35 s of 6402 s under the wrong label); per
half hour 10.0, 12.6, 11.7, 8.5 %; 6 segments of 2484 lie over 1 s in
another speaker's turn. The labels hold (confusion is the bound that says
so); the DER bound sits over the 10 % the speaker tests hold on 90 s, by
what the missed speech adds. The bounds below were set from this one run,
and the test as now written has not run end to end again.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conversations import SPEAKER_SETS, ReadAloud, Turn, der, turns_of, write_read_aloud
from ..corpus import wer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2400)]
TWO_HOURS_S = 2 * 3600.0
SPEECH_MP3 = ["-ar", "16000", "-ac", "1", "-b:a", "48k"]  # two hours in about 43 MB
WER_BOUND = 0.10  # measured 0.080 (the long form's bound is 0.08; this is another recording, measured once)
DER_BOUND = 0.12  # NIST DER, 0.25 s collar, over the whole two hours (measured 0.104; see the docstring)
CONFUSION_BOUND = 0.02  # speech under the wrong speaker's label (measured 0.0055), as test_speakers.py bounds it
SPLIT_S = 1.0  # a segment spans two turns badly when over this much of it lies in another speaker's turns
SPLIT_SHARE = 0.01  # segments that may (measured 6 of 2484, 0.24 %)


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReadAloud]:
    path = tmp_path_factory.mktemp("two-hours") / "conversation.mp3"
    read = write_read_aloud(path, SPEAKER_SETS["mixed"], TWO_HOURS_S + 60, SPEECH_MP3, clips_per_turn=(1, 2))
    return path, read


async def longscribe_transcribe(*args: str) -> tuple[str, str]:
    """`longscribe transcribe ARGS` with its self-started service: stdout and stderr, after a clean exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "transcribe", *args,
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
    return stdout.decode(), log


def misplaced_s(segment: dict[str, Any], turns: list[Turn], mapping: dict[str, str]) -> float:
    """Seconds of a segment inside turns of speakers other than the one its label stands for."""
    start, end = segment["start_time_sec"], segment["end_time_sec"]
    own = mapping.get(segment["speaker"])
    return sum(
        min(end, t.end_s) - max(start, t.start_s)
        for t in turns
        if t.speaker != own and t.start_s < end and t.end_s > start
    )


async def test_two_hours_of_three_speakers_through_the_cli_print_whole_and_say_who_spoke_when(
    conversation: tuple[Path, ReadAloud],
) -> None:
    path, read = conversation
    out, log = await longscribe_transcribe(str(path), "--diarize", "--format", "json")
    answer = json.loads(out)
    segments = answer["segments"]
    error_rate = wer(read.reference, answer["text"])
    said = turns_of(
        [s["start_time_sec"] for s in segments], [s["end_time_sec"] for s in segments], [s["speaker"] for s in segments]
    )
    score = der(read.turns, said)
    half_hours = [  # each scored alone: its own best mapping of labels to speakers
        der(
            [t for t in read.turns if k * 1800 <= t.start_s < (k + 1) * 1800],
            [t for t in said if k * 1800 <= t.start_s < (k + 1) * 1800],
        )
        for k in range(4)
    ]
    split = [s for s in segments if misplaced_s(s, read.turns, score.mapping) > SPLIT_S]
    summary = next(line for line in log.splitlines() if line.startswith("input_duration_sec="))
    found = list(dict.fromkeys(s["speaker"] for s in segments))
    print(
        f"{read.duration_s / 3600:.2f} h, {len(read.turns)} turns, {len(out)} characters printed, "
        f"WER {error_rate:.3f}; {len(segments)} segments, speakers {found}, DER {score.der:.3f} ({score}), "
        f"per half hour {[round(h.der, 3) for h in half_hours]}; {len(split)} segments over {SPLIT_S:g} s in another's "
        f"turn; {summary}"
    )
    assert error_rate <= WER_BOUND
    assert float(summary.split()[0].split("=")[1]) == pytest.approx(read.duration_s, abs=1.0)
    progress_lines = [line for line in log.splitlines() if line.startswith("[")]
    assert len(progress_lines) >= TWO_HOURS_S / 300 - 1, "a progress line per macro chunk"
    assert all(s.get("speaker", "").startswith("SPEAKER_") for s in segments), "every segment labelled"
    assert found == [f"SPEAKER_{i:02d}" for i in range(3)], "three speakers, numbered by first appearance"
    assert score.confusion_s <= CONFUSION_BOUND * score.total_s, score
    assert score.der <= DER_BOUND, score
    # a label means one speaker from the first half hour to the last: none swapped between macro chunks
    assert all(h.mapping == score.mapping for h in half_hours), [h.mapping for h in half_hours]
    assert len(split) <= SPLIT_SHARE * len(segments), split[:5]
