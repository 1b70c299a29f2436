"""A stored transcript is read back in pieces: any cut of its bytes (inside a character too) gives the same
segments and fields as parsing it whole, and each format renders from it as from the whole answer."""

from __future__ import annotations

import pytest

from orchestrator.formats import writers
from orchestrator.jobs.stored import SegmentReader
from orchestrator.schemas import Segment, SubtitleLayout, TranscribeOutput, WordOut

OUTPUT = TranscribeOutput(
    segments=[
        Segment(
            start_time_sec=i * 2.0,
            end_time_sec=i * 2.0 + 1.5,
            text=f'Grüße {i}, "quoted" 東京\n<i>x</i>',
            words=[WordOut(word="Grüße", start_time_sec=i * 2.0, end_time_sec=i * 2.0 + 0.5, probability=0.9)],
            avg_logprob=-0.25,
            confidence=0.8,
        )
        for i in range(300)
    ],
    input_duration_sec=600.0,
    processing_duration_sec=12.5,
    speedup=48.0,
    text="Grüße 東京 " * 50,
    language="english",
    language_code="en",
)


def read_in(data: bytes, size: int) -> tuple[list[Segment], SegmentReader]:
    reader, segments = SegmentReader(), []
    for start in range(0, len(data), size):
        reader.feed(data[start : start + size])
        segments += reader.segments_parsed()
    reader.feed(b"", final=True)
    segments += reader.segments_parsed()
    return segments, reader


@pytest.mark.parametrize("size", [1, 7, 1000, 64 * 1024])
def test_any_cut_of_the_stored_bytes_reads_back_the_same_answer(size: int) -> None:
    data = OUTPUT.to_json().encode()
    segments, reader = read_in(data, size)
    assert segments == OUTPUT.segments
    assert reader.rest().model_dump(exclude={"segments"}) == OUTPUT.model_dump(exclude={"segments"})


@pytest.mark.parametrize("fmt", ["json", "srt", "vtt", "tsv"])
def test_each_format_renders_from_the_segments_read_one_by_one_as_from_the_whole(fmt: str) -> None:
    reader = SegmentReader()
    reader.feed(OUTPUT.to_json().encode(), final=True)
    layout = SubtitleLayout(max_line_width=20, max_line_count=2)
    if fmt == "json":
        pieces = writers.streamed_json(reader.segments(), reader.rest, verbose=False)
    else:
        pieces = writers.segment_pieces(reader.segments(), fmt, layout)
    assert "".join(pieces) == writers.render(OUTPUT, fmt, layout)


def test_a_segment_asked_for_before_it_is_read_is_a_bug_said_so() -> None:
    reader = SegmentReader()
    reader.feed(OUTPUT.to_json().encode()[:50])
    with pytest.raises(RuntimeError):
        list(reader.segments())
