"""Many followers of one running job: one Redis reader per process fans the job's events out, so 150
SSE streams do not each hold a pooled connection. The job succeeds, a new job is still accepted, every
follower gets every event exactly once and `end`, even when the reader's connection is killed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio
import redis.asyncio as redis
from httpx_sse import aconnect_sse

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.jobs.event_hub import CLIENT_NAME
from orchestrator.settings import Settings

from ..corpus import Recording, wer
from ..media_servers import LOOPBACK
from ..redis_fleet import own_database
from ..sse import read_events

pytestmark = pytest.mark.integration
FOLLOWERS = 150  # over redis-py's default pool (100 connections), which raises when exhausted
# small macro chunks: a 4-minute job with eight chunk events, long enough for every follower to join
JOB = {"params": {"macro_chunk_size_sec": 30}}
POOL = 16  # the bounded pool, far below the followers: each would have pinned one before
CONNECTIONS_BOUND = POOL + 1  # every pooled use (the worker, cancels, webhooks, reads) plus the one reader
ATTACH_S = 180.0  # all followers have their first event (generous: the machine is loaded)
WER_BOUND = 0.08  # as for the same recording in test_jobs
KEY = "follower-key"
MONITOR_NAME = "test-monitor"  # this test's own connections to Redis, left out of the service's count
AUTH = {"Authorization": f"Bearer {KEY}"}  # keys on, as a shared service runs

Event = tuple[str, str, str]


@pytest_asyncio.fixture
async def service(triton_grpc_url: str, redis_server: str) -> AsyncIterator[tuple[str, str]]:
    """The service on a Redis database of its own (its connections can be told apart); its base and that URL."""
    async with own_database(redis_server) as redis_url:
        redis_url = redis_url
        settings = Settings(
            triton_grpc_urls=[triton_grpc_url],
            allowed_media_hosts=LOOPBACK,
            redis_url=redis_url,
            api_keys=[KEY],
            max_event_streams_per_key=FOLLOWERS,  # one dashboard's many tabs: this test is about Redis, not the limit
            redis_max_connections=POOL,
        )
        async with serving(create_app(settings)) as base:
            yield base, redis_url


async def submit(session: aiohttp.ClientSession, api: str, body: dict[str, Any]) -> str:
    async with session.post(f"{api}/v1/jobs", json=body) as response:
        assert response.status == 202, await response.text()
        return str((await response.json())["id"])


async def follow(http: httpx.AsyncClient, url: str, attached: list[int]) -> list[Event]:
    """A real SSE client: every event until `end`; counts itself in `attached` at its first event."""
    seen: list[Event] = []
    async with aconnect_sse(http, "GET", url) as source:
        assert source.response.status_code == 200, await source.response.aread()
        async for event in source.aiter_sse():
            if not event.data:
                continue  # a keep-alive comment
            if not seen:
                attached.append(1)
            seen.append((event.id, event.event, event.data))
            if event.event == "end":
                break
    return seen


async def service_clients(monitor: redis.Redis) -> list[dict[str, Any]]:
    """The service's connections to Redis now: those on its database, but the monitor's own. The monitor
    is told apart by name, not by one connection's id: the sampler and the test ask it at once, so its
    pool holds two connections at times (that second one once counted as the service's 18th)."""
    db = monitor.connection_pool.connection_kwargs.get("db", 0)
    return [c for c in await monitor.client_list() if int(c["db"]) == int(db) and c["name"] != MONITOR_NAME]


async def wait_until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_150_followers_of_a_running_job_share_one_redis_reader_and_lose_nothing_when_it_is_killed(
    service: tuple[str, str], media_url: str, lj_recording: Recording
) -> None:
    base, redis_url = service
    monitor = redis.Redis.from_url(redis_url, decode_responses=True, client_name=MONITOR_NAME)
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(await service_clients(monitor)))
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    limits = httpx.Limits(max_connections=FOLLOWERS + 10, max_keepalive_connections=0)
    try:
        async with aiohttp.ClientSession(headers=AUTH) as session:
            job_id = await submit(session, base, {"media_url": f"{media_url}/lj001.wav", **JOB})
            url = f"{base}/v1/jobs/{job_id}/events"
            attached: list[int] = []
            async with httpx.AsyncClient(timeout=httpx.Timeout(600.0), limits=limits, headers=AUTH) as http:
                followers = [asyncio.create_task(follow(http, url, attached)) for _ in range(FOLLOWERS)]

                async def all_attached() -> bool:
                    return len(attached) == FOLLOWERS or any(task.done() for task in followers)

                await wait_until(all_attached, ATTACH_S, f"{FOLLOWERS} followers' first event")
                async with session.get(f"{base}/v1/jobs/{job_id}") as response:
                    assert (await response.json())["status"] in ("queued", "running"), "the job ended too soon"
                assert not any(task.done() for task in followers), [t.result() for t in followers if t.done()]

                # the pool is not exhausted: a new job is accepted while all of them follow
                second = await submit(session, base, {"media_url": f"{media_url}/speech/jfk.flac"})

                # the reader's connection dies mid-stream (as in a Redis restart or failover)
                hub = [c for c in await service_clients(monitor) if c["name"] == CLIENT_NAME]
                assert len(hub) == 1, "one reader for every follower"
                await monitor.client_kill_filter(_id=hub[0]["id"])

                async def reader_back() -> bool:
                    named = [c for c in await service_clients(monitor) if c["name"] == CLIENT_NAME]
                    return len(named) == 1 and named[0]["id"] != hub[0]["id"]

                await wait_until(reader_back, 60.0, "the reader to reconnect")
                streams = await asyncio.wait_for(asyncio.gather(*followers), timeout=600.0)
                replay = await read_events(http, url)  # the whole log, after the end

        async with aiohttp.ClientSession(headers=AUTH) as session:
            async with session.get(f"{base}/v1/jobs/{job_id}/transcript?format=text") as response:
                assert response.status == 200
                assert wer(lj_recording.reference, await response.text()) <= WER_BOUND
            async with session.get(f"{base}/v1/jobs/{second}") as response:
                assert response.status == 200
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        await monitor.aclose()

    assert replay[-1][1] == "end" and '"succeeded"' in replay[-1][2]
    assert sum(1 for _, name, _ in replay if name == "chunk") >= 6
    ids = [event_id for event_id, _, _ in replay]
    assert all(ids) and len(set(ids)) == len(ids)
    assert all(stream == replay for stream in streams), "every follower: every event once, in order, then end"
    assert peak <= CONNECTIONS_BOUND, f"{peak} Redis connections for {FOLLOWERS} followers"
