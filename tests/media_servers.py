"""Media servers that misbehave on purpose, for the faults a real one can cause."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

LOOPBACK = ["127.0.0.0/8", "::1"]  # where the tests' media servers live: refused by default, allowed by setting
WRITE_BYTES = 16 * 1024


@dataclass
class Drops:
    """How the dropping routes behave: cut reads after `after_bytes`, `budget` times on /drop-some/."""

    after_bytes: int = 64 * 1024
    budget: int = 3
    dropped: list[int] = field(default_factory=list)  # range starts whose read was cut


def misbehaving_app(root: Path, drops: Drops) -> web.Application:
    """Routes, each one fault:

    /status/{code}           answers that status
    /page                    an HTML page
    /redirect/{n}/{name}     n redirects, then the file
    /to?url=...              one redirect to any URL
    /drop-some/{name}        Range-honouring, but cuts the first `budget` reads short
    /drop-always/{name}      cuts every read after a few kilobytes
    """

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="no")

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Listen to our podcast!</body></html>", content_type="text/html")

    async def redirect(request: web.Request) -> web.Response:
        n, name = int(request.match_info["n"]), request.match_info["name"]
        if n == 0:
            return web.FileResponse(root / name)  # type: ignore[return-value]
        raise web.HTTPFound(f"/redirect/{n - 1}/{name}")

    async def to(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    async def dropping(request: web.Request, always: bool) -> web.StreamResponse:
        path = root / request.match_info["name"]
        size = path.stat().st_size
        start = request.http_range.start or 0
        if start >= size:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
        stop = min(size, request.http_range.stop or size)
        headers = {
            "Content-Range": f"bytes {start}-{stop - 1}/{size}",
            "Content-Length": str(stop - start),
            "Accept-Ranges": "bytes",
            "Content-Type": "audio/wav",
        }
        response = web.StreamResponse(status=206, headers=headers)
        await response.prepare(request)
        with path.open("rb") as media:
            media.seek(start)
            sent = 0
            while sent < stop - start:
                if sent >= drops.after_bytes and (always or drops.budget > 0):
                    drops.budget -= 0 if always else 1
                    drops.dropped.append(start)
                    assert request.transport is not None
                    request.transport.close()  # the fault: the connection dies mid-body
                    return response
                data = media.read(min(WRITE_BYTES, stop - start - sent))
                try:
                    await response.write(data)
                except ConnectionError:
                    return response  # the reader hung up
                sent += len(data)
        return response

    async def drop_some(request: web.Request) -> web.StreamResponse:
        return await dropping(request, always=False)

    async def drop_always(request: web.Request) -> web.StreamResponse:
        return await dropping(request, always=True)

    app = web.Application()
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/page", page)
    app.router.add_get("/redirect/{n}/{name:.+}", redirect)
    app.router.add_get("/to", to)
    app.router.add_get("/drop-some/{name:.+}", drop_some)
    app.router.add_get("/drop-always/{name:.+}", drop_always)
    return app
