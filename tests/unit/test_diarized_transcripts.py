"""Who spoke when, on the orchestrator's side: voices kept with each chunk's checkpoint, clustered once over
the whole recording at the end, on every segment and word, in every format, and the requests that are refused.

The voices here are synthetic (two speakers, each a direction in 256-d space, with noise); the real encoder
on real speech runs in tests/integration/test_speakers.py.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from longscribe_core.segments import ChunkResult, Segment, Voice, Word
from orchestrator.api import openai_compat, transcripts
from orchestrator.assemble import final
from orchestrator.assemble.progress import ChunkPart
from orchestrator.assemble.speakers import Bounds, Diarize
from orchestrator.errors import InvalidTranscriptQuery, SpeakerReferenceInvalid
from orchestrator.formats import writers
from orchestrator.jobs.checkpoints import decode_part, encode_part
from orchestrator.jobs.store import summary
from orchestrator.media.reference import read_clip, read_clips
from orchestrator.plan.macro import MacroChunk
from orchestrator.schemas import Segment as SegmentOut
from orchestrator.schemas import TranscribeOutput, TranscribeParams, WordOut

CHUNK_S = 12.0
DIM = 256
# who speaks when (media seconds): A, then B, then A again; the turns fall inside chunks and across their cuts
TURNS = [(0.0, 9.0, 0), (9.0, 17.0, 1), (17.0, 36.0, 0)]


def direction(speaker: int, rng: np.random.Generator) -> np.ndarray:
    base = np.zeros(DIM)
    base[speaker * 10 : speaker * 10 + 10] = 1.0
    vector = base / np.linalg.norm(base) + rng.normal(0, 0.02, DIM)
    return vector / np.linalg.norm(vector)


def speaker_at(t: float) -> int:
    return next(who for lo, hi, who in TURNS if lo <= t < hi)


def part(index: int, rng: np.random.Generator) -> ChunkPart:
    """One chunk read with 1 s of overlap before its start: words every 0.5 s, voices every 1.5 s."""
    start, end = index * CHUNK_S, (index + 1) * CHUNK_S
    chunk = MacroChunk(index, start, end, read_start_s=max(0.0, start - 1.0))
    offset = chunk.offset_s
    words = tuple(Word(t - offset, t - offset + 0.4, f" w{t:g}", 0.9) for t in np.arange(start, end, 0.5))
    segments = tuple(
        Segment(
            words[k].start_s,
            words[k + 5].end_s,
            "".join(w.text for w in words[k : k + 6]).strip(),
            words=words[k : k + 6],
        )
        for k in range(0, len(words), 6)
    )
    voices = tuple(
        Voice(t - offset, t - offset + 1.5, tuple(direction(speaker_at(t + 0.75), rng)))
        for t in np.arange(max(0.0, start - 1.0), end, 1.5)
    )
    return ChunkPart(chunk, ChunkResult(segments, "en", voices=voices), end, int(end * 16_000), index == 2)


def kept(parts: list[ChunkPart]) -> final.Read:
    """Each part as a checkpoint in Redis holds it: encoded, and decoded afresh at every read."""
    stored = [encode_part(p) for p in parts]

    async def read(index: int) -> ChunkPart | None:
        return decode_part(stored[index])

    return read


async def diarized(parts: list[ChunkPart], asked: Diarize | None = None) -> tuple[final.Assembled, TranscribeOutput]:
    assembled = await final.assemble(kept(parts), len(parts), 36.0, True, 0.0, asked or Diarize())
    return assembled, await assembled.output()


def parts_of_a_conversation(seed: int = 7) -> list[ChunkPart]:
    rng = np.random.default_rng(seed)
    return [part(i, rng) for i in range(3)]


async def test_every_segment_and_word_is_labelled_by_who_spoke_and_no_segment_spans_two() -> None:
    _, output = await diarized(parts_of_a_conversation())
    assert {s.speaker for s in output.segments} == {"SPEAKER_00", "SPEAKER_01"}
    for segment in output.segments:
        assert segment.words and {w.speaker for w in segment.words} == {segment.speaker}
        for word in segment.words:
            expected = "SPEAKER_00" if speaker_at((word.start_time_sec + word.end_time_sec) / 2) == 0 else "SPEAKER_01"
            assert word.speaker == expected
    # the turn at 9 s falls inside a segment (6-9 s of words 6.0 ... 8.5 plus 9.0 ...): it was split there
    assert any(s.end_time_sec <= 9.0 and s.speaker == "SPEAKER_00" for s in output.segments)
    assert any(s.start_time_sec >= 9.0 and s.speaker == "SPEAKER_01" for s in output.segments)


async def test_the_streamed_answer_equals_the_whole_one_and_the_end_counts_speakers_and_segments() -> None:
    parts = parts_of_a_conversation()
    assembled, output = await diarized(parts)
    streamed = "".join([p async for p in assembled.json_pieces()])
    assert json.loads(streamed)["segments"] == json.loads(output.to_json())["segments"]
    totals = summary(assembled)
    assert totals["speakers"] == 2 and totals["segments"] == len(output.segments)
    assert summary(output)["speakers"] == 2


async def test_a_resumed_job_reads_the_same_voices_from_its_checkpoints_and_keeps_the_same_labels() -> None:
    first = (await diarized(parts_of_a_conversation()))[1]
    again = (await diarized(parts_of_a_conversation()))[1]  # the same chunks, read from their checkpoints again
    assert [(s.start_time_sec, s.speaker) for s in first.segments] == [
        (s.start_time_sec, s.speaker) for s in again.segments
    ]


async def test_a_voice_heard_by_two_overlapping_chunks_is_clustered_once() -> None:
    parts = parts_of_a_conversation()
    assembled, _ = await diarized(parts)
    assert assembled.speakers is not None
    starts = [v.start_s for v in assembled.speakers.voices]
    assert len(starts) == len(set(np.round(starts, 3)))  # the overlap's voices were kept by one chunk only


async def test_a_fixed_count_is_honoured_and_a_known_voice_names_its_speaker() -> None:
    parts = parts_of_a_conversation()
    _, one = await diarized(parts, Diarize(Bounds(num_speakers=1)))
    assert {s.speaker for s in one.segments} == {"SPEAKER_00"}
    rng = np.random.default_rng(99)
    reference = direction(1, rng).astype(np.float32)
    _, named = await diarized(parts, Diarize(references={"Grace": reference}, similarity=0.7))
    assert {s.speaker for s in named.segments} == {"SPEAKER_00", "Grace"}
    assert all(w.speaker == s.speaker for s in named.segments for w in s.words or [])


async def test_without_diarize_nothing_changes_for_existing_clients() -> None:
    parts = parts_of_a_conversation()
    assembled = await final.assemble(kept(parts), len(parts), 36.0, True, 0.0)
    output = await assembled.output()
    assert all(s.speaker is None and all(w.speaker is None for w in s.words or []) for s in output.segments)
    assert '"speaker"' not in output.to_json() and "speakers" not in summary(assembled)


# The formats


def two_speakers() -> TranscribeOutput:
    said = [
        (0.0, 2.0, "Hello there.", "SPEAKER_00"),
        (2.0, 3.0, "How are you?", "SPEAKER_00"),
        (3.5, 5.0, "Fine <thanks>.", "SPEAKER_01"),
    ]
    segments = [
        SegmentOut(
            start_time_sec=a,
            end_time_sec=b,
            text=text,
            language_code="en",
            speaker=who,
            words=[
                WordOut(word=w, start_time_sec=a, end_time_sec=b, probability=0.9, speaker=who) for w in text.split()
            ],
        )
        for a, b, text, who in said
    ]
    return TranscribeOutput(
        segments=segments, input_duration_sec=5.0, processing_duration_sec=1.0, speedup=5.0, text="x"
    )


def test_vtt_has_voice_tags_srt_tsv_and_text_a_speaker_prefix_and_json_the_field() -> None:
    output = two_speakers()
    vtt = writers.render(output, "vtt")
    assert "<v SPEAKER_00>Hello there." in vtt and "<v SPEAKER_01>Fine &lt;thanks>." in vtt
    srt = writers.render(output, "srt")
    assert "SPEAKER_00: Hello there." in srt and "SPEAKER_01: Fine <\u200bthanks>." in srt
    assert writers.render(output, "text") == "SPEAKER_00: Hello there. How are you?\nSPEAKER_01: Fine <thanks>.\n"
    assert "\tSPEAKER_01: Fine <thanks>.\n" in writers.render(output, "tsv")
    body = json.loads(writers.render(output, "json"))
    assert [s["speaker"] for s in body["segments"]] == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01"]
    assert body["segments"][2]["words"][0]["speaker"] == "SPEAKER_01"


def test_wrapped_cues_never_run_across_a_change_of_speaker() -> None:
    from orchestrator.schemas import SubtitleLayout

    layout = SubtitleLayout(max_line_width=80, max_line_count=2)
    vtt = writers.render(two_speakers(), "vtt", layout)
    assert "<v SPEAKER_00>Hello there. How are you?\n" in vtt and "<v SPEAKER_01>Fine &lt;thanks>.\n" in vtt


def test_renamed_speakers_reach_every_format_and_a_bad_rename_is_refused() -> None:
    output = writers.renamed_output(two_speakers(), {"SPEAKER_01": "Ada <Lovelace>"})
    assert "<v Ada &lt;Lovelace&gt;>Fine" in writers.render(output, "vtt")
    assert "Ada <Lovelace>: Fine <thanks>." in writers.render(output, "text")
    assert json.loads(writers.render(output, "json"))["segments"][2]["words"][0]["speaker"] == "Ada <Lovelace>"
    assert transcripts.speaker_names({"speaker_names": '{"SPEAKER_00": " Grace  Hopper "}'}) == {
        "SPEAKER_00": "Grace Hopper"
    }
    for bad in ("[1]", "{", '{"SPEAKER_00": ""}', '{"SPEAKER_00": 3}', json.dumps({f"S{i}": "x" for i in range(40)})):
        with pytest.raises(InvalidTranscriptQuery):
            transcripts.speaker_names({"speaker_names": bad})


def test_openai_diarized_json_has_openais_shape_with_letters_for_anonymous_speakers() -> None:
    body = openai_compat._diarized(two_speakers())
    assert set(body) == {"task", "duration", "text", "segments", "usage"}
    assert body["task"] == "transcribe" and body["usage"] == {"type": "duration", "seconds": 5}
    first = body["segments"][0]
    assert first == {
        "type": "transcript.text.segment",
        "id": "seg_0",
        "start": 0.0,
        "end": 2.0,
        "text": "Hello there.",
        "speaker": "A",
    }
    assert [s["speaker"] for s in body["segments"]] == ["A", "A", "B"]
    assert [openai_compat.letter(i) for i in (0, 25, 26, 31)] == ["A", "Z", "AA", "AF"]


# What is refused


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"diarize": True, "num_speakers": 0}, "greater than or equal to 1"),
        ({"diarize": True, "num_speakers": 33}, "less than or equal to 32"),
        ({"diarize": True, "min_speakers": 3, "max_speakers": 2}, "min_speakers (3) is above max_speakers (2)"),
        ({"num_speakers": 2}, "need diarize"),
        ({"diarize": True, "known_speaker_names": ["Ada"]}, "one reference clip per name"),
        ({"diarize": True, "known_speaker_names": ["Ada"], "known_speaker_references": ["x"]}, "data URL"),
        ({"diarize": True, "num_speakers": True}, "not true or false"),
    ],
)
def test_bad_speaker_params_are_refused_saying_what_is_wrong(params: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says.replace("(", r"\(").replace(")", r"\)")):
        TranscribeParams(**params)


def wav_url(seconds: float) -> str:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        t = np.arange(int(seconds * 16_000)) / 16_000
        out.writeframes((np.sin(2 * math.pi * 220 * t) * 8000).astype("<i2").tobytes())
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_a_reference_clip_is_read_by_ffmpeg_at_16_khz_and_bounded_to_2_to_10_seconds(tmp_path: Path) -> None:
    audio = await read_clip(wav_url(3.0), 0, "ffmpeg", tmp_path)
    assert audio.dtype == np.float32 and abs(len(audio) - 48_000) <= 160
    for bad, says in [
        (wav_url(1.0), "lasts 1.0 s"),
        (wav_url(12.0), "or more"),
        ("data:audio/wav;base64,bm90IGF1ZGlv", "not audio FFmpeg can read"),
        ("data:audio/wav;base64,!!!", "not valid base64"),
        ("data:audio/wav,plain", "not a base64 data URL"),
    ]:
        with pytest.raises(SpeakerReferenceInvalid, match=says):
            await read_clip(bad, 1, "ffmpeg", tmp_path)
    assert list(tmp_path.iterdir()) == []  # every clip's temporary file is gone, the refused ones included


async def test_a_burst_of_submissions_with_reference_clips_runs_no_more_ffmpegs_than_the_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.common import proc

    running, most = 0, 0
    real_run = proc.run

    async def counted(*args: Any, **kwargs: Any) -> Any:  # the real FFmpeg, counted while it runs
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            return await real_run(*args, **kwargs)
        finally:
            running -= 1

    monkeypatch.setattr(proc, "run", counted)
    slots = asyncio.Semaphore(2)
    clips = [("Ada", wav_url(2.5)), ("Grace", wav_url(3.0))]
    answers = await asyncio.gather(*(read_clips(clips, "ffmpeg", slots, tmp_path) for _ in range(6)))
    assert most == 2  # 12 clips from 6 submissions at once, two decodes at a time
    assert all([name for name, _ in answer] == ["Ada", "Grace"] for answer in answers)


def test_the_cli_sends_diarize_and_the_speaker_counts_only_when_given() -> None:
    from orchestrator.cli.main import parser
    from orchestrator.cli.transcribe import params_from

    args = parser().parse_args(["transcribe", "talk.mp3", "--diarize", "--speakers", "2"])
    assert params_from(args) == {"diarize": True, "num_speakers": 2}
    bounded = parser().parse_args(["transcribe", "talk.mp3", "--diarize", "--min-speakers", "2", "--max-speakers", "4"])
    assert params_from(bounded) == {"diarize": True, "min_speakers": 2, "max_speakers": 4}
    assert "diarize" not in params_from(parser().parse_args(["transcribe", "talk.mp3"]))
    with pytest.raises(SystemExit):
        parser().parse_args(["transcribe", "talk.mp3", "--diarize", "--speakers", "0"])
