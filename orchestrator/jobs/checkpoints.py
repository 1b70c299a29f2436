"""Per-chunk checkpoints in Redis: a job that moves to another worker resumes from its finished chunks."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field

import redis.asyncio as redis

from longscribe_core.segments import decode_result, encode_result
from orchestrator.assemble.progress import ChunkPart
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


@dataclass
class RedisCheckpoints:
    """The pipeline's `Checkpoints` for one run of a job; counts what it carried over.

    `write` stores one finished chunk (the store's owned write, retried through an outage)."""

    kept: dict[int, ChunkPart]
    write: Callable[[ChunkPart], Awaitable[None]]
    resumed: set[int] = field(default_factory=set)

    def take(self, chunk: MacroChunk) -> ChunkPart | None:
        part = self.kept.get(chunk.index)
        if part is None or abs(part.chunk.start_s - chunk.start_s) > SAME_CUT_S:
            return None  # planned differently this time (another probe): transcribe it again
        if not part.reached_end and abs(part.chunk.end_s - chunk.end_s) > SAME_CUT_S:
            return None
        self.resumed.add(chunk.index)
        return part

    async def save(self, part: ChunkPart) -> None:
        await self.write(part)
