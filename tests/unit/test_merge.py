"""Chunk results -> one ordered, non-overlapping transcript in media time."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from longscribe_core.segments import ChunkResult, Segment
from orchestrator.assemble.merge import TimedText, join_text, merge_chunks
from orchestrator.plan.macro import MacroChunk, plan_chunks

Part = tuple[MacroChunk, ChunkResult]


def result(*segments: tuple[float, float, str], language: str | None = "en") -> ChunkResult:
    return ChunkResult(segments=tuple(Segment(a, b, t) for a, b, t in segments), language=language)


def spans(merged: list[TimedText]) -> list[tuple[float, float, str]]:
    return [(m.start_s, m.end_s, m.text) for m in merged]


def test_segments_are_shifted_to_media_time() -> None:
    parts = [
        (MacroChunk(0, 0.0, 30.0), result((0.0, 4.0, "one"), (5.0, 9.5, "two"))),
        (MacroChunk(1, 30.0, 60.0), result((1.0, 3.0, "three"))),
    ]
    assert spans(merge_chunks(parts, 60.0)) == [(0.0, 4.0, "one"), (5.0, 9.5, "two"), (31.0, 33.0, "three")]


def test_chunks_are_merged_in_media_order_whatever_the_input_order() -> None:
    parts = [
        (MacroChunk(1, 10.0, 20.0), result((1.0, 2.0, "later"), language="de")),
        (MacroChunk(0, 0.0, 10.0), result((1.0, 2.0, "earlier"), language="fr")),
    ]
    merged = merge_chunks(parts, 20.0)
    assert [(m.text, m.language) for m in merged] == [("earlier", "fr"), ("later", "de")]


def test_times_are_clipped_to_the_media() -> None:
    parts = [(MacroChunk(0, 0.0, 10.0), result((-0.5, 2.0, "early"), (8.0, 12.0, "late")))]
    assert spans(merge_chunks(parts, 10.0)) == [(0.0, 2.0, "early"), (8.0, 10.0, "late")]


def test_a_segment_read_past_the_chunk_end_is_left_to_the_next_chunk() -> None:
    parts = [
        (MacroChunk(0, 0.0, 10.0), result((2.0, 9.0, "mine"), (10.0, 11.0, "overlap"), (10.5, 12.0, "more"))),
        (MacroChunk(1, 10.0, 20.0), result((0.0, 1.0, "overlap"), (0.5, 2.0, "more"))),
    ]
    assert [m.text for m in merge_chunks(parts, 20.0)] == ["mine", "overlap", "more"]


def test_the_last_chunk_keeps_segments_past_its_nominal_end() -> None:
    parts = [(MacroChunk(0, 0.0, 10.0), result((9.0, 9.9, "end"), (10.0, 10.5, "beyond")))]
    assert [m.text for m in merge_chunks(parts, 11.0)] == ["end", "beyond"]


def test_a_duplicate_inside_the_previous_kept_segment_is_dropped() -> None:
    parts = [
        (MacroChunk(0, 0.0, 10.0), result((7.0, 12.0, "a b c"))),
        (MacroChunk(1, 10.0, 20.0), result((0.5, 1.5, "c"), (1.0, 4.0, "c d"))),
    ]
    assert spans(merge_chunks(parts, 20.0)) == [(7.0, 12.0, "a b c"), (12.0, 14.0, "c d")]


def test_empty_texts_are_dropped_and_texts_are_stripped() -> None:
    parts = [(MacroChunk(0, 0.0, 10.0), result((0.0, 1.0, "  hello "), (1.0, 2.0, ""), (2.0, 3.0, "   ")))]
    assert [m.text for m in merge_chunks(parts, 10.0)] == ["hello"]


def test_a_blank_segment_does_not_push_a_real_one_aside() -> None:
    parts = [(MacroChunk(0, 0.0, 20.0), result((0.0, 10.0, "  "), (2.0, 5.0, "real")))]
    assert spans(merge_chunks(parts, 20.0)) == [(2.0, 5.0, "real")]


def test_no_chunks_give_no_segments() -> None:
    assert merge_chunks([], 10.0) == []


def test_join_text_uses_single_spaces() -> None:
    merged = [TimedText(0.0, 1.0, "Hello,", "en"), TimedText(1.0, 2.0, "big world.", "en")]
    assert join_text(merged) == "Hello, big world."
    assert join_text([]) == ""


SEGMENT = st.tuples(
    st.floats(-3.0, 80.0),
    st.floats(0.0, 15.0),
    st.sampled_from(["word", "two words", " padded ", "", "  "]),
)


@st.composite
def chunk_results(draw: st.DrawFn) -> tuple[list[Part], float]:
    """Random chunks tiling the media, each with random (even unordered) segments."""
    duration = draw(st.floats(0.5, 200.0))
    cuts = draw(st.lists(st.floats(0.0, 200.0), max_size=6))
    parts: list[Part] = []
    for chunk in plan_chunks(duration, cuts):
        raw = draw(st.lists(SEGMENT, max_size=8))
        if draw(st.booleans()):
            raw.sort()
        segments = [(start, start + length, text) for start, length, text in raw]
        parts.append((chunk, result(*segments)))
    return draw(st.permutations(parts)), duration


@given(chunk_results())
def test_merged_segments_are_ordered_non_overlapping_and_inside_the_media(case: tuple[list[Part], float]) -> None:
    parts, duration = case
    merged = merge_chunks(parts, duration)
    for seg in merged:
        assert 0.0 <= seg.start_s <= seg.end_s <= duration
        assert seg.text and seg.text == seg.text.strip()
    for prev, nxt in pairwise(merged):
        assert prev.end_s <= nxt.start_s


@given(chunk_results())
def test_join_text_is_the_merged_texts_in_order(case: tuple[list[Part], float]) -> None:
    merged = merge_chunks(*case)
    assert join_text(merged).split() == [w for m in merged for w in m.text.split()]


def test_a_sentence_heard_by_both_overlapping_chunks_is_kept_once() -> None:
    # chunks cut at 30 s, each read with 5 s of overlap on both sides
    first = MacroChunk(0, 0.0, 30.0, read_start_s=0.0)
    second = MacroChunk(1, 30.0, 60.0, read_start_s=25.0)
    parts = [
        (first, result((20.0, 26.0, "before"), (27.0, 34.0, "across the cut"))),
        (second, result((1.8, 9.0, "across the cut"), (10.0, 14.0, "after"))),
    ]
    assert [t for _, _, t in spans(merge_chunks(parts, 60.0))] == ["before", "across the cut", "after"]


def test_a_sentence_mostly_after_the_cut_goes_to_the_later_chunk() -> None:
    first = MacroChunk(0, 0.0, 30.0, read_start_s=0.0)
    second = MacroChunk(1, 30.0, 60.0, read_start_s=25.0)
    parts = [
        (first, result((29.0, 35.0, "late sentence"))),
        (second, result((4.0, 10.0, "late sentence"), (11.0, 12.0, "next"))),
    ]
    assert spans(merge_chunks(parts, 60.0)) == [(29.0, 35.0, "late sentence"), (36.0, 37.0, "next")]
