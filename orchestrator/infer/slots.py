"""How many macro chunks are in Triton at once: the orchestrator's share of the capacity model."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from orchestrator.infer.pool import TritonPool


@dataclass
class ChunkSlots:
    """At most `per_endpoint` macro chunks in flight per Triton endpoint, however many there are now.

    `per_endpoint` is settings.chunks_in_flight_per_endpoint: this orchestrator's share of
    chunks_per_triton, which is also each endpoint's micro_chunker instance count."""

    per_endpoint: int
    pool: TritonPool
    in_use: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        async with self.changed:
            await self.changed.wait_for(lambda: self.in_use < self.per_endpoint * max(1, len(self.pool.endpoints)))
            self.in_use += 1
        try:
            yield
        finally:
            async with self.changed:
                self.in_use -= 1
                self.changed.notify_all()
