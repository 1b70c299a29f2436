"""Assembly records every join: piece or chunk, in speech or in a pause, and the gap; the facts cross the wire."""

from __future__ import annotations

import json

import numpy as np

from longscribe_core.assembly import ChunkSpan, assemble_chunks
from longscribe_core.segmentation.micro import transcribe_macro_chunk
from longscribe_core.segments import ChunkResult, Join, Segment, decode_result, encode_result
from orchestrator.assemble.merge import merge_chunks
from orchestrator.plan.macro import MacroChunk

from .test_micro_chunk_model import SMOOTHING, FakeWhisper, GridWhisper, speech


async def test_pieces_cut_in_pauses_join_in_a_pause_with_the_pause_as_gap() -> None:
    pcm = speech(40.0, seed=7, pause_every_s=3.7)
    out = await transcribe_macro_chunk(pcm, 8.0, SMOOTHING, FakeWhisper())
    joins = [s.join for s in out.segments]
    assert joins[0].kind == "start"
    piece_joins = [j for j in joins if j.kind == "piece"]
    assert len(piece_joins) >= 40.0 / 8.0 - 1
    assert not any(j.in_speech for j in piece_joins)
    assert all(0.0 < j.gap_s <= 0.4 for j in piece_joins)  # inside the 0.4 s pause (the fake hears up to the cut)
    assert [j.piece for j in joins] == sorted(j.piece for j in joins)  # numbered in time order
    assert len({j.piece for j in joins}) == len(piece_joins) + 1


async def test_pieces_cut_inside_speech_join_in_speech_without_a_gap() -> None:
    pcm = speech(40.0, seed=7, pause_every_s=1000.0)
    out = await transcribe_macro_chunk(pcm, 8.0, SMOOTHING, GridWhisper(pcm))
    piece_joins = [s.join for s in out.segments if s.join.kind == "piece"]
    assert len(piece_joins) >= 4
    assert all(j.in_speech for j in piece_joins)
    assert all(j.gap_s < 0.5 for j in piece_joins)  # the grid's own spacing between words


async def test_segments_of_one_window_join_as_segments() -> None:
    pcm = speech(10.0, seed=3, pause_every_s=100.0)
    pcm[4 * 16_000 : 5 * 16_000] = 0  # a second's pause inside one 30 s window

    class TwoSegments(FakeWhisper):
        async def __call__(self, audio: np.ndarray, temperature: float = 0.0) -> ChunkResult:
            n_s = len(audio) / 16_000
            return ChunkResult((Segment(0.0, 4.0, "one", -0.2), Segment(5.0, n_s, "two", -0.2)), "en")

    out = await transcribe_macro_chunk(pcm, 30.0, SMOOTHING, TwoSegments())
    assert [s.join.kind for s in out.segments] == ["start", "segment"]
    assert out.segments[1].join.gap_s >= 0.9


def chunk_result(*segments: tuple[float, float, str, int]) -> ChunkResult:
    return ChunkResult(tuple(Segment(a, b, t, join=Join(piece=p)) for a, b, t, p in segments), "en")


def test_macro_chunk_joins_carry_whether_their_cut_fell_in_speech() -> None:
    parts = [
        (MacroChunk(0, 0.0, 10.0), chunk_result((0.0, 4.0, "a", 0), (4.5, 9.0, "b", 1))),
        (MacroChunk(1, 10.0, 20.0, in_speech=True), chunk_result((0.0, 5.0, "c", 0))),
        (MacroChunk(2, 20.0, 30.0), chunk_result((1.0, 5.0, "d", 0), (5.0, 7.0, "e", 0))),
    ]
    joins = [t.join for t in merge_chunks(parts, 30.0)]
    assert [(j.kind, j.chunk, j.piece) for j in joins] == [
        ("start", 0, 0),
        ("piece", 0, 1),
        ("chunk", 1, 0),
        ("chunk", 2, 0),
        ("segment", 2, 0),
    ]
    assert [j.in_speech for j in joins] == [False, False, True, False, False]
    assert [round(j.gap_s, 3) for j in joins] == [0.0, 0.5, 1.0, 6.0, 0.0]


def test_a_chunk_whose_first_segment_was_a_duplicate_still_joins_as_a_chunk() -> None:
    parts = [
        (ChunkSpan(0, 0.0, 10.0, 0.0), chunk_result((7.0, 12.0, "a b c", 0))),
        (ChunkSpan(1, 10.0, 20.0, 10.0, in_speech=True), chunk_result((0.5, 1.5, "c", 0), (2.5, 4.0, "d", 1))),
    ]
    joins = [t.join for t in assemble_chunks(parts, 20.0)]
    assert [(j.kind, j.chunk, j.in_speech) for j in joins] == [("start", 0, False), ("chunk", 1, True)]


def test_join_facts_cross_the_wire() -> None:
    join = Join(kind="piece", piece=3, chunk=0, in_speech=True, gap_s=0.25)
    sent = ChunkResult((Segment(0.0, 1.0, "hi", join=join),), "en")
    assert decode_result(encode_result(sent)).segments[0].join == join


def test_a_payload_from_an_older_sender_decodes_with_default_join_facts() -> None:
    old = {"language": "en", "segments": [{"start_s": 0.0, "end_s": 1.0, "text": "hi", "words": []}]}
    segment = decode_result(json.dumps(old)).segments[0]
    assert segment.text == "hi" and segment.join == Join()


def test_a_payload_from_a_newer_sender_decodes_without_its_extra_fields() -> None:
    new = {"language": "en", "segments": [{"start_s": 0.0, "end_s": 1.0, "text": "hi", "speaker": "A"}]}
    assert decode_result(json.dumps(new)).segments[0].text == "hi"
