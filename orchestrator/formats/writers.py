"""A transcript as JSON, verbose JSON, text, SRT or WebVTT, with its content type."""

from __future__ import annotations

import re

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


def to_srt(output: TranscribeOutput) -> str:
    blocks = [
        f"{i}\n{_clock(s.start_time_sec, ',')} --> {_clock(s.end_time_sec, ',')}\n{srt_text(s)}\n"
        for i, s in enumerate(output.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(output: TranscribeOutput) -> str:
    blocks = [
        f"{_clock(s.start_time_sec, '.')} --> {_clock(s.end_time_sec, '.')}\n{vtt_text(s)}\n" for s in output.segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


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
