"""A transcript as JSON, verbose JSON, text, SRT, WebVTT or TSV, with its content type."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping

from longscribe_core.assembly import written_with_spaces
from orchestrator.formats.cues import Cue, cues
from orchestrator.schemas import RESPONSE_FORMATS, Segment, SubtitleLayout, TranscribeOutput

FORMATS = RESPONSE_FORMATS
CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    "text": "text/plain",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "tsv": "text/tab-separated-values",
}
EXTENSIONS = {"text": "txt", "verbose_json": "json"}  # a download's file extension, where not the format's name
# verbose_json's extras; plain json keeps the seed's shape (plus words when asked for)
VERBOSE_SEGMENT_FIELDS = {"avg_logprob", "no_speech_prob", "compression_ratio", "temperature", "confidence"}
VERBOSE_TOP_FIELDS = {"language", "language_code", "timings", "model"}  # plain json: the seed's exact keys
TEXT_PIECE_CHARS = 64 * 1024  # plain text has no cues to cut at
TSV_HEADER = "start\tend\ttext\n"  # openai/whisper's, so its readers read ours
_TSV_BREAKS = re.compile(r"[\t\r\n]+")  # a tab or a line break inside the text would shift the columns


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


def _cue_text(text: str) -> str:
    # a blank line would end the cue early in both formats
    return "\n".join(line for line in text.splitlines() if line.strip()) or "…"


def srt_text(text: str) -> str:
    """Cue text that no SRT reader takes for markup; `-->` inside a line is text to SRT parsers."""
    return _SRT_MARKUP.sub(lambda m: m.group(0) + ZERO_WIDTH_SPACE, _cue_text(text))


def vtt_text(text: str) -> str:
    """Cue text escaped as WebVTT requires: `&` and `<` always, and `>` where it would close `-->`."""
    escaped = _cue_text(text).replace("&", "&amp;").replace("<", "&lt;")
    return escaped.replace("-->", "--&gt;")


def _cues(segments: Iterable[Segment], layout: SubtitleLayout | None) -> Iterator[Cue]:
    """One cue per segment as it is; with a line width, the segments' words wrapped as openai/whisper does."""
    if layout is not None and layout.max_line_width is not None:
        return cues(segments, layout)
    return (Cue(s.start_time_sec, s.end_time_sec, s.text, s.speaker) for s in segments)


def said_by(speaker: str | None, text: str) -> str:
    """`SPEAKER_00: text`, the prefix a diarized transcript's srt, tsv and text put before what was said."""
    return f"{speaker}: {text}" if speaker is not None else text


def vtt_voice(speaker: str | None) -> str:
    """WebVTT's voice tag, `<v SPEAKER_00>`, before a cue's text; its annotation escaped (`>` would end it)."""
    if speaker is None:
        return ""
    name = " ".join(speaker.split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<v {name}>"


def srt_pieces(output: TranscribeOutput, layout: SubtitleLayout | None = None) -> Iterator[str]:
    """SRT cue by cue, a blank line between cues: joined, the whole file."""
    return _srt(output.segments, layout)


def _srt(segments: Iterable[Segment], layout: SubtitleLayout | None) -> Iterator[str]:
    for i, c in enumerate(_cues(segments, layout), start=1):
        cue = f"{i}\n{_clock(c.start_s, ',')} --> {_clock(c.end_s, ',')}\n{srt_text(said_by(c.speaker, c.text))}\n"
        yield cue if i == 1 else "\n" + cue


def vtt_pieces(output: TranscribeOutput, layout: SubtitleLayout | None = None) -> Iterator[str]:
    """WebVTT: the header, then cue by cue, a blank line between cues."""
    return _vtt(output.segments, layout)


def _vtt(segments: Iterable[Segment], layout: SubtitleLayout | None) -> Iterator[str]:
    yield "WEBVTT\n\n"
    for i, c in enumerate(_cues(segments, layout)):
        cue = f"{_clock(c.start_s, '.')} --> {_clock(c.end_s, '.')}\n{vtt_voice(c.speaker)}{vtt_text(c.text)}\n"
        yield cue if i == 0 else "\n" + cue


def tsv_row(segment: Segment) -> str:
    """openai/whisper's row: start and end in integer milliseconds, the text on one line without tabs."""
    text = _TSV_BREAKS.sub(" ", said_by(segment.speaker, segment.text)).strip()
    return f"{round(1000 * segment.start_time_sec)}\t{round(1000 * segment.end_time_sec)}\t{text}\n"


def tsv_pieces(output: TranscribeOutput) -> Iterator[str]:
    """TSV: the header, then a row per segment."""
    return _tsv(output.segments)


def _tsv(segments: Iterable[Segment]) -> Iterator[str]:
    yield TSV_HEADER
    yield from (tsv_row(s) for s in segments)


def json_pieces(output: TranscribeOutput, verbose: bool) -> Iterator[str]:
    """The JSON answer segment by segment, byte for byte what `to_json` writes (segments come first)."""
    return streamed_json(output.segments, lambda: output, verbose)


def streamed_json(segments: Iterable[Segment], rest: Callable[[], TranscribeOutput], verbose: bool) -> Iterator[str]:
    """`json_pieces` of the answer whose segments come one by one, and whose other fields `rest()` gives once
    they are through (its own `segments` are not written)."""
    segment_exclude = None if verbose else VERBOSE_SEGMENT_FIELDS
    top_exclude = {"segments"} | (set() if verbose else VERBOSE_TOP_FIELDS)
    yield '{"segments":['
    for i, segment in enumerate(segments):
        yield ("," if i else "") + segment.model_dump_json(exclude=segment_exclude, exclude_none=True)
    yield "]," + rest().model_dump_json(exclude=top_exclude, exclude_none=True)[1:]


def segment_pieces(segments: Iterable[Segment], fmt: str, layout: SubtitleLayout | None = None) -> Iterator[str]:
    """`pieces` of a format written from the segments alone (srt, vtt, tsv), taking them one by one."""
    if fmt == "srt":
        return _srt(segments, layout)
    if fmt == "vtt":
        return _vtt(segments, layout)
    if fmt == "tsv":
        return _tsv(segments)
    raise ValueError(f"{fmt!r} is not written from the segments alone")


def text_pieces(text: str, size: int = TEXT_PIECE_CHARS) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def turn_pieces(segments: Iterable[Segment]) -> Iterator[str]:
    """A diarized transcript's text: one line per speaker turn, `SPEAKER_00: what they said`."""
    speaker: str | None = None
    line: list[str] = []
    previous: Segment | None = None
    for segment in segments:
        if line and segment.speaker != speaker:
            yield said_by(speaker, "".join(line)) + "\n"
            line = []
        if line and previous is not None and (_spaced(previous) or _spaced(segment)):
            line.append(" ")
        line.append(segment.text)
        speaker, previous = segment.speaker, segment
    if line:
        yield said_by(speaker, "".join(line)) + "\n"


def _spaced(segment: Segment) -> bool:
    return bool(written_with_spaces(segment.language_code))


def diarized(output: TranscribeOutput) -> bool:
    """Whether the transcript's segments say who spoke (then text is written by turns)."""
    return any(s.speaker is not None for s in output.segments[:1])


def renamed(segments: Iterable[Segment], names: Mapping[str, str]) -> Iterator[Segment]:
    """The segments with their speakers (and their words') renamed: SPEAKER_00 -> a name the user gave."""
    for s in segments:
        if not names or s.speaker is None:
            yield s
            continue
        words = [w.model_copy(update={"speaker": names.get(w.speaker or "", w.speaker)}) for w in s.words or []]
        yield s.model_copy(update={"speaker": names.get(s.speaker, s.speaker), "words": words if s.words else s.words})


def renamed_output(output: TranscribeOutput, names: Mapping[str, str]) -> TranscribeOutput:
    return output.model_copy(update={"segments": list(renamed(output.segments, names))}) if names else output


def pieces(output: TranscribeOutput, fmt: str, layout: SubtitleLayout | None = None) -> Iterator[str]:
    """`render` in pieces of about one segment each, for answers streamed whatever their size.

    `layout` wraps srt and vtt cues into lines; the other formats have no lines to wrap and ignore it."""
    if fmt in ("json", "verbose_json"):
        return json_pieces(output, verbose=fmt == "verbose_json")
    if fmt == "srt":
        return srt_pieces(output, layout)
    if fmt == "vtt":
        return vtt_pieces(output, layout)
    if fmt == "tsv":
        return tsv_pieces(output)
    if fmt == "text":
        return turn_pieces(output.segments) if diarized(output) else text_pieces(output.text)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def to_srt(output: TranscribeOutput, layout: SubtitleLayout | None = None) -> str:
    return "".join(srt_pieces(output, layout))


def to_vtt(output: TranscribeOutput, layout: SubtitleLayout | None = None) -> str:
    return "".join(vtt_pieces(output, layout))


def to_tsv(output: TranscribeOutput) -> str:
    return "".join(tsv_pieces(output))


def to_json(output: TranscribeOutput, verbose: bool) -> str:
    if verbose:
        return output.to_json()
    exclude = {"segments": {"__all__": VERBOSE_SEGMENT_FIELDS}, **dict.fromkeys(VERBOSE_TOP_FIELDS, True)}
    return output.model_dump_json(exclude=exclude, exclude_none=True)  # type: ignore[arg-type]


def render(output: TranscribeOutput, fmt: str, layout: SubtitleLayout | None = None) -> str:
    if fmt in ("json", "verbose_json"):
        return to_json(output, verbose=fmt == "verbose_json")
    if fmt == "text" and not diarized(output):
        return output.text
    return "".join(pieces(output, fmt, layout))
