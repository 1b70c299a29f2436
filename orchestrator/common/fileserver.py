"""An HTTP app serving the files under a folder, honouring Range (aiohttp FileResponse).

The tests and benchmarks use it as the media server. (The CLI once served
local files through it; it uploads them now: a service refuses loopback
media by default, and a remote one could not reach it.)
"""

from __future__ import annotations

import os
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
