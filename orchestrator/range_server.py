"""A loopback HTTP server for local files that honours Range (aiohttp FileResponse).

The CLI serves a local path through it, so the pipeline only ever sees
http:// URLs; the tests and benchmarks use it as the media server.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web


def file_app(root: Path) -> web.Application:
    root = root.resolve()

    async def serve(request: web.Request) -> web.StreamResponse:
        # normalised, not resolved: links inside the root are served as files
        path = Path(os.path.normpath(root / request.match_info["name"]))
        if not path.is_relative_to(root) or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    app = web.Application()
    app.router.add_get("/{name:.+}", serve)
    return app


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, shutdown_timeout_s: float = 60.0
) -> AsyncIterator[str]:
    """Run `app` on loopback; yield its base URL (a free port unless given).

    A client that hangs up cancels its handler (its FFmpeg and inference with
    it). On exit the port closes first; handlers still running get
    `shutdown_timeout_s` to finish before they are cancelled.
    """
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def serving_file(path: Path) -> AsyncIterator[str]:
    """Yield an http:// URL for one local file."""
    path = path.resolve()
    async with serving(file_app(path.parent)) as base:
        yield f"{base}/{path.name}"
