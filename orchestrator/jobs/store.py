"""Jobs for long media: start, watch (poll or server-sent events), cancel, collect.

A job runs the same transcription as POST /v1/transcribe, in the background,
under the same admission control. Each finished macro chunk updates its
progress (audio seconds done of total, chunks done, speed so far, ETA) and
the finished prefix of the transcript (GET), and is sent to every event
stream (`jobs.events`) with only the segments the prefix settled: no event
grows with the media's length. The `end` event says how it ended and where the
transcript is (`links`); the transcript itself is fetched, streamed.
Finished jobs are kept `job_ttl_sec`, then forgotten. An optional webhook
gets the final job as JSON, signed with HMAC-SHA256 over the body
(`X-Longscribe-Signature: sha256=<hex>`, key `LONGSCRIBE_WEBHOOK_SECRET`),
fetched through the same guard as media URLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
from pydantic import Field

from orchestrator.assemble.progress import Progress
from orchestrator.errors import LongscribeError
from orchestrator.jobs.links import links
from orchestrator.schemas import TranscribeOutput, TranscribeRequest

log = logging.getLogger("longscribe.jobs")

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[Status, ...] = ("succeeded", "failed", "cancelled")
WEBHOOK_TIMEOUT_S = 10.0
SIGNATURE_HEADER = "X-Longscribe-Signature"
Run = Callable[[TranscribeRequest, Callable[[Progress], None], Path | None], Awaitable[TranscribeOutput]]
PostWebhook = Callable[[str, bytes, dict[str, str]], Awaitable[None]]


class JobRequest(TranscribeRequest):
    """POST /v1/jobs body: the /v1/transcribe body, plus where to say it is done."""

    webhook_url: str | None = Field(None, description="http(s) URL that gets the finished job, signed")


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Job:
    id: str
    request: JobRequest
    upload: Path | None = None  # an uploaded file, deleted when the job ends
    status: Status = "queued"
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    progress: Progress | None = None
    result: TranscribeOutput | None = None
    error: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        self.changed.set()
        self.changed = asyncio.Event()  # waiters of the next change wait on a fresh one

    def on_progress(self, progress: Progress) -> None:
        self.progress = progress
        added = [s.model_dump(mode="json", exclude_none=True) for s in progress.added]
        self.emit({"event": "chunk", "data": {**self.progress_json(), "segments": added}})

    def progress_json(self) -> dict[str, Any]:
        p = self.progress
        elapsed = (self.finished or time.time()) - self.started if self.started else 0.0
        done_s = self.result.input_duration_sec if self.result else (p.audio_done_s if p else 0.0)
        total_s = self.result.input_duration_sec if self.result else (p.duration_s if p else None)
        speed = done_s / elapsed if elapsed > 0 and done_s else None
        eta = (total_s - done_s) / speed if speed and total_s is not None and self.status == "running" else None
        return {
            "audio_done_sec": round(done_s, 3),
            "audio_total_sec": total_s,
            "chunks_done": p.chunks_done if p else 0,
            "chunks_total": p.chunks_total if p else None,
            "speed": round(speed, 2) if speed else None,
            "eta_sec": round(max(0.0, eta), 1) if eta is not None else None,
        }

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "created_at": self.created,
            "progress": self.progress_json(),
        }
        if self.result is not None:
            body["result"] = json.loads(self.result.to_json())
        elif self.progress is not None:
            body["partial"] = json.loads(self.progress.prefix.to_json())
        if self.error is not None:
            body["error"] = self.error
        return body

    def end_json(self) -> dict[str, Any]:
        """The `end` event: how the job ended, its totals, and links; the transcript is at links.transcript."""
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "created_at": self.created,
            "progress": self.progress_json(),
            "links": links(self.id),
        }
        if self.result is not None:
            body["summary"] = {
                "input_duration_sec": self.result.input_duration_sec,
                "processing_duration_sec": self.result.processing_duration_sec,
                "speedup": self.result.speedup,
                "segments": len(self.result.segments),
            }
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass
class JobStore:
    run: Run
    ttl_s: float
    webhook_secret: str
    post_webhook: PostWebhook
    jobs: dict[str, Job] = field(default_factory=dict)

    def start(self, request: JobRequest, upload: Path | None = None) -> Job:
        self.forget_expired()
        job = Job(secrets.token_urlsafe(12), request, upload)
        self.jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job))
        return job

    def get(self, job_id: str) -> Job | None:
        self.forget_expired()
        return self.jobs.get(job_id)

    def cancel(self, job: Job) -> None:
        if job.task is not None and not job.task.done():
            job.task.cancel()

    def forget_expired(self) -> None:
        now = time.time()
        for job_id in [j.id for j in self.jobs.values() if j.finished and now - j.finished > self.ttl_s]:
            del self.jobs[job_id]

    def in_flight(self) -> int:
        return sum(1 for j in self.jobs.values() if j.status not in FINISHED)

    async def _run(self, job: Job) -> None:
        job.status, job.started = "running", time.time()
        job.emit({"event": "status", "data": {"status": "running"}})
        try:
            job.result = await self.run(job.request, job.on_progress, job.upload)
            job.status = "succeeded"
        except asyncio.CancelledError:
            job.status = "cancelled"
        except LongscribeError as exc:
            job.status, job.error = "failed", exc.detail()
        except Exception:
            log.exception("job %s failed", job.id)
            job.status, job.error = "failed", LongscribeError("internal error").detail()
        finally:
            if job.upload is not None:
                job.upload.unlink(missing_ok=True)
        job.finished = time.time()
        job.emit({"event": "end", "data": job.end_json()})
        if job.request.webhook_url:
            await self._notify(job)

    async def _notify(self, job: Job) -> None:
        body = json.dumps(job.to_json()).encode()
        headers = {"Content-Type": "application/json"}
        if self.webhook_secret:
            headers[SIGNATURE_HEADER] = sign(body, self.webhook_secret)
        try:
            await self.post_webhook(str(job.request.webhook_url), body, headers)
        except (LongscribeError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("webhook for job %s failed: %s", job.id, exc)

    async def close(self) -> None:
        tasks = [j.task for j in self.jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
