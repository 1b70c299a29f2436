"""A transcript as JSON, verbose JSON, text, SRT or WebVTT, with its content type."""

from __future__ import annotations

import re
from collections.abc import Iterator

from orchestrator.schemas import RESPONSE_FORMATS, Segment, TranscribeOutput

FORMATS = RESPONSE_FORMATS
CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
}
# verbose_json's extras; plain json keeps the seed's shape (plus words when asked for)
VERBOSE_SEGMENT_FIELDS = {"avg_logprob", "no_speech_prob", "compression_ratio", "temperature", "confidence"}
VERBOSE_TOP_FIELDS = {"language", "language_code", "timings", "model"}  # plain json: the seed's exact keys
TEXT_PIECE_CHARS = 64 * 1024  # plain text has no cues to cut at


def _clock(seconds: float, decimal: str) -> str:
    millis = int(round(max(0.0, seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


# SRT has no escapes, but players read HTML-like tags (<i>, </font>) and ASS overrides ({\an8}) in it:
# a zero-width space after the opener leaves the text as it reads and makes it no markup
_SRT_MARKUP = re.compile(r"(<)(?=[A-Za-z/])|(\{)(?=\\)")
ZERO_WIDTH_SPACE = "\u200b"


def _cue_text(segment: Segment) -> str:
    # a blank line would end the cue early in both formats
    return "\n".join(line for line in segment.text.splitlines() if line.strip()) or "…"


def srt_text(segment: Segment) -> str:
    """Cue text that no SRT reader takes for markup; `-->` inside a line is text to SRT parsers."""
    return _SRT_MARKUP.sub(lambda m: m.group(0) + ZERO_WIDTH_SPACE, _cue_text(segment))


def vtt_text(segment: Segment) -> str:
    """Cue text escaped as WebVTT requires: `&` and `<` always, and `>` where it would close `-->`."""
    escaped = _cue_text(segment).replace("&", "&amp;").replace("<", "&lt;")
    return escaped.replace("-->", "--&gt;")


def srt_pieces(output: TranscribeOutput) -> Iterator[str]:
    """SRT cue by cue, a blank line between cues: joined, the whole file."""
    for i, s in enumerate(output.segments, start=1):
        cue = f"{i}\n{_clock(s.start_time_sec, ',')} --> {_clock(s.end_time_sec, ',')}\n{srt_text(s)}\n"
        yield cue if i == 1 else "\n" + cue


def vtt_pieces(output: TranscribeOutput) -> Iterator[str]:
    """WebVTT: the header, then cue by cue, a blank line between cues."""
    yield "WEBVTT\n\n"
    for i, s in enumerate(output.segments):
        cue = f"{_clock(s.start_time_sec, '.')} --> {_clock(s.end_time_sec, '.')}\n{vtt_text(s)}\n"
        yield cue if i == 0 else "\n" + cue


def json_pieces(output: TranscribeOutput, verbose: bool) -> Iterator[str]:
    """The JSON answer segment by segment, byte for byte what `to_json` writes (segments come first)."""
    segment_exclude = None if verbose else VERBOSE_SEGMENT_FIELDS
    top_exclude = {"segments"} | (set() if verbose else VERBOSE_TOP_FIELDS)
    yield '{"segments":['
    for i, segment in enumerate(output.segments):
        yield ("," if i else "") + segment.model_dump_json(exclude=segment_exclude, exclude_none=True)
    yield "]," + output.model_dump_json(exclude=top_exclude, exclude_none=True)[1:]


def text_pieces(text: str, size: int = TEXT_PIECE_CHARS) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def pieces(output: TranscribeOutput, fmt: str) -> Iterator[str]:
    """`render` in pieces of about one segment each, for answers streamed whatever their size."""
    if fmt in ("json", "verbose_json"):
        return json_pieces(output, verbose=fmt == "verbose_json")
    if fmt == "srt":
        return srt_pieces(output)
    if fmt == "vtt":
        return vtt_pieces(output)
    if fmt == "text":
        return text_pieces(output.text)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def to_srt(output: TranscribeOutput) -> str:
    return "".join(srt_pieces(output))


def to_vtt(output: TranscribeOutput) -> str:
    return "".join(vtt_pieces(output))


def to_json(output: TranscribeOutput, verbose: bool) -> str:
    if verbose:
        return output.to_json()
    exclude = {"segments": {"__all__": VERBOSE_SEGMENT_FIELDS}, **dict.fromkeys(VERBOSE_TOP_FIELDS, True)}
    return output.model_dump_json(exclude=exclude, exclude_none=True)  # type: ignore[arg-type]


def render(output: TranscribeOutput, fmt: str) -> str:
    if fmt in ("json", "verbose_json"):
        return to_json(output, verbose=fmt == "verbose_json")
    if fmt == "srt":
        return to_srt(output)
    if fmt == "vtt":
        return to_vtt(output)
    if fmt == "text":
        return output.text
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
