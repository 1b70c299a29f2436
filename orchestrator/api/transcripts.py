"""A transcript as an HTTP answer, written in pieces: whatever its size, it is never one string in
memory nor one long stretch of rendering on the event loop."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from pydantic import ValidationError

from orchestrator import formats
from orchestrator.errors import InvalidTranscriptQuery
from orchestrator.schemas import SubtitleLayout, TranscribeOutput

LAYOUT_PARAMS = tuple(SubtitleLayout.model_fields)  # max_line_width, max_line_count


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
) -> web.StreamResponse:
    """`output` rendered as `fmt` (srt and vtt cues wrapped by `layout`), sent chunked in writes of about
    `piece_bytes`."""
    response = web.StreamResponse(headers={"Content-Type": f"{formats.CONTENT_TYPES[fmt]}; charset=utf-8"})
    response.headers.update(headers or {})
    response.enable_chunked_encoding()
    await response.prepare(request)
    buffer: list[bytes] = []
    held = 0
    for piece in formats.pieces(output, fmt, layout):
        buffer.append(piece.encode())
        held += len(buffer[-1])
        if held >= piece_bytes:
            await response.write(b"".join(buffer))  # waits for the client, and lets the loop run
            buffer, held = [], 0
    await response.write(b"".join(buffer))
    await response.write_eof()
    return response
