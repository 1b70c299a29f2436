"""A job's events for the HTTP edge: read from Redis on any orchestrator, resumable by id.

`events` yields the job's event log from just after `last_event_id` (all of
it when None), then each new event as it is written, and ends after `end`.
Event ids are the Redis stream's entry ids, so a client that reconnects to
any replica with `Last-Event-ID` continues exactly where it stopped. The
`end` event carries the job's status and links, never the transcript: that
is read from `stored`.

What is already written is read through the pool, a page at a time and
without blocking; what comes next arrives from the process's `EventHub`, so
a follower holds no Redis connection while it waits (see `event_hub`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator

from orchestrator.errors import JobNotFound
from orchestrator.jobs.event_hub import EventHub, Follower, stream_id
from orchestrator.jobs.records import FINISHED, Entry, JobEvent, events_key, text_hash
from orchestrator.jobs.store import JobStore

__all__ = ["JobEvent", "events"]

PAGE = 100  # entries per catch-up read
IDLE_CHECK_S = 5.0  # a follower with nothing new this long looks whether its job finished or vanished


async def events(
    store: JobStore, hub: EventHub, job_id: str, last_event_id: str | None
) -> AsyncGenerator[JobEvent, None]:
    """The job's events after `last_event_id`, until `end` (or until this orchestrator shuts down:
    the client then reconnects elsewhere with Last-Event-ID). JobNotFound for an unknown job."""
    async with hub.gate:
        await store.fields(job_id)
    key = events_key(job_id)
    cursor = last_event_id or "0-0"
    while not store.closing.is_set():
        async with hub.gate:
            newest = await store.client.xrevrange(key, "+", "-", count=1)
        follower = hub.follow(job_id, str(newest[0][0]) if newest else "0-0")
        try:
            async for event in _catch_up(store, hub, key, cursor, follower.start):
                cursor = event.id
                yield event
                if event.event == "end":
                    return
            if not await _live(store, hub, job_id):
                async for event in _catch_up(store, hub, key, cursor, "+"):
                    yield event  # the end, if it came after `cursor`
                    if event.event == "end":
                        return
                return  # finished with its end sent before `cursor`, or its data is gone
            async for event in _from_hub(store, hub, job_id, follower, cursor):
                cursor = event.id
                yield event
                if event.event == "end":
                    return
            if follower.closed:
                return
            # it fell behind (see event_hub): join again, reading the gap through the pool
        finally:
            hub.leave(follower)


async def _from_hub(
    store: JobStore, hub: EventHub, job_id: str, follower: Follower, cursor: str
) -> AsyncIterator[JobEvent]:
    """What the hub hands this follower, until it ends, falls behind, or the hub closes."""
    while not follower.closed and not follower.lagging:
        if not follower.pending:
            try:
                await asyncio.wait_for(follower.ready.wait(), IDLE_CHECK_S)
            except TimeoutError:
                if not await _live(store, hub, job_id):
                    # finished or gone: whatever is left (its end) is already in the stream; `events`
                    # reads it through the pool, as for a follower that fell behind
                    follower.lagging = True
                continue
        for event in follower.take():
            if stream_id(event.id) > stream_id(cursor):  # joined behind its own position: skip what it sent
                cursor = event.id
                yield event


async def _catch_up(store: JobStore, hub: EventHub, key: str, after: str, upto: str) -> AsyncIterator[JobEvent]:
    """The stream's entries after `after`, up to `upto` (inclusive; "+" for all), a page at a time."""
    if upto != "+" and stream_id(upto) <= stream_id(after):
        return
    while True:
        async with hub.gate:
            found = await store.client.xrange(key, f"({after}", upto, count=PAGE)
        page: list[Entry] = [(str(entry_id), text_hash(fields)) for entry_id, fields in found or []]
        for after, fields in page:
            yield JobEvent(after, fields["event"], json.loads(fields["data"]))
        if len(page) < PAGE:
            return


async def _live(store: JobStore, hub: EventHub, job_id: str) -> bool:
    """Whether the job may still write events: it exists and has not finished."""
    try:
        async with hub.gate:
            return (await store.fields(job_id))["status"] not in FINISHED
    except JobNotFound:
        return False  # its data is gone (expired, or Redis lost it): nothing more will come
