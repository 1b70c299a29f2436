"""Shared fixtures: real speech, a media server that honours Range, one that
does not, a real Triton with the project's models, and the service on top."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from orchestrator.api.app import create_app
from orchestrator.common.fileserver import file_app
from orchestrator.common.net import serving
from orchestrator.infer.triton_server import FREE_PORTS, running_triton
from orchestrator.jobs.redis_server import running_redis
from orchestrator.settings import Settings

from .corpus import Recording, clips_under, join_clips, repeated_recording, speech_dir
from .keyed_service import allowed_media, keyed_service
from .media_servers import LOOPBACK
from .redis_fleet import own_database


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory the media servers offer, with links to the shared speech (see media_root)."""
    root = tmp_path_factory.mktemp("media")
    (root / "speech").symlink_to(speech_dir(), target_is_directory=True)
    return root


@pytest.fixture(scope="session")
def lj_recording(media_dir: Path) -> Recording:
    """The 32 consecutive LJ Speech clips joined with short pauses (about 4 minutes)."""
    return join_clips(clips_under("ljspeech"), media_dir / "lj001.wav", gaps_s=0.6)


@pytest.fixture(scope="session")
def media_root(media_dir: Path, lj_recording: Recording) -> Path:
    """Files the media servers offer: lj001.wav always (many tests name it without asking for
    lj_recording, and alone they would fetch a 404), built recordings, and the shared speech."""
    return media_dir


LONG_MINUTES = 30.0  # 60 macro chunks of 30 s: a job cancelled after its first few has most left
SPEECH_MP3 = ["-ar", "16000", "-ac", "1", "-b:a", "48k"]  # as test_two_hours_cli encodes its two hours


@pytest.fixture(scope="session")
def long_recording(media_root: Path) -> Recording:
    """The long-form speech repeated to about LONG_MINUTES, an MP3 under media_root/long (built by stream
    copy in seconds): media no cancel test can see finish before its cancel lands."""
    return repeated_recording(media_root / "long", LONG_MINUTES, SPEECH_MP3)


@pytest_asyncio.fixture(scope="session")
async def media_url(media_root: Path) -> AsyncIterator[str]:
    """Base URL of a real aiohttp FileResponse server (it honours Range)."""
    async with serving(file_app(media_root)) as base:
        yield base


@pytest_asyncio.fixture(scope="session")
async def no_range_url(media_root: Path) -> AsyncIterator[str]:
    """A server that ignores Range and always sends the whole file with 200."""

    async def whole(request: web.Request) -> web.Response:
        path = media_root / request.match_info["name"]
        return web.Response(body=path.read_bytes(), content_type="application/octet-stream")

    app = web.Application()
    app.router.add_get("/{name:.+}", whole)
    async with serving(app) as base:
        yield base


@pytest_asyncio.fixture(scope="session")
async def triton_grpc_url() -> AsyncIterator[str]:
    async with running_triton(Settings(**FREE_PORTS)) as url:
        yield url


TWO_MODELS = ["tiny.en", "base"]  # English-only and multilingual, both packaged


@pytest_asyncio.fixture(scope="session")
async def two_models_grpc_url() -> AsyncIterator[str]:
    """One Triton serving both models at once (each its own Triton model)."""
    async with running_triton(Settings(models=TWO_MODELS, **FREE_PORTS)) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def two_models_service_url(two_models_grpc_url: str) -> AsyncIterator[str]:
    settings = Settings(models=TWO_MODELS, triton_grpc_urls=[two_models_grpc_url], allowed_media_hosts=LOOPBACK)
    async with serving(create_app(settings)) as base:
        yield base


@pytest_asyncio.fixture(scope="session")
async def redis_server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A real redis-server on a free port, its data in a temporary directory: the fleet's job store."""
    async with running_redis(Settings(redis_dir=tmp_path_factory.mktemp("redis"))) as url:
        yield url


@pytest_asyncio.fixture
async def redis_url(redis_server: str) -> AsyncIterator[str]:
    async with own_database(redis_server) as url:
        yield url


@pytest_asyncio.fixture(scope="session")
async def service_url(triton_grpc_url: str, redis_server: str) -> AsyncIterator[str]:
    settings = Settings(triton_grpc_urls=[triton_grpc_url], allowed_media_hosts=LOOPBACK, redis_url=redis_server)
    async with serving(create_app(settings)) as base:
        yield base


@pytest_asyncio.fixture(scope="session")
async def keyed_service_url(triton_grpc_url: str, redis_server: str) -> AsyncIterator[str]:
    """The service as production runs it: keys on (keyed_service.SERVICE_KEY), loopback media refused."""
    async with own_database(redis_server) as redis_url, keyed_service(triton_grpc_url, redis_url) as base:
        yield base


@pytest_asyncio.fixture(scope="session")
async def allowed_media_url(media_root: Path) -> AsyncIterator[str]:
    """media_root served from the one host keyed_service_url may fetch from."""
    async with allowed_media(media_root) as base:
        yield base
