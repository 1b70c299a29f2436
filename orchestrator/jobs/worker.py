"""Run queued jobs: read the queue stream as one consumer of the fleet's group, hold a lease, resume.

A job's queue entry is pending at the worker that runs it; the worker renews
it (XCLAIM to itself) every third of `job_lease_sec`. A worker that dies
stops renewing, and after `job_lease_sec` any other worker takes the entry
over (XPENDING IDLE, then XCLAIM) and resumes the job from its checkpoints.
On shutdown the running jobs are handed back at once: re-queued, to resume
elsewhere. A cancel published on the channel (or flagged in the job, checked
with each renewal) stops the job's FFmpeg and inference wherever it runs.

The worker decides; the store changes the job's state (one owned script per
change, `transitions`). A job the store says is gone (Redis lost it) or no
longer ours is stopped here. Progress is best effort; checkpoints and the end
are retried through a Redis outage of up to `outage_s`.
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

from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from orchestrator.assemble.final import Assembled
from orchestrator.assemble.progress import ChunkPart, OnProgress
from orchestrator.common.observability import job_context
from orchestrator.common.tasks import cancel_all
from orchestrator.errors import JobNotFound, LongscribeError, UploadMissing
from orchestrator.jobs import checkpoints
from orchestrator.jobs.records import CANCEL_CHANNEL, GROUP, QUEUE, JobSpec, added_segments, stream_entries
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.transitions import Lease, Outcome
from orchestrator.pipeline import Checkpoints
from orchestrator.schemas import MediaRequest, TranscribeOutput, UploadRequest

log = logging.getLogger("longscribe.jobs")

Run = Callable[[MediaRequest, OnProgress, Checkpoints], Awaitable[TranscribeOutput | Assembled]]
StopReason = Literal["cancel", "handoff", "lost"]
READ_BLOCK_MS = 1000  # how long one read of the queue waits; also how often stale leases are looked for
RETRY_S = 1.0  # after Redis failed us, before trying again
RETRY_MAX_S = 5.0  # the longest wait between two tries of a job's write
TAKEOVER_SCAN = 100  # idle queue entries looked at in one go
# what passes (a restart, a failover, a busy or sleeping server), unlike a refused command
TRANSIENT = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Running:
    job_id: str
    entry_id: str
    task: asyncio.Task[None]
    reason: StopReason | None = None
    ending: bool = False  # its run is over and its end is being written: nothing may cut that short

    def stop(self, reason: StopReason) -> None:
        if self.reason is None and not self.ending:
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
    outage_s: float = 120.0  # how long a job's end and checkpoints are retried while Redis fails
    name: str = field(default_factory=process_name)  # `worker` in the job's JSON
    # the group's consumer: unique also when one process holds several apps
    consumer: str = ""
    running: dict[str, Running] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    taken: set[asyncio.Task[None]] = field(default_factory=set)  # every job task, from admission to its end
    held: set[str] = field(default_factory=set)  # queue entries this worker admits or runs: never its takeovers
    claim_from: str = "-"  # where the next look for stale entries starts in the queue's pending list

    def __post_init__(self) -> None:
        self.consumer = self.consumer or f"{self.name}:{secrets.token_hex(3)}"

    async def start(self) -> None:
        await ensure_group(self.store)
        self.tasks = [asyncio.create_task(self._listen_for_cancels())]
        if self.slots:
            self.tasks.append(asyncio.create_task(self._take_jobs()))

    async def close(self) -> None:
        """Stop taking jobs and hand the running ones back to the queue (they resume elsewhere)."""
        running = list(self.running.values())
        for job in running:  # cancelled once: each hands its job back, and that must not be cut short
            job.stop("handoff")
        admitting = [task for task in self.taken if all(task is not j.task for j in running)]
        # not started yet: its lease runs out and another worker takes it
        await cancel_all([*self.tasks, *admitting])
        await asyncio.gather(*(j.task for j in running), return_exceptions=True)

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
            task = asyncio.create_task(self._run(*entry), context=job_context(entry[1]))  # its logs name it
            self.taken.add(task)

            def ended(done: asyncio.Task[None]) -> None:
                free.release()
                self.taken.discard(done)

            task.add_done_callback(ended)

    async def _next(self) -> tuple[str, str] | None:
        """A job whose worker stopped renewing its lease, else a new one; (entry id, job id)."""
        stale = await self._stale()
        if stale is not None:
            return stale
        found = await self.store.client.xreadgroup(GROUP, self.consumer, {QUEUE: ">"}, count=1, block=READ_BLOCK_MS)
        for entry_id, fields in stream_entries(found):
            return entry_id, fields["job"]
        return None

    async def _stale(self) -> tuple[str, str] | None:
        """Take over one entry idle past the lease. XPENDING's IDLE filter passes over every entry that
        is renewed, however many run ahead of it (XAUTOCLAIM COUNT n looks at only 10 n entries, and
        from 0-0 each time it never got past ten running jobs); the cursor goes round the queue."""
        client, lease_ms = self.store.client, int(self.lease_s * 1000)
        idle = await client.xpending_range(QUEUE, GROUP, self.claim_from, "+", TAKEOVER_SCAN, idle=lease_ms)
        self.claim_from = "(" + str(idle[-1]["message_id"]) if len(idle) == TAKEOVER_SCAN else "-"
        ours = self.held  # idle while Redis did not answer our renewals, or admitted slowly: still ours
        for candidate in idle:
            entry_id = str(candidate["message_id"])
            if entry_id in ours:
                continue
            claimed = await client.xclaim(QUEUE, GROUP, self.consumer, lease_ms, [entry_id])  # still idle: ours
            for claimed_id, fields in stream_entries([(QUEUE, claimed)]):
                if fields:
                    log.info("taking over job %s: its worker's lease ran out", fields["job"])
                    return claimed_id, fields["job"]
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
        self.held.add(entry_id)
        try:
            admitted = await self._admit(entry_id, job_id)
            if admitted is not None:
                await self._execute(*admitted)
        except (RedisError, OSError) as exc:  # the entry stays pending: its lease runs out, another worker retries
            log.warning("job %s: Redis failed: %s", job_id, exc)
        except Exception:
            log.exception("job %s: the worker failed", job_id)
        finally:
            self.held.discard(entry_id)

    async def _admit(self, entry_id: str, job_id: str) -> tuple[Lease, JobSpec] | None:
        """The job marked running here, with its spec; None when it must not run (ended, or not ours)."""
        try:
            spec: JobSpec | None = await self.store.spec(job_id)
        except JobNotFound:
            spec = None  # expired while it waited, or lost by Redis: admit drops its entry
        except ValidationError as exc:  # written by another version, or damaged: it can never run
            log.error("job %s: its spec cannot be read: %s", job_id, exc)
            unreadable = LongscribeError("the job's record cannot be read by this version of the service")
            await self._retried(self.outage_s, self.store.finish, Lease(job_id, entry_id, self.consumer, ""),
                                "failed", unreadable)  # fmt: skip
            return None
        lease = Lease(job_id, entry_id, self.consumer, spec.owner if spec else "")
        if spec is not None and isinstance(spec.request, UploadRequest) and not spec.request.upload.path.is_file():
            missing = UploadMissing(f"the uploaded {spec.request.upload.filename or 'file'} is not on {self.name}")
            await self._finish(lease, spec, "failed", missing)
            return None
        outcome = await self.store.admit(lease, self.name, self.max_attempts)
        if spec is None or outcome in ("gone", "finished", "lost"):
            if outcome != "finished":
                log.info("job %s not started here: %s", job_id, outcome)
            return None
        if outcome == "cancel":
            await self._finish(lease, spec, "cancelled")
            return None
        if outcome == "exhausted":
            exhausted = LongscribeError(f"the job was started {self.max_attempts} times and never finished")
            await self._finish(lease, spec, "failed", exhausted)
            return None
        return lease, spec

    async def _execute(self, lease: Lease, spec: JobSpec) -> None:
        """Transcribe, resuming from the checkpoints; end the job, or hand it back on shutdown."""
        job_id = lease.job_id
        current = asyncio.current_task()
        assert current is not None
        job = Running(job_id, lease.entry_id, current)
        kept, client = await checkpoints.load(self.store.client, job_id), self.store.client
        saved = checkpoints.RedisCheckpoints(
            kept, lambda part: self._checkpoint(job, lease, part), lambda n: checkpoints.read(client, job_id, n)
        )
        reports: asyncio.Queue[tuple[dict[str, Any], list[dict[str, Any]]]] = asyncio.Queue()
        running_fields = {"status": "running", "started": str(time.time())}
        writer = asyncio.create_task(self._write_progress(job, lease, running_fields, reports))
        self.running[job_id] = job
        renew = asyncio.create_task(self._renew(job, lease))
        try:
            try:
                output = await self.run(
                    spec.request, lambda p: reports.put_nowait((saved.record(p), added_segments(p))), saved
                )
            finally:  # a cancel or hand-back landing after the run must not throw away what it made
                job.ending = job.reason is None
        except asyncio.CancelledError:
            await _settle(writer, reports, drain=job.reason == "cancel")
            if job.reason == "cancel":
                await self._finish(lease, spec, "cancelled")
            elif job.reason != "lost":  # shutdown: hand it back
                await self._hand_back(lease)
        except LongscribeError as exc:
            await _settle(writer, reports, drain=True)
            await self._finish(lease, spec, "failed", exc)
        except Exception:
            log.exception("job %s failed", job_id)
            await _settle(writer, reports, drain=True)
            await self._finish(lease, spec, "failed", LongscribeError("internal error"))
        else:
            await _settle(writer, reports, drain=True)
            last = json.loads(running_fields.get("last_progress", "{}"))
            # what FFmpeg decoded is the length, whatever the header said
            done = {**last, "audio_done_s": output.input_duration_sec, "duration_s": output.input_duration_sec}
            await self._finish(lease, spec, "succeeded", progress=done, output=output)
        finally:
            renew.cancel()
            self.running.pop(job_id, None)

    def _gone(self, job: Running, outcome: Outcome) -> bool:
        """Stop the job here when the store says it is no longer ours to run; True if so."""
        if outcome == "gone":
            log.error("job %s vanished from Redis (lost data?): stopped, nothing left to record it in", job.job_id)
        elif outcome in ("lost", "finished"):
            log.warning("job %s was taken over or ended elsewhere: dropping it here", job.job_id)
        else:
            return False
        job.stop("lost")
        return True

    async def _checkpoint(self, job: Running, lease: Lease, part: ChunkPart) -> bool:
        """Keep a finished chunk, retried through an outage; skipped (to be transcribed again on a
        takeover, and held by this run meanwhile) rather than failing the job when Redis stays away."""
        try:
            outcome = await self._retried(self.outage_s, self.store.save_checkpoint, lease, part)
        except (RedisError, OSError) as exc:
            log.warning("job %s: checkpoint of chunk %d skipped: %s", job.job_id, part.chunk.index, exc)
            return False
        return not self._gone(job, outcome)

    async def _write_progress(
        self,
        job: Running,
        lease: Lease,
        running: dict[str, str],
        reports: asyncio.Queue[tuple[dict[str, Any], list[dict[str, Any]]]],
    ) -> None:
        """Progress is best effort: a report Redis does not take (after the client's own retries) is
        skipped with a log; the job, its checkpoints and its end do not depend on it."""
        seq = 0
        while True:
            progress, added = await reports.get()
            seq += 1
            running["last_progress"] = json.dumps(progress)
            try:
                self._gone(job, await self.store.record_progress(lease, seq, running, progress, added))
            except (RedisError, OSError) as exc:
                log.warning("job %s: progress report %d skipped: %s", job.job_id, seq, exc)
            finally:
                reports.task_done()

    async def _renew(self, job: Running, lease: Lease) -> None:
        """Every third of the lease: still ours? renew it; cancelled meanwhile? stop."""
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                outcome = await self.store.renew(lease)
            except (RedisError, OSError) as exc:
                log.warning("renewing the lease of job %s failed: %s", job.job_id, exc)
                continue
            if outcome == "cancel":
                job.stop("cancel")  # the published cancel was missed
            if self._gone(job, outcome) or outcome == "cancel":
                return

    async def _retried(self, within_s: float, write: Callable[..., Awaitable[Outcome]], *args: Any) -> Outcome:
        """`write`, again with backoff while Redis fails for a while (restarts, fails over, is busy)."""
        retrying = AsyncRetrying(
            stop=stop_after_delay(within_s),
            wait=wait_exponential(multiplier=RETRY_S / 2, max=RETRY_MAX_S),
            retry=retry_if_exception_type(TRANSIENT),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await write(*args)
        raise AssertionError("unreachable: tenacity reraises")

    async def _finish(
        self,
        lease: Lease,
        spec: JobSpec,
        status: Literal["succeeded", "failed", "cancelled"],
        error: LongscribeError | None = None,
        progress: dict[str, Any] | None = None,
        output: TranscribeOutput | Assembled | None = None,
    ) -> None:
        """End the job, retried until it lands (within `outage_s`): the transcript is never dropped for
        a Redis that failed a moment. Shielded: a cancel or hand-back landing now must not interrupt it."""
        # one delivery id per job, whoever ends it: a receiver drops a duplicate by it
        webhook = {"id": f"{lease.job_id}.1", "state": "pending", "attempts": 0} if spec.webhook_url else None
        write = self.store.finish
        end = self._retried(self.outage_s, write, lease, status, error, progress, webhook, output)
        outcome = await asyncio.shield(end)
        if outcome in ("lost", "gone"):
            log.warning("job %s: its end is not ours to write (%s)", lease.job_id, outcome)
            return
        if isinstance(spec.request, UploadRequest):
            spec.request.upload.path.unlink(missing_ok=True)
        if webhook is not None:
            self.on_finished(lease.job_id)

    async def _hand_back(self, lease: Lease) -> None:
        """Re-queue at once, if the job is still ours and not ended; else its lease runs out as it may."""
        outcome = await self._retried(self.lease_s, self.store.hand_back, lease)
        log.info("job %s handed back to the queue: %s", lease.job_id, outcome)


async def ensure_group(store: JobStore) -> None:
    """The workers' consumer group on the queue stream, made once for the fleet."""
    with contextlib.suppress(RedisError):  # BUSYGROUP: it exists
        await store.client.xgroup_create(QUEUE, GROUP, id="0", mkstream=True)


async def _settle(writer: asyncio.Task[None], reports: asyncio.Queue[Any], drain: bool) -> None:
    """Let the progress writer write what is queued (so `end` comes after every `chunk`), then stop it."""
    if drain:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reports.join(), RETRY_S * 10)
    writer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await writer
