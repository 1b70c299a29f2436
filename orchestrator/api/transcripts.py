"""A transcript as an HTTP answer, written in pieces: whatever its size, it is never one string in
memory nor one long stretch of rendering on the event loop."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from orchestrator import formats
from orchestrator.schemas import TranscribeOutput


async def stream(
    request: web.Request,
    output: TranscribeOutput,
    fmt: str,
    piece_bytes: int,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """`output` rendered as `fmt`, sent chunked in writes of about `piece_bytes`."""
    response = web.StreamResponse(headers={"Content-Type": f"{formats.CONTENT_TYPES[fmt]}; charset=utf-8"})
    response.headers.update(headers or {})
    response.enable_chunked_encoding()
    await response.prepare(request)
    buffer: list[bytes] = []
    held = 0
    for piece in formats.pieces(output, fmt):
        buffer.append(piece.encode())
        held += len(buffer[-1])
        if held >= piece_bytes:
            await response.write(b"".join(buffer))  # waits for the client, and lets the loop run
            buffer, held = [], 0
    await response.write(b"".join(buffer))
    await response.write_eof()
    return response
