"""A job's events and result for the HTTP edge: read from Redis on any orchestrator, resumable by id.

`events` yields the job's event log from just after `last_event_id` (all of
it when None), then each new event as it is written, and ends after `end`.
Event ids are the Redis stream's entry ids, so a client that reconnects to
any replica with `Last-Event-ID` continues exactly where it stopped. The
`end` event carries the job's status and links, never the transcript: that
is fetched with `result`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from orchestrator.jobs.records import FINISHED, JobEvent, events_key, stream_entries
from orchestrator.jobs.store import JobStore
from orchestrator.schemas import TranscribeOutput

__all__ = ["JobEvent", "events", "result"]

READ_BLOCK_MS = 5000  # one blocking read; between reads the job and the shutdown flag are looked at
READ_COUNT = 100


async def events(store: JobStore, job_id: str, last_event_id: str | None) -> AsyncIterator[JobEvent]:
    """The job's events after `last_event_id`, until `end` (or until this orchestrator shuts down:
    the client then reconnects elsewhere with Last-Event-ID). JobNotFound for an unknown job."""
    await store.fields(job_id)
    cursor = last_event_id or "0-0"
    while not store.closing.is_set():
        found = await store.client.xread({events_key(job_id): cursor}, count=READ_COUNT, block=READ_BLOCK_MS)
        entries = stream_entries(found)
        for entry_id, fields in entries:
            cursor = entry_id
            event = JobEvent(entry_id, fields["event"], json.loads(fields["data"]))
            yield event
            if event.event == "end":
                return
        if not entries and (await store.fields(job_id))["status"] in FINISHED:
            return  # finished, and its `end` was already sent before last_event_id


async def result(store: JobStore, job_id: str) -> TranscribeOutput | None:
    """The finished transcript, or None while the job has none (not yet, or it failed)."""
    return await store.result(job_id)
