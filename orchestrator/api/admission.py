"""Bounded concurrency with backpressure: a few requests run, a few wait, the rest get 429.

A request holds its slot for minutes; an unbounded queue would only turn
overload into timeouts. Past the queue the caller is told at once, with
Retry-After, and can go to another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from orchestrator.errors import Overloaded


@dataclass
class Admission:
    running_limit: int
    queue_limit: int
    retry_after_s: int
    waiting: int = 0
    slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.running_limit)

    def check_room(self) -> None:
        """Raise Overloaded now if a new request would be refused (jobs ask before they are accepted)."""
        if self.slots.locked() and self.waiting >= self.queue_limit:
            raise Overloaded(
                f"the service is running {self.running_limit} requests with {self.waiting} waiting; "
                f"retry in {self.retry_after_s} s",
                retry_after_s=self.retry_after_s,
            )

    @contextlib.asynccontextmanager
    async def slot(self, admitted: bool = False) -> AsyncIterator[None]:
        """Wait for a slot; `admitted` work (a job the fleet's queue accepted) waits without a room check."""
        if not admitted:
            self.check_room()
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            yield
        finally:
            self.slots.release()
