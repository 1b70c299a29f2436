"""A transcript as text, JSON, SRT or WebVTT."""

from __future__ import annotations

from .schemas import TranscribeOutput

FORMATS = ("text", "json", "srt", "vtt")


def _clock(seconds: float, decimal: str) -> str:
    millis = int(round(max(0.0, seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def to_srt(output: TranscribeOutput) -> str:
    blocks = [
        f"{i}\n{_clock(s.start_time_sec, ',')} --> {_clock(s.end_time_sec, ',')}\n{s.text}\n"
        for i, s in enumerate(output.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(output: TranscribeOutput) -> str:
    blocks = [f"{_clock(s.start_time_sec, '.')} --> {_clock(s.end_time_sec, '.')}\n{s.text}\n" for s in output.segments]
    return "WEBVTT\n\n" + "\n".join(blocks)


def render(output: TranscribeOutput, fmt: str) -> str:
    if fmt == "json":
        return output.model_dump_json(indent=2)
    if fmt == "srt":
        return to_srt(output)
    if fmt == "vtt":
        return to_vtt(output)
    if fmt == "text":
        return output.text
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
