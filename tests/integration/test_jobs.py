"""Jobs for long media: progress by polling and by server-sent events, the finished prefix,
cancel, a signed webhook, and what is kept afterwards."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from httpx_sse import aconnect_sse

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.jobs.webhooks import SIGNATURE_HEADER, sign
from orchestrator.settings import Settings

from ..corpus import Recording, wer
from ..media_servers import LOOPBACK
from ..polling import steady, wait_until
from ..processes import ffmpegs
from ..redis_fleet import own_database
from ..scrape import STOPPED_WINDOW_S
from ..sse import read_events

pytestmark = pytest.mark.integration
SECRET = "webhook-secret-5d1"


@pytest_asyncio.fixture(scope="module")
async def jobs_api(triton_grpc_url: str, redis_server: str) -> AsyncIterator[str]:
    async with own_database(redis_server) as redis_url, serving(create_app(hooked(triton_grpc_url, redis_url))) as base:
        yield base


def hooked(triton_grpc_url: str, redis_url: str, secret: str = SECRET) -> Settings:
    """Loopback media and webhooks (the receivers run here too; test_webhook_check keeps the default)."""
    return Settings(
        triton_grpc_urls=[triton_grpc_url],
        allowed_media_hosts=LOOPBACK,
        allowed_webhook_hosts=LOOPBACK,
        webhook_secret=secret,
        redis_url=redis_url,
    )


async def start(session: aiohttp.ClientSession, api: str, body: dict[str, Any]) -> str:
    async with session.post(f"{api}/v1/jobs", json=body) as response:
        assert response.status == 202, await response.text()
        job = await response.json()
        assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
        return str(job["id"])


async def sse(session: aiohttp.ClientSession, url: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) from a job's stream, read by a real SSE parser (httpx-sse); `session` is the caller's."""
    async with httpx.AsyncClient(timeout=60.0) as http, aconnect_sse(http, "GET", url) as source:
        assert source.response.headers["Content-Type"].startswith("text/event-stream")
        async for event in source.aiter_sse():
            if event.data:  # not a keep-alive comment, which httpx-sse dispatches as an empty event
                yield event.event, event.json()


async def test_a_job_streams_progress_per_chunk_then_its_transcript(
    jobs_api: str, media_url: str, lj_recording: Recording
) -> None:
    body = {"media_url": f"{media_url}/lj001.wav", "params": {"macro_chunk_size_sec": 60}}
    async with aiohttp.ClientSession() as session:
        job_id = await start(session, jobs_api, body)
        chunks, partial_seen, end = [], False, None
        async for name, data in sse(session, f"{jobs_api}/v1/jobs/{job_id}/events"):
            if name == "chunk":
                chunks.append(data)
                async with session.get(f"{jobs_api}/v1/jobs/{job_id}") as response:
                    polled = await response.json()
                if polled["status"] == "running" and "partial" in polled:  # streamed from the checkpoints
                    partial_seen = True
                    assert polled["partial"]["segments"] and polled["partial"]["text"], polled["partial"]
                    # up to the whole recording: the last chunk done, the job still writes its transcript
                    assert polled["partial"]["input_duration_sec"] <= lj_recording.duration_s + 0.5
            elif name == "end":
                end = data
        assert end is not None and end["status"] == "succeeded"
        assert len(chunks) >= 3
        done = [c["chunks_done"] for c in chunks]
        assert done == sorted(done) and chunks[-1]["chunks_done"] == chunks[-1]["chunks_total"]
        assert all(c["audio_total_sec"] == pytest.approx(lj_recording.duration_s, abs=0.5) for c in chunks)
        assert partial_seen or len(chunks) == 1, "the finished prefix shows while the job runs"
        assert "result" not in end, "the end event links the transcript, never carries it"
        async with session.get(f"{jobs_api}{end['links']['transcript']}?format=text") as response:
            assert wer(lj_recording.reference, await response.text()) <= 0.08
        async with session.get(f"{jobs_api}/v1/jobs/{job_id}") as response:  # kept after the end
            raw = await response.read()  # streamed from Redis, its length told up front
            assert int(response.headers["Content-Length"]) == len(raw)
        kept = json.loads(raw)
        assert kept["status"] == "succeeded" and kept["progress"]["eta_sec"] is None
        assert wer(lj_recording.reference, kept["result"]["text"]) <= 0.08 and kept["result"]["segments"]
        assert kept["progress"]["audio_done_sec"] == pytest.approx(lj_recording.duration_s, abs=0.5)


async def raw_events(url: str, last_id: str | None = None, stop_after: int | None = None) -> list[tuple[str, str, str]]:
    async with httpx.AsyncClient(timeout=120.0) as http:
        return await read_events(http, url, last_id, stop_after)


async def test_a_client_that_reconnects_with_last_event_id_gets_every_event_once(jobs_api: str, media_url: str) -> None:
    body = {"media_url": f"{media_url}/lj001.wav", "params": {"macro_chunk_size_sec": 40}}
    async with aiohttp.ClientSession() as session:
        job_id = await start(session, jobs_api, body)
    url = f"{jobs_api}/v1/jobs/{job_id}/events"
    first = await raw_events(url, stop_after=3)  # queued, running, the first chunk; then the connection drops
    assert first[-1][1] == "chunk"
    async with aiohttp.ClientSession() as session:  # more chunks finish while nobody listens

        async def another_chunk() -> bool:
            progress = (await job_status(session, jobs_api, job_id))["progress"]
            return bool(progress["chunks_done"] >= 2 or progress["chunks_done"] == progress["chunks_total"])

        await wait_until(another_chunk, 120, "a second chunk while nobody listens")
    rest = await raw_events(url, last_id=first[-1][0])
    replay = await raw_events(url)  # the whole log, after the end
    assert rest[-1][1] == "end" and len(rest) >= 3
    assert first + rest == replay, "nothing lost, nothing repeated"
    ids = [event_id for event_id, _, _ in replay]
    assert all(ids) and len(set(ids)) == len(ids), "every event has its own id"


async def test_cancelling_a_job_stops_its_work(
    jobs_api: str, media_url: str, media_root: Path, long_recording: Recording
) -> None:
    media = long_recording.path.relative_to(media_root).as_posix()
    body = {"media_url": f"{media_url}/{media}", "params": {"macro_chunk_size_sec": 30}}
    async with aiohttp.ClientSession() as session:
        job_id = await start(session, jobs_api, body)
        async for name, _ in sse(session, f"{jobs_api}/v1/jobs/{job_id}/events"):
            if name == "chunk":
                break
        # before the cancel: FFmpeg reads the media and the job has chunks left
        await wait_until(lambda: ffmpegs(os.getpid()), 30, "FFmpeg to read the job's media")
        running = await job_status(session, jobs_api, job_id)
        assert running["status"] == "running", running
        assert running["progress"]["chunks_done"] < running["progress"]["chunks_total"], running
        async with session.delete(f"{jobs_api}/v1/jobs/{job_id}") as response:
            assert (await response.json())["status"] == "cancelled"
        await wait_until(lambda: not ffmpegs(os.getpid()), 10, "FFmpeg to stop with the job")
        # after: the job is cancelled, and no chunk finishes any more
        before, after = await steady(lambda: job_status(session, jobs_api, job_id), STOPPED_WINDOW_S)
    assert before["status"] == after["status"] == "cancelled", after
    assert before["progress"]["chunks_done"] == after["progress"]["chunks_done"], "chunks kept finishing"
    assert after["progress"]["chunks_done"] < after["progress"]["chunks_total"], after


async def job_status(session: aiohttp.ClientSession, api: str, job_id: str) -> dict[str, Any]:
    async with session.get(f"{api}/v1/jobs/{job_id}") as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def test_a_finished_job_calls_its_webhook_signed(jobs_api: str, media_url: str) -> None:
    received: asyncio.Queue[tuple[bytes, str, str | None]] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        payload = await request.read()  # streamed from Redis by the sender, its length told up front
        await received.put((payload, request.headers.get(SIGNATURE_HEADER, ""), request.headers.get("Content-Length")))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as hook_base, aiohttp.ClientSession() as session:
        body = {"media_url": f"{media_url}/speech/jfk.flac", "webhook_url": f"{hook_base}/hook"}
        job_id = await start(session, jobs_api, body)
        payload, signature, length = await asyncio.wait_for(received.get(), 60)
    assert signature == sign(payload, SECRET)
    assert length == str(len(payload)), "sent with its length, not chunked"
    sent = json.loads(payload)
    assert sent["id"] == job_id and sent["status"] == "succeeded" and sent["result"]["text"]


async def test_an_unknown_job_is_a_clear_404(jobs_api: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{jobs_api}/v1/jobs/nope") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "job_not_found"
