"""Jobs against a Redis that misbehaves, with a stand-in transcriber and a real redis-server: the pool
waits rather than fails, a stale job is taken over however many others run, a hand-back never revives
a finished job, and data lost in Redis reads as 404 or `failed`, never 500, with no key left forever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import redis.asyncio as redis
from aiohttp import web

from orchestrator.api.app import create_app
from orchestrator.api.keys import WORKER
from orchestrator.assemble.progress import OnProgress, Progress
from orchestrator.common.net import serving
from orchestrator.jobs import submission
from orchestrator.jobs.records import (
    ACTIVE,
    GROUP,
    QUEUE,
    QUEUED,
    WEBHOOKS,
    JobSpec,
    events_key,
    job_key,
    owner_queued_key,
)
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.transitions import Lease
from orchestrator.jobs.worker import Running, ensure_group
from orchestrator.pipeline import Checkpoints
from orchestrator.schemas import MediaRequest, TranscribeOutput, TranscribeRequest
from orchestrator.settings import Settings

RUNNING_ELSEWHERE = 12  # older jobs, renewed by their worker, ahead of the stale one in the queue
FLEET_KEYS = {QUEUE, QUEUED, ACTIVE, WEBHOOKS}  # the fleet's own: bounded by the jobs in them, not by time


def output() -> TranscribeOutput:
    return TranscribeOutput(segments=[], input_duration_sec=1.0, processing_duration_sec=1.0, speedup=1.0, text="")


class Gate:
    """A transcriber: a URL with `block` in it runs until released; one with `step` finishes a chunk per step."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.steps = asyncio.Semaphore(0)
        self.started = 0

    async def __call__(
        self, request: MediaRequest, progress: OnProgress | None = None, checkpoints: Checkpoints | None = None
    ) -> TranscribeOutput:
        self.started += 1
        url = str(getattr(request, "media_url", ""))
        if "block" in url:
            await self.release.wait()
        elif "step" in url:
            assert progress is not None
            for n in range(1, 4):
                await self.steps.acquire()
                progress(Progress(n, 3, n * 10.0, 30.0, added=()))
        return output()


def body(name: str) -> dict[str, Any]:
    return {"media_url": f"https://example.com/{name}.mp3"}


@asynccontextmanager
async def service(
    redis_url: str, gate: Gate, **settings: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, web.Application]]:
    app = create_app(Settings(redis_url=redis_url, **settings), transcriber=gate)
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=60.0) as http:
        yield http, app


async def submit(http: httpx.AsyncClient, name: str) -> str:
    response = await http.post("/v1/jobs", json=body(name))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def until(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s:g} s")


async def status(http: httpx.AsyncClient, job_id: str) -> str:
    response = await http.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


async def test_the_pool_waits_for_a_free_connection_instead_of_failing(redis_url: str) -> None:
    from orchestrator.api.job_wiring import connect

    settings = Settings(redis_url=redis_url, redis_max_connections=8, redis_pool_timeout_sec=60)
    client = connect(settings)
    watcher = redis.Redis.from_url(redis_url)
    try:
        # 150 users each hold a connection for 0.1 s (a blocking pop that finds nothing): 8 at a time
        answers = await asyncio.gather(*(client.blpop(["longscribe:nothing"], timeout=0.1) for _ in range(150)))
        assert answers == [None] * 150
        db = str(client.connection_pool.connection_kwargs.get("db", 0))
        # the session's Redis also serves other tests' fleets, each on a database of its own
        clients = [c for c in await watcher.client_list() if c["db"] == db]
        assert len(clients) <= settings.redis_max_connections + 1, "the pool's bound, plus the watcher"
    finally:
        await client.aclose()
        await watcher.aclose()


async def test_a_stale_job_is_taken_over_while_twelve_older_jobs_run_elsewhere(redis_url: str) -> None:
    busy, spare = Gate(), Gate()
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with service(redis_url, busy, job_workers=RUNNING_ELSEWHERE, job_lease_sec=2.0) as (http, _):
            older = [await submit(http, f"block-{n}") for n in range(RUNNING_ELSEWHERE)]

            async def all_running() -> bool:
                return all([await status(http, j) == "running" for j in older])

            await until(all_running, 30, "the older jobs running")
            stale = await submit(http, "quick")  # every slot here is busy: it waits in the queue
            # a worker that took it and died at once: the entry is pending at a consumer that never renews
            taken = await raw.xreadgroup(GROUP, "dead-worker", {QUEUE: ">"}, count=1)
            assert taken and taken[0][1][0][1]["job"] == stale
            async with service(redis_url, spare, job_workers=1, job_lease_sec=2.0) as (other, _):

                async def stale_done() -> bool:
                    return await status(other, stale) == "succeeded"

                await until(stale_done, 30, "the stale job taken over and finished")
            assert all([await status(http, j) == "running" for j in older])
            busy.release.set()
    finally:
        await raw.aclose()


async def test_a_hand_back_after_another_worker_finished_the_job_leaves_it_finished(redis_url: str) -> None:
    gate = Gate()
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with service(redis_url, gate, job_workers=1, job_lease_sec=120.0) as (http, app):
            job_id = await submit(http, "block")

            async def running() -> bool:
                return await status(http, job_id) == "running"

            await until(running, 30, "the job running")
            # this worker stalled past its lease: another took the entry over and finished the job
            [pending] = await raw.xpending_range(QUEUE, GROUP, "-", "+", 10)
            await raw.xclaim(QUEUE, GROUP, "other-worker", 0, [pending["message_id"]], justid=True)
            async with raw.pipeline(transaction=True) as tx:
                tx.hset(job_key(job_id), mapping={"status": "succeeded", "finished": time.time()})
                tx.srem(ACTIVE, job_id)
                tx.xack(QUEUE, GROUP, pending["message_id"])
                tx.xdel(QUEUE, pending["message_id"])
                await tx.execute()
            await app[WORKER].close()  # what SIGTERM does: hand the running jobs back
            assert await status(http, job_id) == "succeeded"
        assert await raw.xlen(QUEUE) == 0, "not queued again"
        assert not await raw.sismember(QUEUED, job_id)
    finally:
        gate.release.set()
        await raw.aclose()


async def test_a_job_whose_data_redis_lost_reads_as_404_never_500_and_leaves_no_key_without_expiry(
    redis_url: str,
) -> None:
    gate = Gate()
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with service(redis_url, gate, job_workers=1, job_lease_sec=1.5) as (http, _):
            job_id = await submit(http, "step")
            gate.steps.release()

            async def first_chunk() -> bool:
                return bool((await http.get(f"/v1/jobs/{job_id}")).json()["progress"]["chunks_done"])

            await until(first_chunk, 30, "a chunk done")
            await raw.flushall()
            seen = set()
            for n in range(40):  # the worker goes on writing (or stops): reads must stay clear meanwhile
                if n in (5, 10):
                    gate.steps.release()
                response = await http.get(f"/v1/jobs/{job_id}")
                seen.add(response.status_code)
                assert response.status_code in (200, 404), response.text
                if response.status_code == 200:
                    assert response.json()["status"] == "failed" and response.json()["error"]
                await asyncio.sleep(0.1)
            assert 404 in seen or 200 in seen
            for key in await raw.keys("*"):
                assert key in FLEET_KEYS or await raw.ttl(key) >= 0, f"{key} would live forever"
            second = await submit(http, "quick")  # the fleet works on: the group is made again

            async def second_done() -> bool:
                return await status(http, second) == "succeeded"

            await until(second_done, 30, "a new job run after the loss")
    finally:
        gate.release.set()
        await raw.aclose()


async def test_each_state_change_sent_again_after_a_lost_reply_does_nothing_twice(redis_url: str) -> None:
    """What redis-py does after a timeout or a killed connection: the same script again, which the
    server may already have run. Admission counts one attempt, a report one `chunk`, the end one `end`."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, ttl_s=600, max_queued=10, retry_after_s=1)
    try:
        await ensure_group(store)
        job_id = await store.submit(JobSpec(request=TranscribeRequest(**body("twice"))))
        [(_, [(entry_id, _)])] = await client.xreadgroup(GROUP, "worker-1", {QUEUE: ">"}, count=1)
        lease = Lease(job_id, entry_id, "worker-1")
        assert [await store.admit(lease, "host:1", 5) for _ in range(2)] == ["ok", "ok"]
        running = {"status": "running", "started": str(time.time())}
        progress = {"chunks_done": 1, "chunks_total": 2, "audio_done_s": 10.0, "duration_s": 20.0}
        assert [await store.record_progress(lease, 1, running, progress, []) for _ in range(2)] == ["ok", "ok"]
        assert [await store.finish(lease, "succeeded", output=output()) for _ in range(2)] == ["ok", "finished"]
        assert await store.hand_back(lease) == "finished"
        names = [fields["event"] for _, fields in await client.xrange(events_key(job_id))]
        assert names == ["status", "status", "chunk", "end"], "queued, running, one chunk, one end"
        fields = await store.fields(job_id)
        assert fields["status"] == "succeeded" and fields["attempts"] == "1"
        assert await client.xlen(QUEUE) == 0 and not await client.sismember(QUEUED, job_id)
        assert all([await client.ttl(key) > 0 for key in (job_key(job_id), events_key(job_id))])
    finally:
        await client.aclose()


async def test_a_service_stopped_the_moment_it_started_shuts_down_every_time(redis_url: str) -> None:
    """A cancel that lands while redis-py opens a connection is swallowed; shutdown cancels until tasks end."""
    for _ in range(20):
        app = create_app(Settings(redis_url=redis_url, job_workers=2), transcriber=Gate())
        async with asyncio.timeout(30):  # it hung for good before, on the webhook sweeper's first read
            async with serving(app):
                pass


async def test_a_submit_sent_again_after_a_lost_reply_queues_the_job_once(redis_url: str) -> None:
    """Two queue entries would have let two workers run the job at once; at a full queue the resend
    would have answered 429 for a job that exists."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    limits = submission.QueueLimits(fleet=1, per_owner=1, retry_after_s=1)
    spec = JobSpec(request=TranscribeRequest(**body("once")), owner="tenant")
    try:
        for _ in range(2):  # the same EVALSHA, as redis-py's Retry sends it
            await submission._run(client, "submit", spec.owner, limits, "job-once", spec.model_dump_json())
        assert await client.xlen(QUEUE) == 1
        assert [f["event"] for _, f in await client.xrange(events_key("job-once"))] == ["status"]
    finally:
        await client.aclose()


async def test_a_job_keeps_no_expiry_while_it_waits_or_runs_and_gets_one_when_it_ends(redis_url: str) -> None:
    """A dead worker's job may wait hours for a free slot elsewhere: its record must still be there."""
    gate = Gate()
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with service(redis_url, gate, job_workers=1, job_ttl_sec=60) as (http, _):
            job_id = await submit(http, "block")

            async def running() -> bool:
                return await status(http, job_id) == "running"

            await until(running, 30, "the job running")
            assert await raw.ttl(job_key(job_id)) == -1 and await raw.ttl(events_key(job_id)) == -1
            gate.release.set()

            async def ended() -> bool:
                return await status(http, job_id) == "succeeded"

            await until(ended, 30, "the job ended")
            assert 0 < await raw.ttl(job_key(job_id)) <= 60
    finally:
        gate.release.set()
        await raw.aclose()


async def test_admitting_a_job_whose_record_redis_lost_leaves_nothing_counting_it(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, ttl_s=600, max_queued=10, retry_after_s=1, max_queued_per_key=3)
    try:
        await ensure_group(store)
        job_id = await store.submit(JobSpec(request=TranscribeRequest(**body("lost")), owner="tenant"))
        await client.delete(job_key(job_id))  # lost: no persistence, a failover
        [(_, [(entry_id, _)])] = await client.xreadgroup(GROUP, "worker-1", {QUEUE: ">"}, count=1)
        assert await store.admit(Lease(job_id, entry_id, "worker-1", "tenant"), "host:1", 5) == "gone"
        for counted in (QUEUED, ACTIVE, owner_queued_key("tenant")):
            assert not await client.sismember(counted, job_id), counted
        assert await client.xlen(QUEUE) == 0
    finally:
        await client.aclose()


async def test_admission_starts_the_lease_so_a_slow_one_never_looks_stale(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    store = JobStore(client, ttl_s=600, max_queued=10, retry_after_s=1)
    try:
        await ensure_group(store)
        job_id = await store.submit(JobSpec(request=TranscribeRequest(**body("slow"))))
        [(_, [(entry_id, _)])] = await client.xreadgroup(GROUP, "worker-1", {QUEUE: ">"}, count=1)
        await asyncio.sleep(1.5)  # reading the spec, the pool's wait, a Redis stall...
        assert await store.admit(Lease(job_id, entry_id, "worker-1"), "host:1", 5) == "ok"
        [pending] = await client.xpending_range(QUEUE, GROUP, entry_id, entry_id, 1)
        assert pending["time_since_delivered"] < 1000
    finally:
        await client.aclose()


async def test_a_job_whose_record_this_version_cannot_read_fails_with_a_reason_not_queued_forever(
    redis_url: str,
) -> None:
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    limits = submission.QueueLimits(fleet=10, per_owner=0, retry_after_s=1)
    try:
        await raw.ping()
        await submission._run(raw, "submit", "", limits, "unreadable-job-1", '{"request": {}, "from_the_future": 1}')
        async with service(redis_url, Gate(), job_workers=1) as (http, _):

            async def failed() -> bool:
                return await status(http, "unreadable-job-1") == "failed"

            await until(failed, 30, "the unreadable job failed")
            assert "cannot be read" in (await http.get("/v1/jobs/unreadable-job-1")).json()["error"]["message"]
        assert not await raw.sismember(QUEUED, "unreadable-job-1") and await raw.xlen(QUEUE) == 0
    finally:
        await raw.aclose()


async def test_a_cancel_or_hand_back_landing_after_the_run_ended_does_not_cut_its_end_short() -> None:
    """Its transcript is being written: a DELETE or SIGTERM now would have thrown it away to be redone."""
    writing_the_end = asyncio.create_task(asyncio.sleep(0.2))
    job = Running("job", "0-1", writing_the_end, ending=True)
    job.stop("handoff")
    job.stop("cancel")
    await writing_the_end
    assert job.reason is None and not writing_the_end.cancelled()
