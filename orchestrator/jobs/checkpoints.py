"""Per-chunk checkpoints in Redis: a job that moves to another worker resumes from its finished chunks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as redis

from longscribe_core.segments import decode_result, encode_result
from orchestrator.assemble.progress import ChunkPart, Progress
from orchestrator.jobs.records import chunks_key, text_hash
from orchestrator.plan.macro import MacroChunk

SAME_CUT_S = 1e-6  # a planned cut within this of a kept chunk's is the same cut


def encode_part(part: ChunkPart) -> str:
    return json.dumps(
        {
            "chunk": asdict(part.chunk),
            "result": json.loads(encode_result(part.result)),
            "decoded_end_s": part.decoded_end_s,
            "n_samples": part.n_samples,
            "reached_end": part.reached_end,
        }
    )


def decode_part(raw: str | bytes) -> ChunkPart:
    payload = json.loads(raw)
    return ChunkPart(
        chunk=MacroChunk(**payload["chunk"]),
        result=decode_result(json.dumps(payload["result"])),
        decoded_end_s=payload["decoded_end_s"],
        n_samples=payload["n_samples"],
        reached_end=payload["reached_end"],
    )


async def load(client: redis.Redis, job_id: str) -> dict[int, ChunkPart]:
    """The job's finished chunks; decoded off the loop (hours of media: megabytes of JSON)."""
    raw = text_hash(await client.hgetall(chunks_key(job_id)))
    return await asyncio.to_thread(decode_all, raw)


def decode_all(raw: dict[str, str]) -> dict[int, ChunkPart]:
    return {int(index): decode_part(value) for index, value in raw.items()}


async def read(client: redis.Redis, job_id: str, index: int) -> ChunkPart | None:
    """One finished chunk, or None if Redis has none for it; decoded off the loop."""
    raw = await client.hget(chunks_key(job_id), str(index))
    return await asyncio.to_thread(decode_part, raw) if raw is not None else None


@dataclass
class RedisCheckpoints:
    """The pipeline's `Checkpoints` for one run of a job; counts what it carried over.

    `write` stores one finished chunk (the store's owned write, retried through an outage) and says whether
    it did; `fetch` reads one back. A carried-over part is handed out once and forgotten here, and a saved
    one is not held: the finished transcript reads them back one at a time. A part whose write failed is
    held (Redis does not have it)."""

    kept: dict[int, ChunkPart]
    write: Callable[[ChunkPart], Awaitable[bool]]
    fetch: Callable[[int], Awaitable[ChunkPart | None]]
    resumed: set[int] = field(default_factory=set)
    resumed_s: float = 0.0  # media seconds in the resumed chunks
    unsaved: dict[int, ChunkPart] = field(default_factory=dict)

    def take(self, chunk: MacroChunk) -> ChunkPart | None:
        part = self.kept.pop(chunk.index, None)
        if part is None or abs(part.chunk.start_s - chunk.start_s) > SAME_CUT_S:
            return None  # planned differently this time (another probe): transcribe it again
        if not part.reached_end and abs(part.chunk.end_s - chunk.end_s) > SAME_CUT_S:
            return None
        self.resumed.add(chunk.index)
        self.resumed_s += part.chunk.duration_s
        return part

    async def save(self, part: ChunkPart) -> None:
        if not await self.write(part):
            self.unsaved[part.chunk.index] = part

    def record(self, progress: Progress) -> dict[str, Any]:
        """The job's progress record for one report, with what this run carried over."""
        return {
            "chunks_done": progress.chunks_done,
            "chunks_total": progress.chunks_total,
            "audio_done_s": progress.audio_done_s,
            "duration_s": progress.duration_s,
            "chunks_resumed": len(self.resumed),
            "resumed_audio_s": self.resumed_s,
        }

    async def read(self, index: int) -> ChunkPart | None:
        return self.unsaved.get(index) or await self.fetch(index)
