"""Jobs in Redis, shared by every orchestrator: accept, read, cancel, and record each step.

Any orchestrator answers for any job: the state is in Redis (keys in
`records`), none of it in this process. Accepting a job checks the fleet's
admission limit (jobs waiting to start, everywhere) before it answers 202,
then adds the job to the queue stream that workers read as a consumer group.
Every change of state is one Redis transaction that also appends the event
to the job's event stream, so a reader never sees one without the other.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.exceptions import WatchError

from orchestrator.assemble import merge, transcript
from orchestrator.assemble.progress import ChunkPart
from orchestrator.errors import JobNotFound, LongscribeError
from orchestrator.jobs import checkpoints, submission
from orchestrator.jobs.records import (
    ACTIVE,
    CANCEL_CHANNEL,
    FINISHED,
    QUEUED,
    WEBHOOKS,
    JobSpec,
    Status,
    all_keys,
    chunks_key,
    events_key,
    job_key,
    links,
    loads,
    result_key,
    stream_entries,
    text_hash,
)
from orchestrator.schemas import TranscribeOutput, UploadRequest

CANCEL_WAIT_S = 30.0  # DELETE waits this long for a running job to wind down wherever it runs
CANCEL_POLL_MS = 1000


@dataclass
class JobStore:
    """The fleet's jobs, through one Redis client (decode_responses=True)."""

    client: redis.Redis
    ttl_s: float
    max_queued: int
    retry_after_s: int
    max_queued_per_key: int = 0  # jobs one API key may have waiting; 0: no limit
    closing: asyncio.Event = field(default_factory=asyncio.Event)  # set on shutdown: event streams end

    @property
    def limits(self) -> submission.QueueLimits:
        return submission.QueueLimits(self.max_queued, self.max_queued_per_key, self.retry_after_s)

    async def check_room(self, owner: str = "") -> None:
        """Raise Overloaded when the fleet, or `owner`, already has as many jobs waiting as allowed: the
        cheap look before an upload is read (submit checks again, atomically)."""
        await submission.check_room(self.client, owner, self.limits)

    async def submit(self, spec: JobSpec) -> str:
        """Accept a job and queue it, in one atomic step (`submission`); Overloaded naming the limit that is full."""
        return await submission.submit(self.client, spec, self.limits)

    async def fields(self, job_id: str) -> dict[str, str]:
        """The job's hash; JobNotFound when there is none (never was, or expired)."""
        found = text_hash(await self.client.hgetall(job_key(job_id)))
        if not found:
            raise JobNotFound(f"no job {job_id!r}")
        return found

    async def spec(self, job_id: str) -> JobSpec:
        return JobSpec.model_validate_json((await self.fields(job_id))["spec"])

    async def result(self, job_id: str) -> TranscribeOutput | None:
        raw = await self.client.get(result_key(job_id))
        # parsing hours of transcript takes a while: off the loop
        return await asyncio.to_thread(TranscribeOutput.model_validate_json, raw) if raw else None

    async def in_flight(self) -> int:
        return int(await self.client.scard(ACTIVE))

    async def queued(self) -> int:
        return int(await self.client.scard(QUEUED))

    async def to_json(self, job_id: str, with_result: bool = True) -> dict[str, Any]:
        """The job as GET /v1/jobs/{id} shows it: status, worker, progress, webhook, and the transcript so far."""
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
        if status == "succeeded" and with_result:
            output = await self.result(job_id)
            if output is not None:  # hours of transcript: off the loop
                body["result"] = await asyncio.to_thread(_as_json, output)
        elif status == "running":
            partial = await self.partial(job_id, loads(f.get("spec")) or {})
            if partial is not None:
                body["partial"] = await asyncio.to_thread(_as_json, partial)
        if f.get("error"):
            body["error"] = loads(f["error"])
        if f.get("webhook"):
            body["webhook"] = loads(f["webhook"])
        return body

    async def partial(self, job_id: str, spec: dict[str, Any]) -> TranscribeOutput | None:
        """The transcript of the finished chunks from the start, built from the checkpoints when asked."""
        parts = await checkpoints.load(self.client, job_id)
        prefix: list[ChunkPart] = []
        while len(prefix) in parts:
            prefix.append(parts[len(prefix)])
        if not prefix:
            return None
        end_s = prefix[-1].chunk.end_s
        with_words = bool(spec.get("request", {}).get("params", {}).get("word_timestamps"))
        timed = merge.final_segments([(p.chunk, p.result) for p in prefix], end_s)
        return transcript.build(timed, end_s, 0.0, with_words)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job wherever it is: a waiting one here and now, a running one through its worker."""
        if await self._cancel_waiting(job_id):
            request = (await self.spec(job_id)).request
            if isinstance(request, UploadRequest):
                request.upload.path.unlink(missing_ok=True)
            return await self.to_json(job_id)
        await self.client.hset(job_key(job_id), "cancel", "1")
        await self.client.publish(CANCEL_CHANNEL, job_id)
        deadline = time.monotonic() + CANCEL_WAIT_S
        last_id = "$"
        while time.monotonic() < deadline and (await self.fields(job_id))["status"] not in FINISHED:
            found = await self.client.xread({events_key(job_id): last_id}, count=100, block=CANCEL_POLL_MS)
            for entry_id, _ in stream_entries(found):
                last_id = entry_id
        return await self.to_json(job_id)

    async def _cancel_waiting(self, job_id: str) -> bool:
        """Cancel the job if it has not started (atomically against a worker starting it); False if it has."""
        async with self.client.pipeline(transaction=True) as tx:
            try:
                await tx.watch(job_key(job_id))
                status = await tx.hget(job_key(job_id), "status")
                if status is None:
                    raise JobNotFound(f"no job {job_id!r}")
                if status != "queued":
                    return status in FINISHED
                tx.multi()  # type: ignore[no-untyped-call]
                self.finish_in(tx, job_id, "cancelled", None)
                await tx.execute()
                return True
            except WatchError:
                return False  # a worker took it just now: cancel it where it runs

    def finish_in(
        self,
        tx: redis.client.Pipeline,
        job_id: str,
        status: Status,
        error: LongscribeError | None,
        progress: dict[str, Any] | None = None,
        webhook: dict[str, Any] | None = None,
        output: TranscribeOutput | None = None,
    ) -> None:
        """Queue the writes that end a job on `tx`: status, the end event, expiry, and the webhook to send.

        The end event says how it ended: status, links, the error, and the transcript's totals
        (`summary`), never the transcript itself, so its size does not depend on the media's."""
        mapping: dict[Any, str | float] = {"status": status, "finished": time.time()}
        if error is not None:
            mapping["error"] = json.dumps(error.detail())
        if progress is not None:
            mapping["progress"] = json.dumps(progress)
        if webhook is not None:
            mapping["webhook"] = json.dumps(webhook)
            tx.sadd(WEBHOOKS, job_id)
        tx.hset(job_key(job_id), mapping=mapping)
        tx.srem(QUEUED, job_id)
        tx.srem(ACTIVE, job_id)
        tx.delete(chunks_key(job_id))
        end: dict[str, Any] = {"status": status, "links": links(job_id)}
        if output is not None:
            end["summary"] = {
                "input_duration_sec": output.input_duration_sec,
                "processing_duration_sec": output.processing_duration_sec,
                "speedup": output.speedup,
                "segments": len(output.segments),
            }
        if error is not None:
            end["error"] = error.detail()
        tx.xadd(events_key(job_id), {"event": "end", "data": json.dumps(end)})
        for key in all_keys(job_id):
            tx.expire(key, int(self.ttl_s))

    async def record_progress(
        self, job_id: str, running: dict[str, str], progress: dict[str, Any], added: list[dict[str, Any]]
    ) -> None:
        """One finished chunk: the progress in the hash and a `chunk` event with it and the segments it
        settled (`added`, bounded: never the prefix), in one transaction.

        `running` holds the fields this run set when it started (status, started, resumed audio)."""
        snapshot = {**running, "progress": json.dumps(progress)}
        async with self.client.pipeline(transaction=True) as tx:
            tx.hset(job_key(job_id), mapping={"progress": snapshot["progress"]})
            chunk = {**progress_json(snapshot), "segments": added}
            tx.xadd(events_key(job_id), {"event": "chunk", "data": json.dumps(chunk)})
            await tx.execute()


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


def _as_json(output: TranscribeOutput) -> dict[str, Any]:
    return dict(json.loads(output.to_json()))
