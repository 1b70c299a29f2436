"""The service as production runs it, for the user-path tests: API keys on and loopback media refused.

Its media server listens on 127.0.0.2, the one host the service is told it
may fetch from (as an operator lists a media host); 127.0.0.1, where the
tests' other servers live, stays refused: a local file must be uploaded."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from orchestrator.api.app import create_app
from orchestrator.common.fileserver import file_app
from orchestrator.common.net import serving
from orchestrator.settings import Settings

SERVICE_KEY = "cli-user-5c1e9a"  # the key the service knows
MEDIA_HOST = "127.0.0.2"  # the media host the service is allowed to fetch from, and only it


@contextlib.asynccontextmanager
async def keyed_service(triton_grpc_url: str, redis_url: str) -> AsyncIterator[str]:
    """Keys on, the default media policy but for MEDIA_HOST; yields the API's URL."""
    settings = Settings(
        triton_grpc_urls=[triton_grpc_url],
        redis_url=redis_url,
        api_keys=[SERVICE_KEY],
        allowed_media_hosts=[MEDIA_HOST],
    )
    async with serving(create_app(settings)) as base:
        yield base


@contextlib.asynccontextmanager
async def allowed_media(root: Path) -> AsyncIterator[str]:
    """A Range-honouring file server on MEDIA_HOST; yields its base URL."""
    async with serving(file_app(root), host=MEDIA_HOST) as base:
        yield base
