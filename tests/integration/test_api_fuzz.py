"""Property-based fuzz of the REST API from the OpenAPI document it serves: no 5xx, no hang.

The service runs the real pipeline (media checks, FFmpeg) with no Triton
behind it, so anything that got past the edge would show as a 5xx.
Media URLs may not reach loopback or private addresses here: the fuzz cannot
hit the machine's own services.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from orchestrator.api.app import create_app
from orchestrator.common.net import free_port, serving
from orchestrator.jobs.redis_server import running_redis
from orchestrator.settings import Settings

MAX_WAIT_S = 15.0  # the media timeout below, twice over: nothing may take longer


@pytest.fixture(scope="module")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on its own loop in a thread: schemathesis calls it synchronously."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    base: list[str] = []

    async def run() -> None:
        async with running_redis(Settings(redis_dir=tmp_path_factory.mktemp("fuzz-redis"))) as redis_url:
            config = Settings(triton_grpc_urls=[f"127.0.0.1:{free_port()}"], media_timeout_sec=3.0, redis_url=redis_url)
            async with serving(create_app(config)) as url:
                base.append(url)
                started.set()
                await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(30)
    yield base[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


@pytest.mark.parametrize(
    ("path", "method", "mode"),
    [
        ("/v1/transcribe", "POST", GenerationMode.POSITIVE),
        ("/v1/transcribe", "POST", GenerationMode.NEGATIVE),  # bodies that break the schema
        ("/v1/audio/transcriptions", "POST", GenerationMode.POSITIVE),  # stream=true among them: a job each
        ("/v1/audio/translations", "POST", GenerationMode.POSITIVE),
        ("/v1/models/{model}", "GET", GenerationMode.POSITIVE),
        ("/v1/jobs", "POST", GenerationMode.POSITIVE),
        ("/v1/jobs", "POST", GenerationMode.NEGATIVE),
        ("/v1/jobs/{job_id}", "GET", GenerationMode.POSITIVE),
        ("/v1/jobs/{job_id}/transcript", "GET", GenerationMode.POSITIVE),
        ("/healthz", "GET", GenerationMode.POSITIVE),
        ("/readyz", "GET", GenerationMode.POSITIVE),
    ],
)
def test_no_request_makes_the_service_fail_or_hang(
    live_service: str, path: str, method: str, mode: GenerationMode
) -> None:
    api = schemathesis.openapi.from_url(f"{live_service}/openapi.json")
    operation = api[path][method]
    seen: dict[int, int] = {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def call(case: schemathesis.Case) -> None:
        response = case.call(base_url=live_service, timeout=MAX_WAIT_S)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500 or path == "/readyz", response.text  # readyz: 503 means "no Triton"
        if response.status_code >= 400 and path.startswith("/v1/"):
            error = response.json()["error"]
            assert error["code"] and error["message"] and error["hint"]

    call()
    print(f"{method} {path} {mode.value}: statuses {dict(sorted(seen.items()))}")
