"""A loopback HTTP server for local files that honours Range (aiohttp FileResponse).

The CLI serves a local path through it, so the pipeline only ever sees
http:// URLs; the tests and benchmarks use it as the media server. It sits
below both, in `common`, so neither imports the other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from orchestrator.common.net import serving


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
async def serving_file(path: Path) -> AsyncIterator[str]:
    """Yield an http:// URL for one local file."""
    path = path.resolve()
    async with serving(file_app(path.parent)) as base:
        yield f"{base}/{path.name}"
