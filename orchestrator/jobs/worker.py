"""Run queued jobs: read the queue stream as one consumer of the fleet's group, hold a lease, resume.

A job's queue entry is pending at the worker that runs it; the worker renews
it (XCLAIM to itself) every third of `job_lease_sec`. A worker that dies
stops renewing, and after `job_lease_sec` any other worker takes the entry
over (XAUTOCLAIM) and resumes the job from its checkpoints. On shutdown the
running jobs are handed back at once: re-queued, to resume elsewhere. A
cancel published on the channel (or flagged in the job, checked with each
renewal) stops the job's FFmpeg and inference wherever it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redis.exceptions import RedisError, WatchError

from orchestrator.assemble.progress import OnProgress, Progress
from orchestrator.errors import JobNotFound, LongscribeError, UploadMissing
from orchestrator.jobs import checkpoints
from orchestrator.jobs.records import (
    CANCEL_CHANNEL,
    FINISHED,
    GROUP,
    QUEUE,
    QUEUED,
    JobSpec,
    events_key,
    job_key,
    result_key,
    stream_entries,
)
from orchestrator.jobs.store import JobStore
from orchestrator.pipeline import Checkpoints
from orchestrator.schemas import MediaRequest, TranscribeOutput, UploadRequest

log = logging.getLogger("longscribe.jobs")

Run = Callable[[MediaRequest, OnProgress, Checkpoints], Awaitable[TranscribeOutput]]
StopReason = Literal["cancel", "handoff", "lost"]
READ_BLOCK_MS = 1000  # how long one read of the queue waits; also how often stale leases are looked for
RETRY_S = 1.0  # after Redis failed us, before trying again


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Running:
    job_id: str
    entry_id: str
    task: asyncio.Task[None]
    reason: StopReason | None = None

    def stop(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
            self.task.cancel()


@dataclass
class Worker:
    store: JobStore
    run: Run
    slots: int  # jobs run at once
    lease_s: float
    max_attempts: int
    on_finished: Callable[[str], None]  # the job has ended and has a webhook to deliver
    name: str = field(default_factory=process_name)  # `worker` in the job's JSON
    # the group's consumer: unique also when one process holds several apps
    consumer: str = ""
    running: dict[str, Running] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    taken: set[asyncio.Task[None]] = field(default_factory=set)  # every job task, from admission to its end

    def __post_init__(self) -> None:
        self.consumer = self.consumer or f"{self.name}:{secrets.token_hex(3)}"

    async def start(self) -> None:
        await ensure_group(self.store)
        self.tasks = [asyncio.create_task(self._listen_for_cancels())]
        if self.slots:
            self.tasks.append(asyncio.create_task(self._take_jobs()))

    async def close(self) -> None:
        """Stop taking jobs and hand the running ones back to the queue (they resume elsewhere)."""
        for task in self.tasks:
            task.cancel()
        running = list(self.running.values())
        for job in running:
            job.stop("handoff")
        admitting = [task for task in self.taken if all(task is not j.task for j in running)]
        for task in admitting:  # not started yet: its lease runs out and another worker takes it
            task.cancel()
        await asyncio.gather(*self.tasks, *(j.task for j in running), *admitting, return_exceptions=True)

    async def _take_jobs(self) -> None:
        free = asyncio.Semaphore(self.slots)
        while True:
            await free.acquire()
            try:
                entry = await self._next()
            except (RedisError, OSError) as exc:
                log.warning("reading the job queue failed: %s", exc)
                entry = None
                await asyncio.sleep(RETRY_S)
                await ensure_group(self.store)  # Redis came back empty (NOGROUP): make it again
            except Exception:  # a malformed entry must not stop this worker taking jobs for good
                log.exception("reading the job queue failed")
                entry = None
                await asyncio.sleep(RETRY_S)
            if entry is None:
                free.release()
                continue
            task = asyncio.create_task(self._run(*entry))
            self.taken.add(task)

            def ended(done: asyncio.Task[None]) -> None:
                free.release()
                self.taken.discard(done)

            task.add_done_callback(ended)

    async def _next(self) -> tuple[str, str] | None:
        """A job whose worker stopped renewing its lease, else a new one; (entry id, job id)."""
        stale = await self.store.client.xautoclaim(
            QUEUE, GROUP, self.consumer, min_idle_time=int(self.lease_s * 1000), start_id="0-0", count=1
        )
        for entry_id, fields in stream_entries([(QUEUE, stale[1])]):
            if fields and fields["job"] not in self.running:
                log.info("taking over job %s: its worker's lease ran out", fields["job"])
                return entry_id, fields["job"]
        found = await self.store.client.xreadgroup(GROUP, self.consumer, {QUEUE: ">"}, count=1, block=READ_BLOCK_MS)
        for entry_id, fields in stream_entries(found):
            return entry_id, fields["job"]
        return None

    async def _listen_for_cancels(self) -> None:
        while True:
            try:
                async with self.store.client.pubsub() as pubsub:
                    await pubsub.subscribe(CANCEL_CHANNEL)
                    async for message in pubsub.listen():
                        job = self.running.get(message["data"]) if message["type"] == "message" else None
                        if job is not None:
                            job.stop("cancel")
            except (RedisError, OSError) as exc:
                log.warning("the cancel channel failed: %s", exc)
                await asyncio.sleep(RETRY_S)

    async def _run(self, entry_id: str, job_id: str) -> None:
        """Run one job from the queue to its end (or hand it back), recording each step."""
        try:
            spec = await self._admit(entry_id, job_id)
            if spec is not None:
                await self._execute(entry_id, job_id, spec)
        except (RedisError, OSError) as exc:  # the entry stays pending: its lease runs out, another worker retries
            log.warning("job %s: Redis failed: %s", job_id, exc)
        except Exception:
            log.exception("job %s: the worker failed", job_id)

    async def _admit(self, entry_id: str, job_id: str) -> JobSpec | None:
        """The job's spec, marked running here; None when it must not run (it is ended instead)."""
        client = self.store.client
        try:
            f = await self.store.fields(job_id)
        except JobNotFound:
            f = {"status": "cancelled"}  # expired while it waited
        if f["status"] in FINISHED:  # cancelled while it waited: nothing to run
            await _drop(self.store, entry_id)
            return None
        spec = JobSpec.model_validate_json(f["spec"])
        attempts = int(await client.hincrby(job_key(job_id), "attempts", 1))
        error: LongscribeError | None = None
        if isinstance(spec.request, UploadRequest) and not spec.request.upload.path.is_file():
            error = UploadMissing(f"the uploaded {spec.request.upload.filename or 'file'} is not on {self.name}")
        elif attempts > self.max_attempts:
            error = LongscribeError(f"the job was started {self.max_attempts} times and never finished")
        if f.get("cancel") or error is not None:
            await self._finish(job_id, entry_id, spec, "failed" if error else "cancelled", error)
            return None
        async with client.pipeline(transaction=True) as tx:
            # a DELETE between the read above and this write must win: watch the job, look again
            await tx.watch(job_key(job_id))
            status, cancel = await tx.hmget(job_key(job_id), ["status", "cancel"])
            if status in FINISHED or cancel:
                await tx.reset()  # type: ignore[no-untyped-call]
                if status in FINISHED:
                    await _drop(self.store, entry_id)
                else:
                    await self._finish(job_id, entry_id, spec, "cancelled")
                return None
            tx.multi()  # type: ignore[no-untyped-call]
            tx.hset(job_key(job_id), mapping={"status": "running", "worker": self.name, "started": time.time()})
            tx.srem(QUEUED, job_id)
            tx.xadd(events_key(job_id), {"event": "status", "data": json.dumps({"status": "running"})})
            try:
                await tx.execute()
            except WatchError:  # changed meanwhile (a cancel): the entry stays pending, looked at again later
                log.info("job %s changed while it was admitted: left to the next look", job_id)
                return None
        return spec

    async def _execute(self, entry_id: str, job_id: str, spec: JobSpec) -> None:
        """Transcribe, resuming from the checkpoints; end the job, or hand it back on shutdown."""
        saved = checkpoints.RedisCheckpoints(
            self.store.client, job_id, await checkpoints.load(self.store.client, job_id)
        )
        reports: asyncio.Queue[tuple[dict[str, Any], list[dict[str, Any]]]] = asyncio.Queue()
        running_fields = {"status": "running", "started": str(time.time())}
        writer = asyncio.create_task(self._write_progress(job_id, running_fields, reports))
        current = asyncio.current_task()
        assert current is not None
        job = self.running[job_id] = Running(job_id, entry_id, current)
        renew = asyncio.create_task(self._renew(job))
        try:
            output = await self.run(spec.request, lambda p: reports.put_nowait((_progress(p, saved), _added(p))), saved)
        except asyncio.CancelledError:
            await _settle(writer, reports, drain=job.reason == "cancel")
            if job.reason == "cancel":
                await self._finish(job_id, entry_id, spec, "cancelled")
            elif job.reason != "lost":  # shutdown: hand it back
                await self._hand_back(job_id, entry_id)
        except LongscribeError as exc:
            await _settle(writer, reports, drain=True)
            await self._finish(job_id, entry_id, spec, "failed", exc)
        except Exception:
            log.exception("job %s failed", job_id)
            await _settle(writer, reports, drain=True)
            await self._finish(job_id, entry_id, spec, "failed", LongscribeError("internal error"))
        else:
            await _settle(writer, reports, drain=True)
            last = json.loads(running_fields.get("last_progress", "{}"))
            # what FFmpeg decoded is the length, whatever the header said
            done = {**last, "audio_done_s": output.input_duration_sec, "duration_s": output.input_duration_sec}
            await self._finish(job_id, entry_id, spec, "succeeded", progress=done, output=output)
        finally:
            renew.cancel()
            self.running.pop(job_id, None)

    async def _write_progress(
        self, job_id: str, running: dict[str, str], reports: asyncio.Queue[tuple[dict[str, Any], list[dict[str, Any]]]]
    ) -> None:
        while True:
            progress, added = await reports.get()
            try:
                await self.store.record_progress(job_id, running, progress, added)
                running["last_progress"] = json.dumps(progress)
            finally:
                reports.task_done()

    async def _renew(self, job: Running) -> None:
        """Every third of the lease: still ours? renew it; cancelled meanwhile? stop."""
        client = self.store.client
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                pending = await client.xpending_range(QUEUE, GROUP, job.entry_id, job.entry_id, 1)
                if not pending or pending[0]["consumer"] != self.consumer:
                    log.warning("job %s was taken over by another worker: dropping it here", job.job_id)
                    job.stop("lost")
                    return
                await client.xclaim(QUEUE, GROUP, self.consumer, 0, [job.entry_id], justid=True)
                if await client.hget(job_key(job.job_id), "cancel"):
                    job.stop("cancel")  # the published cancel was missed
                    return
            except (RedisError, OSError) as exc:
                log.warning("renewing the lease of job %s failed: %s", job.job_id, exc)

    async def _finish(
        self,
        job_id: str,
        entry_id: str,
        spec: JobSpec,
        status: Literal["succeeded", "failed", "cancelled"],
        error: LongscribeError | None = None,
        progress: dict[str, Any] | None = None,
        output: TranscribeOutput | None = None,
    ) -> None:
        # shielded: a cancel or hand-back landing now must not leave the job half ended
        await asyncio.shield(self._end(job_id, entry_id, spec, status, error, progress, output))

    async def _end(
        self,
        job_id: str,
        entry_id: str,
        spec: JobSpec,
        status: Literal["succeeded", "failed", "cancelled"],
        error: LongscribeError | None,
        progress: dict[str, Any] | None,
        output: TranscribeOutput | None,
    ) -> None:
        pending = await self.store.client.xpending_range(QUEUE, GROUP, entry_id, entry_id, 1)
        if not pending or pending[0]["consumer"] != self.consumer:
            log.warning("job %s was taken over by another worker: its end is theirs to write", job_id)
            return
        # one delivery id per job, whoever ends it: a receiver drops a duplicate by it
        webhook = {"id": f"{job_id}.1", "state": "pending", "attempts": 0} if spec.webhook_url else None
        # megabytes for hours of media: serialised off the loop, which keeps serving events meanwhile
        result_json = await asyncio.to_thread(output.to_json) if output is not None else None
        async with self.store.client.pipeline(transaction=True) as tx:
            if result_json is not None:
                tx.set(result_key(job_id), result_json, ex=int(self.store.ttl_s))
            self.store.finish_in(tx, job_id, status, error, progress, webhook, output)
            tx.xack(QUEUE, GROUP, entry_id)
            tx.xdel(QUEUE, entry_id)
            await tx.execute()
        if isinstance(spec.request, UploadRequest):
            spec.request.upload.path.unlink(missing_ok=True)
        if webhook is not None:
            self.on_finished(job_id)

    async def _hand_back(self, job_id: str, entry_id: str) -> None:
        """Re-queue at once (a new entry any worker reads now); the hand-back is no failed attempt."""
        async with self.store.client.pipeline(transaction=True) as tx:
            tx.hset(job_key(job_id), mapping={"status": "queued", "worker": ""})
            tx.hincrby(job_key(job_id), "attempts", -1)
            tx.sadd(QUEUED, job_id)
            tx.xadd(QUEUE, {"job": job_id})
            tx.xack(QUEUE, GROUP, entry_id)
            tx.xdel(QUEUE, entry_id)
            tx.xadd(events_key(job_id), {"event": "status", "data": json.dumps({"status": "queued"})})
            await tx.execute()
        log.info("job %s handed back to the queue", job_id)


async def ensure_group(store: JobStore) -> None:
    """The workers' consumer group on the queue stream, made once for the fleet."""
    with contextlib.suppress(RedisError):  # BUSYGROUP: it exists
        await store.client.xgroup_create(QUEUE, GROUP, id="0", mkstream=True)


async def _drop(store: JobStore, entry_id: str) -> None:
    async with store.client.pipeline(transaction=True) as tx:
        tx.xack(QUEUE, GROUP, entry_id)
        tx.xdel(QUEUE, entry_id)
        await tx.execute()


def _progress(progress: Progress, saved: checkpoints.RedisCheckpoints) -> dict[str, Any]:
    return {
        "chunks_done": progress.chunks_done,
        "chunks_total": progress.chunks_total,
        "audio_done_s": progress.audio_done_s,
        "duration_s": progress.duration_s,
        "chunks_resumed": len(saved.resumed),
        "resumed_audio_s": sum(saved.kept[i].chunk.duration_s for i in saved.resumed),
    }


def _added(progress: Progress) -> list[dict[str, Any]]:
    """The segments this report settled in the finished prefix: a bounded delta for the `chunk` event."""
    return [s.model_dump(mode="json", exclude_none=True) for s in progress.added]


async def _settle(writer: asyncio.Task[None], reports: asyncio.Queue[Any], drain: bool) -> None:
    """Let the progress writer write what is queued (so `end` comes after every `chunk`), then stop it."""
    if drain:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reports.join(), RETRY_S * 10)
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
