"""A transcript as an HTTP answer, written in pieces: whatever its size, it is never one string in
memory nor one long stretch of rendering on the event loop."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from pydantic import ValidationError

from longscribe_core.speakers import MAX_SPEAKERS
from orchestrator import formats
from orchestrator.errors import InvalidTranscriptQuery
from orchestrator.formats import writers
from orchestrator.jobs.stored import SegmentReader, Stored
from orchestrator.schemas import MAX_SPEAKER_NAME_CHARS, SubtitleLayout, TranscribeOutput

LAYOUT_PARAMS = tuple(SubtitleLayout.model_fields)  # max_line_width, max_line_count
MAX_SPEAKER_NAMES_CHARS = 4096  # ?speaker_names=: 32 speakers' names of 64 characters, quoted, fit


def speaker_names(query: Mapping[str, str]) -> dict[str, str]:
    """?speaker_names={"SPEAKER_00": "Ada", ...}: what a diarized transcript's speakers are called in this
    download (the web page's renames); absent: as found."""
    raw = query.get("speaker_names")
    if not raw:
        return {}
    problem = "speaker_names must be a JSON object of speaker -> name"
    if len(raw) > MAX_SPEAKER_NAMES_CHARS:
        raise InvalidTranscriptQuery(f"speaker_names is over {MAX_SPEAKER_NAMES_CHARS} characters")
    try:
        names = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidTranscriptQuery(f"{problem}: {exc}") from exc
    if not isinstance(names, dict) or len(names) > MAX_SPEAKERS:
        raise InvalidTranscriptQuery(f"{problem}, of at most {MAX_SPEAKERS} speakers")
    for key, name in names.items():
        if not isinstance(name, str) or not 0 < len(name.strip()) <= MAX_SPEAKER_NAME_CHARS:
            raise InvalidTranscriptQuery(
                f"{problem}; the name of {key!r} must be 1-{MAX_SPEAKER_NAME_CHARS} characters"
            )
    return {key: " ".join(name.split()) for key, name in names.items()}


def format_of(query: Mapping[str, str]) -> str:
    """?format=..., json when absent."""
    fmt = query.get("format", "json")
    if fmt not in formats.FORMATS:
        raise InvalidTranscriptQuery(f"format must be one of {', '.join(formats.FORMATS)}")
    return fmt


def layout(query: Mapping[str, str]) -> SubtitleLayout:
    """?max_line_width=N&max_line_count=M, checked (whole numbers within their bounds; a count needs a width)."""
    try:
        return SubtitleLayout.model_validate({name: query[name] for name in LAYOUT_PARAMS if name in query})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'query'}: {e['msg']}" for e in exc.errors())
        raise InvalidTranscriptQuery(f"invalid query: {problems}") from exc


async def stream(
    request: web.Request,
    output: TranscribeOutput,
    fmt: str,
    piece_bytes: int,
    headers: Mapping[str, str] | None = None,
    layout: SubtitleLayout | None = None,
    names: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """`output` rendered as `fmt` (srt and vtt cues wrapped by `layout`, speakers renamed by `names`), sent
    chunked in writes of about `piece_bytes`."""
    response = await _prepared(request, fmt, headers)
    sink = _Sink(response, piece_bytes)
    for piece in formats.pieces(writers.renamed_output(output, names or {}), fmt, layout):
        await sink.write(piece)
    await sink.close()
    return response


async def stream_stored(
    request: web.Request,
    stored: Stored,
    fmt: str,
    piece_bytes: int,
    headers: Mapping[str, str] | None = None,
    layout: SubtitleLayout | None = None,
    names: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """A job's stored transcript (verbose JSON in Redis) as `stream` would write it, read a piece at a time:
    verbose JSON as stored (unless speakers are renamed); the other formats from its segments, parsed a few
    hundred ahead of the writer; a diarized transcript's text by speaker turns, from its segments too."""
    response = await _prepared(request, fmt, headers)
    sink = _Sink(response, piece_bytes)
    raw, reader = stored.raw(), SegmentReader()

    async def read_on(enough: int) -> None:
        """Parse on until `enough` segments wait (or all is read)."""
        while not reader.done and len(reader.parsed) < enough:
            data = await anext(raw, None)
            reader.feed(data or b"", final=data is None)

    said = False  # diarized: its text is written by speaker turns, from the segments
    if fmt == "text":
        await read_on(1)
        said = bool(reader.parsed) and reader.parsed[0].speaker is not None
    if fmt == "verbose_json" and not names:
        async for data in raw:
            await sink.write_bytes(data)
    elif fmt == "text" and not said:  # the text comes after the segments, which it does not need
        while not reader.done:
            await read_on(1)
            reader.parsed.clear()
        for piece in writers.text_pieces(reader.rest().text):
            await sink.write(piece)
    else:
        segments = writers.renamed(reader.segments(), names or {})
        if fmt in ("json", "verbose_json"):
            pieces = writers.streamed_json(segments, reader.rest, verbose=fmt == "verbose_json")
        elif fmt == "text":
            pieces = writers.turn_pieces(segments)
        else:
            pieces = writers.segment_pieces(segments, fmt, layout)
        while True:
            await read_on(PARSED_AHEAD)
            rendered = next(pieces, None)
            if rendered is None:
                break
            await sink.write(rendered)
    await sink.close()
    return response


PARSED_AHEAD = 256  # segments parsed ahead of the writer: more than any one piece (a wrapped cue) takes


async def _prepared(request: web.Request, fmt: str, headers: Mapping[str, str] | None) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": f"{formats.CONTENT_TYPES[fmt]}; charset=utf-8"})
    response.headers.update(headers or {})
    response.enable_chunked_encoding()
    await response.prepare(request)
    return response


@dataclass
class _Sink:
    """Writes gathered to about `piece_bytes` each: a write waits for the client, and lets the loop run."""

    response: web.StreamResponse
    piece_bytes: int
    buffer: list[bytes] = field(default_factory=list)
    held: int = 0

    async def write(self, piece: str) -> None:
        await self.write_bytes(piece.encode())

    async def write_bytes(self, data: bytes) -> None:
        self.buffer.append(data)
        self.held += len(data)
        if self.held >= self.piece_bytes:
            await self.response.write(b"".join(self.buffer))
            self.buffer, self.held = [], 0

    async def close(self) -> None:
        await self.response.write(b"".join(self.buffer))
        await self.response.write_eof()
