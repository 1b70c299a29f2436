"""A job's events and transcript, with a stand-in transcriber and the session's real redis-server:
events carry references, not payloads; ids let a client resume without a gap or a repeat; idle
streams get keep-alives; the transcript streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from aiohttp import web

import longscribe
from orchestrator import formats
from orchestrator.api.app import create_app
from orchestrator.assemble.progress import OnProgress, Progress
from orchestrator.common.net import serving
from orchestrator.pipeline import Checkpoints
from orchestrator.schemas import MediaRequest, Segment, TranscribeOutput
from orchestrator.settings import Settings

from ..polling import wait_until
from ..sse import read_events
from .test_request_validation import SEED_BODY

CHUNKS = 4
SEGMENTS_PER_CHUNK = 3000  # about 300 KB of JSON a chunk: the whole transcript is far over 512 KiB
MAX_EVENT_BYTES = 512 * 1024  # aiohttp's line limit, which the old `end` event broke


def segment(k: int) -> Segment:
    return Segment(start_time_sec=k * 1.0, end_time_sec=k * 1.0 + 0.9, text=f"word{k} " * 8, language_code="en")


class Stepper:
    """A transcriber that finishes one chunk each time it is stepped, then a large transcript."""

    def __init__(self) -> None:
        self.steps = asyncio.Semaphore(0)

        self.output = TranscribeOutput(
            segments=[segment(k) for k in range(CHUNKS * SEGMENTS_PER_CHUNK)],
            input_duration_sec=CHUNKS * SEGMENTS_PER_CHUNK * 1.0,
            processing_duration_sec=1.0,
            speedup=CHUNKS * SEGMENTS_PER_CHUNK * 1.0,
            text=" ".join(f"word{k} " * 8 for k in range(CHUNKS * SEGMENTS_PER_CHUNK)),
        )

    def step(self, chunks: int) -> None:
        for _ in range(chunks):
            self.steps.release()

    async def __call__(
        self, request: MediaRequest, progress: OnProgress | None = None, checkpoints: Checkpoints | None = None
    ) -> TranscribeOutput:
        assert progress is not None
        for n in range(CHUNKS):
            await self.steps.acquire()
            added = self.output.segments[n * SEGMENTS_PER_CHUNK : (n + 1) * SEGMENTS_PER_CHUNK]
            duration = self.output.input_duration_sec
            progress(Progress(n + 1, CHUNKS, duration * (n + 1) / CHUNKS, duration, added=tuple(added)))
        return self.output


@asynccontextmanager
async def service(redis_url: str, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Stepper, str]]:
    stepper = Stepper()
    async with serving(create_app(Settings(redis_url=redis_url, **settings), transcriber=stepper)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10.0) as http:
            response = await http.post("/v1/jobs", json=SEED_BODY)
            assert response.status_code == 202, response.text
            yield http, stepper, response.json()["id"]


async def job_events(
    http: httpx.AsyncClient, job_id: str, last_id: str | None = None, stop_after: int | None = None
) -> list[tuple[str, str, str]]:
    return await read_events(http, f"/v1/jobs/{job_id}/events", last_id, stop_after)


async def chunks_done(http: httpx.AsyncClient, job_id: str, count: int) -> bool:
    return bool((await http.get(f"/v1/jobs/{job_id}")).json()["progress"]["chunks_done"] == count)


async def test_end_carries_status_and_links_and_no_event_grows_with_the_transcript(redis_url: str) -> None:
    async with service(redis_url) as (http, stepper, job_id):
        stepper.step(CHUNKS)
        events = await job_events(http, job_id)
    names = [name for _, name, _ in events]
    assert names[0] == "status" and [n for n in names if n != "status"] == ["chunk"] * CHUNKS + ["end"]
    end = json.loads(events[-1][2])
    assert end["status"] == "succeeded" and "result" not in end and "partial" not in end
    assert end["links"]["transcript"] == f"/v1/jobs/{job_id}/transcript"
    assert end["summary"]["segments"] == CHUNKS * SEGMENTS_PER_CHUNK
    chunks = [json.loads(data) for _, name, data in events if name == "chunk"]
    assert [len(c["segments"]) for c in chunks] == [SEGMENTS_PER_CHUNK] * CHUNKS, "each chunk brings only its own"
    assert all("text" not in c and "partial" not in c for c in chunks)
    sizes = [len(data.encode()) for _, _, data in events]
    assert max(sizes) < MAX_EVENT_BYTES
    assert len(stepper.output.to_json()) > 2 * MAX_EVENT_BYTES  # the transcript itself would not fit


async def test_a_client_that_reconnects_with_last_event_id_gets_every_event_once(redis_url: str) -> None:
    async with service(redis_url) as (http, stepper, job_id):
        stepper.step(1)
        first = await job_events(http, job_id, stop_after=3)  # queued, running, chunk 1; then it hangs up
        stepper.step(2)  # two chunks finish while nobody listens
        await wait_until(lambda: chunks_done(http, job_id, 3), 10, "two more chunks while nobody listens")
        caught_up: list[tuple[str, str, str]] = []
        url = f"/v1/jobs/{job_id}/events"
        resumed_task = asyncio.create_task(read_events(http, url, last_id=first[-1][0], seen=caught_up))
        await wait_until(lambda: len(caught_up) >= 2, 10, "the resumed client to get the two it missed")
        stepper.step(1)  # and one while the resumed client listens
        resumed = await asyncio.wait_for(resumed_task, 10)
        replay = await job_events(http, job_id)  # from the start, after the end
    assert first[-1][1] == "chunk" and first + resumed == replay
    ids = [event_id for event_id, _, _ in replay]
    assert all(ids) and len(set(ids)) == len(ids), "every event has its own id"
    assert [name for _, name, _ in replay if name != "status"] == ["chunk"] * CHUNKS + ["end"]


async def test_an_idle_stream_gets_keep_alive_comments_and_a_bad_last_event_id_is_refused(redis_url: str) -> None:
    async with service(redis_url, sse_keepalive_sec=0.1) as (http, stepper, job_id):
        async with http.stream("GET", f"/v1/jobs/{job_id}/events") as response:
            assert response.headers["Content-Type"].startswith("text/event-stream")
            comments = 0
            async for line in response.aiter_lines():
                comments += line.startswith(":")
                if comments >= 3:  # nothing else happens: the job waits for a step
                    break
        bad = await http.get(f"/v1/jobs/{job_id}/events", headers={"Last-Event-ID": "yesterday"})
        assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["error"]["message"]
        stepper.step(CHUNKS)


async def test_a_client_that_reconnects_with_the_newest_event_id_gets_headers_and_keep_alives_at_once(
    redis_url: str,
) -> None:
    async with service(redis_url, sse_keepalive_sec=0.5) as (http, stepper, job_id):
        stepper.step(1)
        seen = await job_events(http, job_id, stop_after=3)  # queued, running, chunk 1: the newest, for now

        async def reconnect() -> str:
            headers = {"Last-Event-ID": seen[-1][0]}
            async with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
                assert response.status_code == 200
                assert response.headers["Content-Type"].startswith("text/event-stream")
                async for line in response.aiter_lines():
                    if line:
                        return line
            return ""

        # nothing new happens: the headers, then a keep-alive, must come anyway (they waited for the next event)
        assert (await asyncio.wait_for(reconnect(), 5.0)).startswith(":")
        stepper.step(CHUNKS - 1)


@pytest.mark.parametrize("fmt", formats.FORMATS)
async def test_the_transcript_streams_in_pieces_whatever_its_size(fmt: str, redis_url: str) -> None:
    async with service(redis_url, transcript_piece_bytes=64 * 1024) as (http, stepper, job_id):
        early = await http.get(f"/v1/jobs/{job_id}/transcript")
        assert early.status_code == 422  # not yet: the job runs
        stepper.step(CHUNKS)
        await job_events(http, job_id)
        pieces = 0
        body = bytearray()
        async with http.stream("GET", f"/v1/jobs/{job_id}/transcript", params={"format": fmt}) as response:
            assert response.status_code == 200
            assert response.headers.get("Transfer-Encoding") == "chunked"
            async for piece in response.aiter_raw():
                pieces += 1
                body += piece
    assert body.decode() == formats.render(stepper.output, fmt)
    assert len(body) > MAX_EVENT_BYTES and pieces > 2


async def test_the_client_reads_events_of_any_size_and_resumes_a_dropped_stream() -> None:
    """The client's parser (the CLI's) has no line limit, and a stream cut mid-job is resumed after the last
    event seen."""
    huge = "x" * (2 * MAX_EVENT_BYTES)
    asked_from: list[str | None] = []

    async def events(request: web.Request) -> web.StreamResponse:
        last = request.headers.get("Last-Event-ID")
        asked_from.append(last)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if last is None:
            segment = {"start_time_sec": 0.0, "end_time_sec": 1.0, "text": huge}
            await response.write(f"id: 0\nevent: chunk\ndata: {json.dumps({'segments': [segment]})}\n\n".encode())
            await response.write(b": keep-alive\n\n")
            return response  # cut before the end
        await response.write(b'id: 1\nevent: end\ndata: {"status": "succeeded"}\n\n')
        return response

    app = web.Application()
    app.router.add_get("/v1/jobs/{job_id}/events", events)
    async with serving(app) as base, longscribe.AsyncClient(base) as client:
        seen = [event async for event in client.job("j1").events()]
    assert [type(e) for e in seen] == [longscribe.ChunkEvent, longscribe.EndEvent]
    assert isinstance(seen[0], longscribe.ChunkEvent) and seen[0].segments[0].text == huge
    assert asked_from == [None, "0"]
