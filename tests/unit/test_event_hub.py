"""The process's one event reader, with a stand-in transcriber and the session's real redis-server: a
follower that falls behind rereads and misses or repeats nothing, shutdown ends every follower, and a
newly followed job is read at once, not after the reader's block times out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web

from orchestrator.api.app import create_app
from orchestrator.api.keys import EVENT_HUB, JOBS
from orchestrator.common.net import serving
from orchestrator.jobs import event_hub
from orchestrator.jobs.events import events
from orchestrator.settings import Settings

from ..polling import wait_until
from ..sse import read_events
from .test_job_events import CHUNKS, Stepper, job_events
from .test_request_validation import SEED_BODY


@asynccontextmanager
async def service(redis_url: str, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Stepper, web.Application]]:
    stepper = Stepper()
    app = create_app(Settings(redis_url=redis_url, **settings), transcriber=stepper)
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10.0) as http:
        yield http, stepper, app


async def submit(http: httpx.AsyncClient) -> str:
    response = await http.post("/v1/jobs", json=SEED_BODY)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def status_is(http: httpx.AsyncClient, job_id: str, status: str) -> None:
    for _ in range(100):
        if (await http.get(f"/v1/jobs/{job_id}")).json()["status"] == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never {status}")


async def test_a_follower_that_falls_behind_rereads_and_misses_or_repeats_nothing(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_hub, "QUEUE_LIMIT", 2)
    async with service(redis_url) as (http, stepper, app):
        job_id = await submit(http)
        slow = events(app[JOBS], app[EVENT_HUB], job_id, None)
        seen = [await anext(slow)]  # it has joined the hub; now it reads nothing for a while
        await status_is(http, job_id, "running")
        stepper.step(CHUNKS - 1)  # more events than its mailbox holds, while the job still runs
        for _ in range(100):
            if app[EVENT_HUB].dropped_back:
                break
            await asyncio.sleep(0.1)
        assert app[EVENT_HUB].dropped_back == 1, "its mailbox overflowed: it was dropped back, not grown"
        while seen[-1].event != "chunk" or seen[-1].data["chunks_done"] < CHUNKS - 1:
            seen.append(await anext(slow))  # read again: the gap comes through the pool
        stepper.step(1)
        seen += [event async for event in slow]  # the last chunk and `end`, from the hub again
        replay = await job_events(http, job_id)
    assert [(e.id, e.event) for e in seen] == [(event_id, name) for event_id, name, _ in replay]
    assert seen[-1].event == "end"


async def test_shutdown_ends_every_follower_so_its_client_reconnects_elsewhere(redis_url: str) -> None:
    async with service(redis_url) as (http, stepper, app):
        job_id = await submit(http)
        received: list[list[tuple[str, str, str]]] = [[] for _ in range(5)]
        url = f"/v1/jobs/{job_id}/events"
        followers = [asyncio.create_task(read_events(http, url, seen=seen)) for seen in received]
        # each has joined once it has its catch-up (the job's `queued`): it follows before it reads that
        await wait_until(lambda: all(received), 10, "every follower to join")
        started = time.monotonic()
        app[JOBS].closing.set()
        streams = await asyncio.wait_for(asyncio.gather(*followers), timeout=5.0)
        ended_s = time.monotonic() - started
        stepper.step(CHUNKS)
    assert all(stream and stream[-1][1] != "end" for stream in streams), "they end without the job's end"
    assert ended_s < 2.0


async def test_a_newly_followed_job_is_read_at_once_not_after_the_block_times_out(redis_url: str) -> None:
    async with service(redis_url, job_workers=1) as (http, stepper, app):
        running = await submit(http)
        waiting = [await submit(http) for _ in range(3)]  # queued behind it: their only new event is a cancel
        await status_is(http, running, "running")
        first = asyncio.create_task(job_events(http, running))  # the reader now blocks on one stream
        latencies, ends = [], []
        hub = app[EVENT_HUB]
        for job_id in waiting:
            await wait_until(lambda: hub.blocked, 10, "the reader to block on the streams it follows")
            caught_up: list[tuple[str, str, str]] = []
            follower = asyncio.create_task(read_events(http, f"/v1/jobs/{job_id}/events", seen=caught_up))
            # it has joined once it has its catch-up, and the reader blocks again, now on its stream too
            await wait_until(lambda: caught_up and hub.blocked, 10, "the follower to join")  # noqa: B023
            assert (await http.delete(f"/v1/jobs/{job_id}")).status_code == 200
            cancelled = time.monotonic()
            ends.append((await asyncio.wait_for(follower, timeout=10.0))[-1])
            latencies.append(time.monotonic() - cancelled)
        stepper.step(CHUNKS)
        await first
    assert all(name == "end" and '"cancelled"' in data for _, name, data in ends)
    # without the wake-up (CLIENT UNBLOCK) each end waits for the reader's block to time out, anywhere
    # up to BLOCK_MS (2 s): three in a row under 0.5 s would be luck
    assert max(latencies) < 0.5, [f"{s:.2f} s" for s in latencies]
