"""Readiness and the queue users wait in: what the load balancer and the autoscaler read."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.common.net import free_port
from orchestrator.settings import Settings

from ..polling import wait_until
from ..scrape import IN_FLIGHT, metric_where
from .test_service_edge import Gate, instant, post, service


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free port, for this test only."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed (make system-deps)")
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            done = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True)
            if done.stdout.strip() == "PONG":
                break
            proc.poll()
            assert proc.returncode is None, "redis-server exited"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


async def readyz(settings: Settings) -> tuple[int, Any]:
    async with service(settings, instant) as (session, base), session.get(f"{base}/readyz") as response:
        return response.status, await response.json()


async def test_ready_when_its_redis_answers(redis_url: str) -> None:
    status, body = await readyz(Settings(redis_url=redis_url))
    assert status == 200 and body["ready"] is True and body["redis"] is True
    assert body["endpoints"] == {}  # a stand-in transcriber needs no Triton


async def test_not_ready_when_its_redis_is_gone() -> None:
    status, body = await readyz(Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert status == 503 and body["ready"] is False and body["redis"] is False


async def test_without_redis_configured_redis_is_not_asked() -> None:
    status, body = await readyz(Settings())
    assert status == 200 and body["redis"] is None


async def test_not_ready_when_no_triton_endpoint_is() -> None:
    from orchestrator.api.app import create_app
    from orchestrator.common.net import serving

    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    async with serving(create_app(Settings(triton_grpc_urls=dead))) as base, aiohttp.ClientSession() as session:
        async with session.get(f"{base}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["endpoints"] == dict.fromkeys(dead, False)


async def test_metrics_show_the_queue_users_wait_in() -> None:
    gate = Gate()
    settings = Settings(max_requests_in_flight=1, max_queued_requests=2)
    async with service(settings, gate) as (session, base):
        running = [asyncio.create_task(post(session, base)) for _ in range(3)]
        # one runs; the other two have arrived (counted as running or queued) and wait for its slot
        await wait_until(lambda: gate.started == 1, 10, "the first request to run")
        await wait_until(metric_where(session, base, IN_FLIGHT, lambda n: n == 3), 10, "all three requests to arrive")
        async with session.get(f"{base}/metrics") as response:
            scraped = await response.text()
        gate.release.set()
        assert [status for status, _ in await asyncio.gather(*running)] == [200, 200, 200]
        async with session.get(f"{base}/metrics") as response:
            after = await response.text()
    assert "longscribe_jobs_queued 2.0" in scraped
    assert "longscribe_jobs_queued 0.0" in after
