"""Jobs in Redis, shared by every orchestrator: accept, read, cancel, and record each step.

Any orchestrator answers for any job: the state is in Redis (keys in
`records`), none of it in this process. Accepting a job checks the fleet's
admission limit (jobs waiting to start, everywhere) before it answers 202,
then adds the job to the queue stream that workers read as a consumer group.
Every change of a job's state is one Lua script (`transitions`) that also
appends the event to the job's event stream, so a reader never sees one
without the other; the worker decides, the store changes state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError

from orchestrator.assemble.final import Assembled, PartMissing, assemble
from orchestrator.assemble.progress import ChunkPart
from orchestrator.errors import JobNotFound, LongscribeError
from orchestrator.jobs import checkpoints, stored, submission, transitions
from orchestrator.jobs.records import (
    ACTIVE,
    FINISHED,
    QUEUED,
    JobSpec,
    Status,
    chunks_key,
    job_key,
    links,
    loads,
    text_hash,
)
from orchestrator.jobs.transitions import CHECKPOINT_GRACE_S, Lease, Outcome
from orchestrator.schemas import TranscribeOutput, UploadRequest

log = logging.getLogger("longscribe.jobs")


class StagedResultLost(RedisConnectionError):
    """Passes like a dropped connection: the job's end, tried again, writes the transcript again."""


CANCEL_WAIT_S = 30.0  # DELETE waits this long for a running job to wind down wherever it runs
CANCEL_POLL_S = 0.25  # how often it looks (one HGET): a quarter second late at most


@dataclass
class JobStore:
    """The fleet's jobs, through one Redis client (decode_responses=True)."""

    client: redis.Redis
    ttl_s: float
    max_queued: int
    retry_after_s: int
    max_queued_per_key: int = 0  # jobs one API key may have waiting; 0: no limit
    # told each job's end by the process whose write ended it: once per job in the fleet (jobs_total)
    ended: Callable[[Status], None] | None = None
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set on shutdown: event streams end
    scripts: transitions.Scripts = field(init=False)

    def __post_init__(self) -> None:
        self.scripts = transitions.Scripts.on(self.client)

    @property
    def limits(self) -> submission.QueueLimits:
        return submission.QueueLimits(self.max_queued, self.max_queued_per_key, self.retry_after_s)

    async def check_room(self, owner: str = "") -> None:
        """Raise Overloaded when the fleet, or `owner`, already has as many jobs waiting as allowed: the
        cheap look before an upload is read (submit checks again, atomically)."""
        await submission.check_room(self.client, owner, self.limits)

    async def submit(self, spec: JobSpec) -> str:
        """Accept a job and queue it, in one atomic step (`submission`); Overloaded naming the limit that is full."""
        job_id = await submission.submit(self.client, spec, self.limits)
        log.info("job %s queued", job_id)  # on the submitting request's line: its request_id joins to the job
        return job_id

    async def fields(self, job_id: str) -> dict[str, str]:
        """The job's hash; JobNotFound when there is none (never was, expired, or lost by Redis)."""
        found = text_hash(await self.client.hgetall(job_key(job_id)))
        if not found.keys() >= {"spec", "status", "created"}:  # a part without the whole: not a job
            raise JobNotFound(f"no job {job_id!r}")
        return found

    async def spec(self, job_id: str) -> JobSpec:
        return JobSpec.model_validate_json((await self.fields(job_id))["spec"])

    async def in_flight(self) -> int:
        return int(await self.client.scard(ACTIVE))

    async def queued(self) -> int:
        return int(await self.client.scard(QUEUED))

    async def to_json(self, job_id: str) -> dict[str, Any]:
        """The job as GET /v1/jobs/{id} shows it: status, worker, progress, error, webhook. Never the transcript,
        which is megabytes at hours: the route streams a finished one's "result" (`stored.with_result`) or a
        running one's "partial" (`partial`) beside this."""
        f = await self.fields(job_id)
        status = f["status"]
        body: dict[str, Any] = {
            "id": job_id,
            "status": status,
            "created_at": float(f["created"]),
            "worker": f.get("worker") or None,
            "progress": progress_json(f),
            "links": links(job_id),
        }
        if f.get("error"):
            body["error"] = loads(f["error"])
        if f.get("webhook"):
            body["webhook"] = loads(f["webhook"])
        return body

    async def partial(self, job_id: str) -> Assembled | None:
        """The transcript of the finished chunks from the start (chunks 0..k-1 all done), None before the
        first: read from the checkpoints one chunk at a time and written out in pieces by the caller, so a
        poll of a long job never holds its transcript so far whole."""
        done = {int(index) for index in await self.client.hkeys(chunks_key(job_id))}
        count = 0
        while count in done:
            count += 1
        last = await checkpoints.read(self.client, job_id, count - 1) if count else None
        if last is None:
            return None
        spec = loads((await self.fields(job_id)).get("spec")) or {}
        with_words = bool(spec.get("request", {}).get("params", {}).get("word_timestamps"))

        async def read(index: int) -> ChunkPart | None:
            # a job that ended meanwhile keeps its checkpoints CHECKPOINT_GRACE_S: each read renews that, so a
            # slow reader of a long partial finishes it (GT: a running job's checkpoints, which never expire,
            # are left as they are)
            await self.client.expire(chunks_key(job_id), CHECKPOINT_GRACE_S, gt=True)
            return await checkpoints.read(self.client, job_id, index)

        try:
            found = await assemble(read, count, last.chunk.end_s, with_words, started=time.monotonic())
        except PartMissing:  # it ended and its checkpoints are gone, or Redis lost one: no partial to show
            return None
        found.processing_duration_sec = 0.0  # a prefix has no processing time of its own (as before)
        return found

    async def cancel(self, job_id: str) -> None:
        """Cancel a job wherever it is: a waiting one here and now, a running one through its worker (waited
        for up to CANCEL_WAIT_S); JobNotFound when there is none."""
        spec = await self.spec(job_id)
        if await self._cancel_waiting(job_id, spec):
            if isinstance(spec.request, UploadRequest):
                spec.request.upload.path.unlink(missing_ok=True)
            return
        if await transitions.flag_cancel(self.scripts, job_id) == "gone":
            raise JobNotFound(f"no job {job_id!r}")
        # polled with short reads, never a blocking XREAD: each waiting DELETE would hold a pooled
        # connection the whole time, and a few dozen would starve everyone else (lease renewals too)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            status = await self.client.hget(job_key(job_id), "status")
            if status is None or status in FINISHED:  # gone: the answer's read says so
                return
            await asyncio.sleep(CANCEL_POLL_S)

    async def _cancel_waiting(self, job_id: str, spec: JobSpec) -> bool:
        """Cancel the job if it has not started (atomically against a worker starting it); False if it has."""
        unleased = Lease(job_id, "", "", spec.owner)  # no lease: the script ends it only while it is queued
        outcome = await self.finish(unleased, "cancelled", require_lease=False)
        if outcome == "gone":
            raise JobNotFound(f"no job {job_id!r}")
        return outcome in ("ok", "finished")

    # Each change of a job's state below is one script of `transitions`: owned, idempotent, conditional
    # on the job still being in Redis. The worker decides which; none of it writes the job itself.

    async def admit(self, lease: Lease, worker: str, max_attempts: int) -> Outcome:
        """Mark the job running at `worker` (`ok`), or say why not: gone, finished (its entry dropped),
        lost, cancel, exhausted (started more than `max_attempts` times)."""
        outcome = await transitions.run(self.scripts.admit, lease, self.ttl_s, worker, time.time(), max_attempts)
        if outcome == "ok":
            log.info("job %s running on %s", lease.job_id, worker)
        return outcome

    async def record_progress(
        self, lease: Lease, seq: int, running: dict[str, str], progress: dict[str, Any], added: list[dict[str, Any]]
    ) -> Outcome:
        """One finished chunk, report `seq` of this run: the progress in the hash and a `chunk` event with
        it and the segments it settled (`added`, bounded: never the prefix).

        `running` holds the fields this run set when it started (status, started)."""
        snapshot = {**running, "progress": json.dumps(progress)}
        chunk = json.dumps({**progress_json(snapshot), "segments": added})
        return await transitions.run(self.scripts.progress, lease, self.ttl_s, seq, snapshot["progress"], chunk)

    async def save_checkpoint(self, lease: Lease, part: ChunkPart) -> Outcome:
        encoded = await asyncio.to_thread(checkpoints.encode_part, part)
        return await transitions.run(self.scripts.checkpoint, lease, self.ttl_s, part.chunk.index, encoded)

    async def renew(self, lease: Lease) -> Outcome:
        """Extend the lease (and every key's expiry); `cancel` when one is asked for."""
        return await transitions.run(self.scripts.renew, lease, self.ttl_s)

    async def hand_back(self, lease: Lease) -> Outcome:
        """Queue the job again at once (a new entry any worker reads now), only if the lease still holds
        and the job has not ended; the hand-back is no failed attempt."""
        return await transitions.run(self.scripts.hand_back, lease, self.ttl_s)

    async def finish(
        self,
        lease: Lease,
        status: Status,
        error: LongscribeError | None = None,
        progress: dict[str, Any] | None = None,
        webhook: dict[str, Any] | None = None,
        output: TranscribeOutput | Assembled | None = None,
        require_lease: bool = True,
    ) -> Outcome:
        """End the job: status, transcript, the end event, expiry, the webhook to send, its entry gone.

        The end event says how it ended: status, links, the error, and the transcript's totals
        (`summary`), never the transcript itself, so its size does not depend on the media's.
        `require_lease=False` ends only a job still waiting (a cancel before any worker took it). The
        transcript is written to Redis in pieces first (`stored.stage`; an `Assembled` one read again from
        the checkpoints meanwhile), never whole in this process; the end makes it the result."""
        end: dict[str, Any] = {"status": status, "links": links(lease.job_id)}
        if output is not None:  # megabytes for hours of media: in pieces, the loop serving events between them
            pieces = output.json_pieces() if isinstance(output, Assembled) else stored.whole(output)
            await stored.stage(self.client, lease.job_id, pieces, self.ttl_s)
            end["summary"] = summary(output)  # once written: a speaker turn may have split a segment
        if error is not None:
            end["error"] = error.detail()
        outcome = await transitions.run(
            self.scripts.finish,
            lease,
            self.ttl_s,
            status,
            time.time(),
            json.dumps(error.detail()) if error is not None else "",
            json.dumps(progress) if progress is not None else "",
            json.dumps(webhook) if webhook is not None else "",
            json.dumps(end),
            "1" if output is not None else "",
            "1" if require_lease else "0",
        )
        if outcome == "unstaged":  # Redis lost the staged transcript (a restart): retried, it is written again
            raise StagedResultLost(f"the transcript of job {lease.job_id} was lost while it was written")
        if outcome == "ok":  # "finished": someone else's write ended it, and said so
            log.info("job %s %s%s", lease.job_id, status, f": {error.message}" if error is not None else "")
            if self.ended is not None:
                self.ended(status)
        return outcome


def progress_json(f: dict[str, str]) -> dict[str, Any]:
    """Audio done of total, chunks done, chunks carried over from an earlier run, speed so far, ETA."""
    p = loads(f.get("progress")) or {}
    status = f["status"]
    started = float(f["started"]) if f.get("started") else None
    now = float(f["finished"]) if f.get("finished") else time.time()
    done_s = float(p.get("audio_done_s", 0.0))
    total_s = p.get("duration_s")
    if status == "succeeded" and total_s is not None:
        done_s = max(done_s, float(total_s))
    ran_s = done_s - float(p.get("resumed_audio_s", 0.0))  # this run's own work sets the speed
    elapsed = now - started if started else 0.0
    speed = ran_s / elapsed if elapsed > 0 and ran_s > 0 else None
    eta = (total_s - done_s) / speed if speed and total_s is not None and status == "running" else None
    return {
        "audio_done_sec": round(done_s, 3),
        "audio_total_sec": total_s,
        "chunks_done": p.get("chunks_done", 0),
        "chunks_total": p.get("chunks_total"),
        "chunks_resumed": p.get("chunks_resumed", 0),
        "speed": round(speed, 2) if speed else None,
        "eta_sec": round(max(0.0, eta), 1) if eta is not None else None,
    }


def summary(output: TranscribeOutput | Assembled) -> dict[str, Any]:
    """The end event's totals of a transcript: its length, speed, segments, and speakers when diarized."""
    totals: dict[str, Any] = {
        "input_duration_sec": output.input_duration_sec,
        "processing_duration_sec": output.processing_duration_sec,
        "speedup": output.speedup,
        "segments": output.segment_count if isinstance(output, Assembled) else len(output.segments),
    }
    if isinstance(output, Assembled):
        speakers = output.speaker_count
    else:
        found = {s.speaker for s in output.segments if s.speaker is not None}
        speakers = len(found) if found else None
    if speakers is not None:
        totals["speakers"] = speakers
    return totals
