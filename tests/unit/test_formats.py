"""Transcript renderings: SRT and WebVTT parse back to the segments, wrapped into lines as openai/whisper
wraps them when asked; TSV is whisper's; text and JSON are the output."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import pytest
import srt
import webvtt
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.formats.cues import LONG_PAUSE_S
from orchestrator.formats.writers import (
    CONTENT_TYPES,
    FORMATS,
    TEXT_PIECE_CHARS,
    ZERO_WIDTH_SPACE,
    pieces,
    render,
    to_srt,
    to_tsv,
    to_vtt,
)
from orchestrator.schemas import Segment, SubtitleLayout, TranscribeOutput, WordOut

CLOCK = r"(\d{2,}):(\d{2}):(\d{2})[,.](\d{3})"
CUE_TIMES = re.compile(rf"^{CLOCK} --> {CLOCK}$")
Cue = tuple[float, float, str]


def seconds(h: str, m: str, s: str, ms: str) -> float:
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def parse_cue(lines: list[str]) -> Cue:
    times = CUE_TIMES.match(lines[0])
    assert times, lines[0]
    g = times.groups()
    return seconds(*g[:4]), seconds(*g[4:]), "\n".join(lines[1:])


def parse_srt(text: str) -> list[tuple[int, Cue]]:
    blocks = [b.split("\n") for b in text.strip("\n").split("\n\n")] if text.strip() else []
    return [(int(b[0]), parse_cue(b[1:])) for b in blocks]


def parse_vtt(text: str) -> list[Cue]:
    header, _, body = text.partition("\n\n")
    assert header == "WEBVTT"
    cues = [parse_cue(b.split("\n")) for b in body.strip("\n").split("\n\n")] if body.strip() else []
    return [(a, b, html.unescape(t)) for a, b, t in cues]  # WebVTT's character references


TEXTS = st.text(st.sampled_from("abcXYZ 019,.!?'-->éß中🙂"), min_size=1, max_size=30).map(str.strip)


@st.composite
def outputs(draw: st.DrawFn) -> TranscribeOutput:
    times = sorted(draw(st.lists(st.floats(0.0, 400_000.0), min_size=0, max_size=24)))
    if len(times) % 2:
        times.pop()
    segments = [
        Segment(start_time_sec=a, end_time_sec=b, text=draw(TEXTS.filter(bool)), language_code="en")
        for a, b in zip(times[::2], times[1::2], strict=True)
    ]
    return TranscribeOutput(
        segments=segments,
        input_duration_sec=times[-1] if times else 0.0,
        processing_duration_sec=1.0,
        speedup=1.0,
        text=" ".join(s.text for s in segments),
    )


def assert_cues_match(cues: list[Cue], output: TranscribeOutput) -> None:
    assert len(cues) == len(output.segments)
    for (start, end, text), seg in zip(cues, output.segments, strict=True):
        assert abs(start - seg.start_time_sec) <= 0.0005 + 1e-9
        assert abs(end - seg.end_time_sec) <= 0.0005 + 1e-9
        assert text == seg.text


@given(outputs())
def test_srt_parses_back_to_the_segments_numbered_from_one(output: TranscribeOutput) -> None:
    parsed = parse_srt(to_srt(output))
    assert [n for n, _ in parsed] == list(range(1, len(output.segments) + 1))
    assert_cues_match([cue for _, cue in parsed], output)


@given(outputs())
def test_vtt_has_its_header_and_parses_back_to_the_segments(output: TranscribeOutput) -> None:
    rendered = to_vtt(output)
    assert rendered.startswith("WEBVTT\n\n")
    assert_cues_match(parse_vtt(rendered), output)


@given(outputs())
def test_text_format_is_the_output_text(output: TranscribeOutput) -> None:
    assert render(output, "text") == output.text


@given(outputs())
def test_json_format_round_trips(output: TranscribeOutput) -> None:
    assert TranscribeOutput.model_validate(json.loads(render(output, "json"))) == output


def test_clock_fields_use_each_formats_separator() -> None:
    output = TranscribeOutput(
        segments=[Segment(start_time_sec=3723.4567, end_time_sec=3725.0, text="hi")],
        input_duration_sec=3725.0,
        processing_duration_sec=1.0,
        speedup=3725.0,
        text="hi",
    )
    assert to_srt(output) == "1\n01:02:03,457 --> 01:02:05,000\nhi\n"
    assert to_vtt(output) == "WEBVTT\n\n01:02:03.457 --> 01:02:05.000\nhi\n"
    assert {fmt: render(output, fmt) for fmt in ("srt", "vtt")} == {"srt": to_srt(output), "vtt": to_vtt(output)}


def test_an_unknown_format_is_refused() -> None:
    empty = TranscribeOutput(segments=[], input_duration_sec=0, processing_duration_sec=0, speedup=0, text="")
    assert set(FORMATS) == {"text", "json", "srt", "vtt", "verbose_json", "tsv"}
    with pytest.raises(ValueError, match="unknown format"):
        render(empty, "docx")


HOSTILE = [
    "a --> b",
    "00:00:05,000 --> 00:00:09,000",
    "x < y & z > w",
    "<i>not italic</i> & <b>",
    "AT&T &amp; &lt;",
    "first\n\nsecond after a blank line",
    "{\\an8}top",
    "1\n\n2",
]


def hostile_output() -> TranscribeOutput:
    segments = [
        Segment(start_time_sec=2.0 * i, end_time_sec=2.0 * i + 1.5, text=text) for i, text in enumerate(HOSTILE)
    ]
    return TranscribeOutput(
        segments=segments, input_duration_sec=20.0, processing_duration_sec=1.0, speedup=20.0, text=""
    )


def unblanked(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.strip())


def test_srt_with_arrows_markup_ampersands_and_blank_lines_parses_with_the_srt_library() -> None:
    cues = list(srt.parse(to_srt(hostile_output())))
    assert [c.index for c in cues] == list(range(1, len(HOSTILE) + 1))
    times = [(c.start.total_seconds(), c.end.total_seconds()) for c in cues]
    assert times == [(2.0 * i, 2.0 * i + 1.5) for i in range(len(HOSTILE))]
    for cue, text in zip(cues, HOSTILE, strict=True):
        assert cue.content.replace(ZERO_WIDTH_SPACE, "") == unblanked(text)  # reads as said
        assert not re.search(r"<[A-Za-z/]|\{\\", cue.content)  # and is no markup


def test_vtt_with_arrows_markup_ampersands_and_blank_lines_parses_with_webvtt_py() -> None:
    captions = webvtt.from_buffer(io.StringIO(to_vtt(hostile_output()))).captions
    expected = [(f"00:00:{2 * i:02d}.000", f"00:00:{2 * i + 1:02d}.500") for i in range(len(HOSTILE))]
    assert [(c.start, c.end) for c in captions] == expected
    for caption, text in zip(captions, HOSTILE, strict=True):
        assert "-->" not in caption.raw_text and "<" not in caption.raw_text
        assert html.unescape(caption.raw_text) == unblanked(text)


def _with_verbose_fields(output: TranscribeOutput) -> TranscribeOutput:
    segments = [
        s.model_copy(update={"avg_logprob": -0.25, "confidence": 0.8, "words": [], "language": "english"})
        for s in output.segments
    ]
    return output.model_copy(update={"segments": segments, "language": "english", "language_code": "en"})


@given(outputs(), st.sampled_from(FORMATS), st.booleans())
def test_every_format_streamed_in_pieces_is_the_whole_rendering(
    output: TranscribeOutput, fmt: str, verbose_fields: bool
) -> None:
    if verbose_fields:
        output = _with_verbose_fields(output)
    parts = list(pieces(output, fmt))
    assert "".join(parts) == render(output, fmt)
    longest_segment = max((len(s.model_dump_json()) for s in output.segments), default=0)
    assert all(len(p) <= max(longest_segment, TEXT_PIECE_CHARS) + 200 for p in parts), "no piece holds it all"


# TSV, as openai/whisper writes it


def read_tsv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE))


@given(outputs())
def test_tsv_is_whispers_header_then_a_row_per_segment_in_whole_milliseconds(output: TranscribeOutput) -> None:
    header, *rows = read_tsv(to_tsv(output))
    assert header == ["start", "end", "text"]
    assert len(rows) == len(output.segments)
    for row, seg in zip(rows, output.segments, strict=True):
        assert row == [str(round(1000 * seg.start_time_sec)), str(round(1000 * seg.end_time_sec)), seg.text.strip()]


def test_tsv_text_with_tabs_and_line_breaks_stays_on_its_own_row() -> None:
    output = hostile_output()
    output = output.model_copy(
        update={"segments": [*output.segments, Segment(start_time_sec=20.0, end_time_sec=21.0, text="a\tb\r\nc\td")]}
    )
    header, *rows = read_tsv(render(output, "tsv"))
    assert len(rows) == len(output.segments)
    for row, seg in zip(rows, output.segments, strict=True):
        assert len(row) == 3 and row[2].split() == seg.text.split(), "every word, in one text column"


def test_tsv_is_served_as_tab_separated_values() -> None:
    assert "tsv" in FORMATS
    assert CONTENT_TYPES["tsv"] == "text/tab-separated-values"


# Subtitle lines wrapped as openai/whisper's --max_line_width / --max_line_count wrap them

WORDS = st.text(st.sampled_from("abcXYZ019,.!?'-<>&éß中🙂"), min_size=1, max_size=12)


@st.composite
def wrappable(draw: st.DrawFn) -> TranscribeOutput:
    """Segments of words, with word timestamps or without, with pauses long and short between them."""
    with_words = draw(st.booleans())
    segments, clock = [], draw(st.floats(0.0, 100.0))
    for _ in range(draw(st.integers(0, 8))):
        words: list[WordOut] = []
        start = clock
        for text in draw(st.lists(WORDS, min_size=1, max_size=14)):
            clock += draw(st.sampled_from([0.0, 0.1, 0.5, LONG_PAUSE_S + 1.0]))
            end = clock + draw(st.floats(0.0, 1.0))
            words.append(WordOut(word=text, start_time_sec=clock, end_time_sec=end, probability=0.9))
            clock = end
        segments.append(
            Segment(
                start_time_sec=start,
                end_time_sec=clock,
                text=" ".join(w.word for w in words),
                words=words if with_words else None,
            )
        )
        clock += draw(st.sampled_from([0.0, 0.3, LONG_PAUSE_S + 0.5]))
    return TranscribeOutput(
        segments=segments,
        input_duration_sec=clock,
        processing_duration_sec=1.0,
        speedup=1.0,
        text=" ".join(s.text for s in segments),
    )


LAYOUTS = st.builds(
    SubtitleLayout,
    max_line_width=st.integers(1, 60),
    max_line_count=st.one_of(st.none(), st.integers(1, 4)),
)


def srt_cues(text: str) -> list[Cue]:
    """Through the `srt` library: numbered from one, the cue text as it reads."""
    subtitles = list(srt.parse(text))
    assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
    return [
        (s.start.total_seconds(), s.end.total_seconds(), s.content.replace(ZERO_WIDTH_SPACE, "")) for s in subtitles
    ]


def vtt_cues(text: str) -> list[Cue]:
    """Through webvtt-py: the cue text with WebVTT's character references read back."""
    captions = webvtt.from_buffer(io.StringIO(text)).captions

    def at(clock: str) -> float:
        found = re.fullmatch(CLOCK, clock)
        assert found, clock
        return seconds(*found.groups())

    return [(at(c.start), at(c.end), html.unescape(c.raw_text)) for c in captions]


def assert_wrapped(cues: list[Cue], output: TranscribeOutput, layout: SubtitleLayout) -> None:
    width = layout.max_line_width
    assert width is not None
    for _, _, text in cues:
        lines = text.split("\n")
        assert all(len(line) <= width or " " not in line for line in lines), "a line over the width is one word"
        assert layout.max_line_count is None or len(lines) <= layout.max_line_count
    said = [word for seg in output.segments for word in seg.text.split()]
    assert [word for _, _, text in cues for word in text.split()] == said, "no word lost, doubled or moved"
    for start, end, _ in cues:
        assert start <= end
    for (_, end, _), (start, _, _) in zip(cues, cues[1:], strict=False):
        assert end <= start + 0.001, "cues in time order, none overlapping the next"
    if layout.max_line_count is None:  # whisper keeps each segment a cue of its own
        assert [text.split() for _, _, text in cues] == [s.text.split() for s in output.segments]


@given(wrappable(), LAYOUTS)
def test_srt_lines_fit_the_width_and_the_cues_keep_every_word_in_time_order(
    output: TranscribeOutput, layout: SubtitleLayout
) -> None:
    assert_wrapped(srt_cues(to_srt(output, layout)), output, layout)


@given(wrappable(), LAYOUTS)
def test_vtt_lines_fit_the_width_and_the_cues_keep_every_word_in_time_order(
    output: TranscribeOutput, layout: SubtitleLayout
) -> None:
    assert_wrapped(vtt_cues(to_vtt(output, layout)), output, layout)


def one_segment(
    text: str, start_s: float, end_s: float, words: list[tuple[str, float, float]] | None = None
) -> TranscribeOutput:
    timed = [WordOut(word=w, start_time_sec=a, end_time_sec=b, probability=1.0) for w, a, b in words or []]
    segment = Segment(start_time_sec=start_s, end_time_sec=end_s, text=text, words=timed or None)
    return TranscribeOutput(
        segments=[segment], input_duration_sec=end_s, processing_duration_sec=1.0, speedup=1.0, text=text
    )


def test_word_timestamps_give_a_split_segments_cues_their_times() -> None:
    words = [("The", 0.5, 0.7), ("quick", 0.8, 1.1), ("brown", 1.2, 1.6), ("fox", 1.7, 1.9), ("jumps.", 2.4, 3.0)]
    output = one_segment("The quick brown fox jumps.", 0.0, 3.2, words)
    cues = srt_cues(to_srt(output, SubtitleLayout(max_line_width=9, max_line_count=2)))
    assert cues == [(0.5, 1.9, "The quick\nbrown fox"), (2.4, 3.0, "jumps.")]


def test_without_word_timestamps_a_split_segment_shares_its_time_by_characters() -> None:
    output = one_segment("one two three four", 0.0, 15.0)  # 15 letters over 15 s: a second each
    cues = srt_cues(to_srt(output, SubtitleLayout(max_line_width=7, max_line_count=1)))
    assert cues == [(0.0, 6.0, "one two"), (6.0, 11.0, "three"), (11.0, 15.0, "four")]


def test_a_width_alone_wraps_each_segment_within_its_own_cue() -> None:
    segments = [
        Segment(start_time_sec=0.0, end_time_sec=2.0, text="a b c d e f"),
        Segment(start_time_sec=2.0, end_time_sec=3.0, text="g h"),
    ]
    output = TranscribeOutput(
        segments=segments, input_duration_sec=3.0, processing_duration_sec=1.0, speedup=3.0, text=""
    )
    cues = srt_cues(to_srt(output, SubtitleLayout(max_line_width=3)))
    assert cues == [(0.0, 2.0, "a b\nc d\ne f"), (2.0, 3.0, "g h")]


def test_with_a_line_count_words_flow_across_segments_until_a_long_pause() -> None:
    pause = LONG_PAUSE_S + 0.5
    segments = [
        Segment(start_time_sec=0.0, end_time_sec=1.0, text="a b"),
        Segment(start_time_sec=1.0, end_time_sec=2.0, text="c"),
        Segment(start_time_sec=2.0 + pause, end_time_sec=3.0 + pause, text="d"),
    ]
    output = TranscribeOutput(
        segments=segments, input_duration_sec=9.0, processing_duration_sec=1.0, speedup=9.0, text=""
    )
    cues = vtt_cues(to_vtt(output, SubtitleLayout(max_line_width=5, max_line_count=2)))
    assert [text for _, _, text in cues] == ["a b c", "d"]


def test_words_keep_the_spacing_of_their_segments_text() -> None:
    words = [("你好", 0.0, 0.5), ("世界。", 0.5, 1.0), ("Hello,", 1.0, 1.5), ("world!", 1.5, 2.0)]
    output = one_segment("你好世界。 Hello, world!", 0.0, 2.0, words)
    cues = srt_cues(to_srt(output, SubtitleLayout(max_line_width=42)))
    assert cues == [(0.0, 2.0, "你好世界。 Hello, world!")]


def test_without_a_layout_subtitles_are_a_cue_per_segment_as_before() -> None:
    output = one_segment("The quick brown fox jumps.", 0.0, 3.2, [("The", 0.5, 0.7), ("quick", 0.8, 3.0)])
    assert (
        to_srt(output, SubtitleLayout())
        == to_srt(output)
        == "1\n00:00:00,000 --> 00:00:03,200\nThe quick brown fox jumps.\n"
    )


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"max_line_width": 0}, "greater than or equal to 1"),
        ({"max_line_width": -3}, "greater than or equal to 1"),
        ({"max_line_width": 1001}, "less than or equal to 1000"),
        ({"max_line_width": "4.5"}, "valid integer"),
        ({"max_line_width": "wide"}, "valid integer"),
        ({"max_line_width": True}, "whole number"),
        ({"max_line_width": 42, "max_line_count": 0}, "greater than or equal to 1"),
        ({"max_line_width": 42, "max_line_count": 101}, "less than or equal to 100"),
        ({"max_line_count": 2}, "max_line_count needs max_line_width"),
    ],
)
def test_a_layout_out_of_bounds_is_refused_saying_why(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        SubtitleLayout.model_validate(fields)


def test_a_layout_read_from_a_query_string_takes_whole_numbers() -> None:
    assert SubtitleLayout.model_validate({"max_line_width": "42", "max_line_count": "2"}) == SubtitleLayout(
        max_line_width=42, max_line_count=2
    )


@given(wrappable(), LAYOUTS, st.sampled_from(["srt", "vtt"]))
def test_wrapped_subtitles_stream_a_piece_per_cue(output: TranscribeOutput, layout: SubtitleLayout, fmt: str) -> None:
    parts = list(pieces(output, fmt, layout))
    rendered = render(output, fmt, layout)
    assert "".join(parts) == rendered
    cue_count = len(srt_cues(rendered)) if fmt == "srt" else len(vtt_cues(rendered))
    assert len(parts) == cue_count + (fmt == "vtt"), "the header, then one piece per cue: none holds it all"
