"""One reader per process for every followed job's event stream, fanned out to its followers.

A follower that blocked in `XREAD` on the shared pool held a pooled
connection for as long as it followed: 150 followers took 100 connections,
then every other Redis call of the process (a new job, a checkpoint) failed.
Here one dedicated connection (not the pool's; named `CLIENT_NAME` in CLIENT
LIST) blocks in one `XREAD` over every followed job's stream, with one cursor
per job however many follow it, and hands each entry to that job's followers.

A follower joins with `follow`, which tells it the hub's cursor for the job
at that moment: it gets every entry after that cursor, and reads what lies
between its own position and that cursor itself (a bounded, non-blocking
XRANGE through the pool; `events.events` does this). A new job's stream
wakes the blocked read at once with CLIENT UNBLOCK of the reader's
connection; `BLOCK_MS` bounds the wait should that race the read.

A slow follower never holds up the others and never grows without bound:
past `QUEUE_LIMIT` waiting entries it is dropped back to catch-up reading
(its queue is cleared and marked `lagging`; it rereads from its last sent
id through the pool, then joins again). The stream is the log, so nothing is
lost, and the HTTP connection stays open.

When the reader's connection fails (a Redis restart, CLIENT KILL), it
reconnects with backoff and reads again from the cursors it had: a cursor
moves only as its entries are handed out, so no follower misses or repeats one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from orchestrator.common.tasks import cancel_all
from orchestrator.jobs.records import JobEvent, events_key

log = logging.getLogger(__name__)

CLIENT_NAME = "longscribe-event-hub"  # the reader's connection, as CLIENT LIST shows it
BLOCK_MS = 2000  # one blocking read at most: the bound on a missed wake-up (CLIENT UNBLOCK normally wakes it)
READ_COUNT = 100  # entries per stream per read
QUEUE_LIMIT = 1000  # entries waiting for one follower before it is dropped back to catch-up reading
BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)  # between reconnects of the reader, the last one repeating
REPLY_TIMEOUT_S = 30.0  # one reply; well over BLOCK_MS
POOL_READERS = 8  # followers reading through the pool at once (catch-up, checks): a burst of joiners
# waits here rather than taking the whole pool from the jobs' own writes


def stream_id(entry_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair; `123` (an id without its sequence) is `123-0`."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(eq=False)
class Follower:
    """One follower's mailbox: entries after `start` (the hub's cursor when it joined), in order."""

    job_id: str
    start: str
    pending: deque[JobEvent] = field(default_factory=deque)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    lagging: bool = False  # it fell QUEUE_LIMIT behind: entries are no longer kept for it, it rereads
    closed: bool = False  # the hub stopped (shutdown): the follower ends, its client reconnects elsewhere

    def take(self) -> list[JobEvent]:
        """What waits, emptied; `ready` clears so the next wait blocks until more comes."""
        taken = list(self.pending)
        self.pending.clear()
        self.ready.clear()
        return taken


@dataclass(eq=False)
class _Channel:
    cursor: str  # the last entry handed to this job's followers (or the point they joined at)
    followers: set[Follower] = field(default_factory=set)


class EventHub:
    """The process's one reader of job event streams. `start` it in the loop, `close` it at the end."""

    def __init__(self, reader: redis.Redis, waker: redis.Redis, closing: asyncio.Event) -> None:
        """`reader`: a client of its own (see `connect`); `waker`: the pooled client, for CLIENT UNBLOCK;
        `closing`: set on shutdown, when every follower ends."""
        self._reader = reader
        self._waker = waker
        self._closing = closing
        self._channels: dict[str, _Channel] = {}
        self._changed = asyncio.Event()
        self._reader_id: int | None = None  # the reader's connection id, fresh after every reconnect
        self._blocked = False
        self._tasks: list[asyncio.Task[None]] = []
        self._waking: set[asyncio.Task[None]] = set()
        self.reconnects = 0  # reads that failed (the connection is then made again)
        self.dropped_back = 0  # followers that fell QUEUE_LIMIT behind and reread through the pool
        self.gate = asyncio.Semaphore(POOL_READERS)  # held by a follower's each read through the pool

    @classmethod
    def connect(cls, url: str, waker: redis.Redis, closing: asyncio.Event) -> EventHub:
        """A hub with its own single connection to the Redis at `url` (made on first use)."""
        hub: EventHub

        async def on_connect(conn: Any) -> None:
            await conn.on_connect()
            await conn.send_command("CLIENT", "ID")
            hub._reader_id = int(await conn.read_response())

        reader = redis.Redis.from_url(
            url,
            decode_responses=True,
            single_connection_client=True,
            client_name=CLIENT_NAME,
            socket_timeout=REPLY_TIMEOUT_S,
            redis_connect_func=on_connect,
        )
        hub = cls(reader, waker, closing)
        return hub

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._end_on_close())]

    async def close(self) -> None:
        """Stop reading, end every follower, and close the reader's connection."""
        await cancel_all([*self._tasks, *self._waking])
        self._end_all()
        await self._reader.aclose()

    @property
    def followed(self) -> int:
        """Jobs followed now (each one cursor in the shared read)."""
        return len(self._channels)

    @property
    def blocked(self) -> bool:
        """Whether the reader waits in its blocking read now: what a wake-up must cut short."""
        return self._blocked

    def follow(self, job_id: str, known_last: str) -> Follower:
        """Join `job_id`'s followers. `known_last` is the stream's last id as the caller just read it
        ("0-0" when empty); a job nobody follows yet is read from there on. The follower gets every
        entry after its `start`; what lies before, the caller reads itself."""
        channel = self._channels.get(job_id)
        fresh = channel is None
        if channel is None:
            channel = self._channels[job_id] = _Channel(known_last)
        follower = Follower(job_id, channel.cursor)
        if self._closing.is_set():
            follower.closed = True
        channel.followers.add(follower)
        if fresh:  # woken in the background: no await here, so the caller's cleanup covers the follower at once
            task = asyncio.create_task(self._wake())
            self._waking.add(task)
            task.add_done_callback(self._waking.discard)
        return follower

    def leave(self, follower: Follower) -> None:
        """The follower is done; a job with no followers left drops out of the next read."""
        channel = self._channels.get(follower.job_id)
        if channel is None:
            return
        channel.followers.discard(follower)
        if not channel.followers:
            del self._channels[follower.job_id]

    async def _wake(self) -> None:
        """The set of streams changed: the next read must include it, now rather than after BLOCK_MS."""
        self._changed.set()
        if self._blocked and self._reader_id is not None:
            try:
                await self._waker.client_unblock(self._reader_id)
            except (RedisError, OSError):
                pass  # the read ends within BLOCK_MS anyway

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._channels:
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            streams: dict[Any, Any] = {events_key(job_id): channel.cursor for job_id, channel in self._channels.items()}
            jobs = {events_key(job_id): job_id for job_id in self._channels}
            try:
                self._blocked = True
                found = await self._reader.xread(streams, count=READ_COUNT, block=BLOCK_MS)
            except (RedisError, OSError) as exc:  # any failure: a dead reader would leave every follower waiting
                self._blocked = False
                self.reconnects += 1
                delay = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
                log.warning("event hub: Redis read failed (%s); reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            finally:
                self._blocked = False
            failures = 0
            self._deliver(found, jobs)

    def _deliver(self, found: Any, jobs: dict[str, str]) -> None:
        """Hand each entry to its job's followers; no await here, so a joining follower sees a cursor
        and a mailbox that agree."""
        for key, batch in found or []:
            channel = self._channels.get(jobs[str(key)])
            if channel is None:
                continue  # everyone left while the read was out
            for entry_id, fields in batch:
                if stream_id(str(entry_id)) <= stream_id(channel.cursor):
                    continue  # a read sent before this job's followers rejoined: they have it
                event = JobEvent(str(entry_id), fields["event"], json.loads(fields["data"]))
                channel.cursor = event.id
                for follower in channel.followers:
                    self._post(follower, event)

    def _post(self, follower: Follower, event: JobEvent) -> None:
        if follower.lagging:
            return
        if len(follower.pending) >= QUEUE_LIMIT:
            follower.pending.clear()
            follower.lagging = True  # it rereads from its last sent id; see the module's doc
            self.dropped_back += 1
        else:
            follower.pending.append(event)
        follower.ready.set()

    async def _end_on_close(self) -> None:
        await self._closing.wait()
        self._end_all()

    def _end_all(self) -> None:
        for channel in self._channels.values():
            for follower in channel.followers:
                follower.closed = True
                follower.ready.set()
