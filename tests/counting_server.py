"""A Range-honouring file server that records what it was asked for and what it sent.

It proves the pipeline seeks: every macro chunk's FFmpeg asks for bytes from
near its own offset, and the file is not sent whole again for each chunk.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

WRITE_BYTES = 16 * 1024
SEND_BUFFER_BYTES = 32 * 1024  # small, so "sent" is close to "read by the client"


@dataclass
class Served:
    range_starts: list[int] = field(default_factory=list)
    per_request: list[tuple[int, int]] = field(default_factory=list)  # (start, bytes sent)
    bytes_sent: int = 0


def counting_app(root: Path, served: Served) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        path = root / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        size = path.stat().st_size
        wanted = request.http_range
        start = wanted.start or 0
        start = size + start if start < 0 else start
        stop = min(size, wanted.stop if wanted.stop is not None else size)
        if start >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        ranged = "Range" in request.headers
        served.range_starts.append(start)
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(stop - start), "Content-Type": "audio/wav"}
        if ranged:
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        response = web.StreamResponse(status=206 if ranged else 200, headers=headers)
        await response.prepare(request)
        with path.open("rb") as media:
            media.seek(start)
            remaining = stop - start
            try:
                while remaining > 0:
                    data = media.read(min(WRITE_BYTES, remaining))
                    await response.write(data)
                    served.bytes_sent += len(data)
                    remaining -= len(data)
            except (ConnectionResetError, ConnectionError):
                pass  # FFmpeg hung up once it had its time range
        served.per_request.append((start, stop - start - remaining))
        return response

    app = web.Application()
    app.router.add_get("/{name:.+}", handler)
    return app
