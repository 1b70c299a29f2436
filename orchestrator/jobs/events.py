"""A job's events and result as the API serves them, whatever keeps them.

`events` replays a job's event log after `last_event_id` and then follows it
until the `end` event, so a client that lost its connection resumes without
a gap or a repeat. Event ids increase along the log (here the index in the
job's in-memory log; a shared store keeps its own increasing ids). Events
carry references, not payloads: `chunk` holds progress and the segments the
finished prefix gained, `end` holds the status and links; the transcript is
`result`, served in pieces by the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import InvalidRequest, JobNotFound
from orchestrator.jobs.store import FINISHED, Job, JobStore
from orchestrator.schemas import TranscribeOutput


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of a job."""

    id: str  # increasing along the job's log; a client resumes with it as Last-Event-ID
    event: str  # status | chunk | end
    data: dict[str, Any]  # JSON-able, bounded: never the transcript


def first_after(last_event_id: str | None) -> int:
    """Where in the log a client resumes, from its Last-Event-ID (None: from the start)."""
    if last_event_id is None or not last_event_id.strip():
        return 0
    try:
        index = int(last_event_id)
    except ValueError:
        raise InvalidRequest(f"Last-Event-ID {last_event_id!r} is not an event id of this service") from None
    if index < 0:
        raise InvalidRequest(f"Last-Event-ID {last_event_id!r} is not an event id of this service")
    return index + 1


def _job(store: JobStore, job_id: str) -> Job:
    job = store.get(job_id)
    if job is None:
        raise JobNotFound(f"no job {job_id!r}")
    return job


async def events(store: JobStore, job_id: str, last_event_id: str | None = None) -> AsyncIterator[JobEvent]:
    """Every event after `last_event_id` (all, when None), then each new one, until the job's end."""
    job = _job(store, job_id)
    sent = first_after(last_event_id)
    while True:
        waiter = job.changed  # taken before reading, so a change made meanwhile is not missed
        while sent < len(job.events):
            raw = job.events[sent]
            yield JobEvent(str(sent), raw["event"], raw["data"])
            sent += 1
            if raw["event"] == "end":
                return
        if job.status in FINISHED and sent >= len(job.events):
            return
        await waiter.wait()


async def result(store: JobStore, job_id: str) -> TranscribeOutput | None:
    """The finished transcript; None while the job has none (queued, running, failed, cancelled)."""
    return _job(store, job_id).result
