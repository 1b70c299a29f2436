"""Transcript renderings: SRT and WebVTT parse back to the segments; text and JSON are the output."""

from __future__ import annotations

import html
import io
import json
import re

import pytest
import srt
import webvtt
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.formats.writers import FORMATS, TEXT_PIECE_CHARS, ZERO_WIDTH_SPACE, pieces, render, to_srt, to_vtt
from orchestrator.schemas import Segment, TranscribeOutput

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
    assert set(FORMATS) == {"text", "json", "srt", "vtt", "verbose_json"}
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
