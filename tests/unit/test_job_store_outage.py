"""Redis down: job routes answer 503 with a hint and Retry-After, never a bare internal error."""

from __future__ import annotations

import aiohttp

from orchestrator.api.app import create_app
from orchestrator.common.net import free_port, serving
from orchestrator.schemas import MediaRequest, TranscribeOutput
from orchestrator.settings import Settings


async def never_called(request: MediaRequest, *_: object) -> TranscribeOutput:
    raise AssertionError("no job can start without its store")


async def test_job_routes_answer_503_with_retry_after_while_redis_is_down() -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0", job_workers=0)  # nothing listens there
    async with serving(create_app(settings, transcriber=never_called)) as base, aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1/jobs", json={"media_url": "https://example.com/a.mp3"}) as response:
            body = await response.json()
            assert response.status == 503 and response.headers["Retry-After"]
            assert body["error"]["code"] == "job_store_unreachable" and body["error"]["hint"]
        async with session.get(f"{base}/v1/jobs/some-job-id-0000") as response:
            assert response.status == 503
