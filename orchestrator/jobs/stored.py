"""A finished job's transcript in Redis, written and read in pieces: never whole in this process.

Written: the verbose JSON answer appended PIECE_BYTES at a time to the job's
`:result:staged` key, which the job's end renames to `:result` in the same
step as it ends the job (`transitions.FINISH`), so no reader sees half a
transcript. Read: GETRANGE, PIECE_BYTES at a time, as bytes (a piece may end
inside a character); `SegmentReader` turns the JSON back into segments one
by one for the formats that need them.
"""

from __future__ import annotations

import codecs
import json
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as redis
from redis.client import NEVER_DECODE

from orchestrator.assemble.final import Assembled
from orchestrator.errors import JobNotFound
from orchestrator.jobs.records import result_key, staged_key
from orchestrator.schemas import Segment, TranscribeOutput

PIECE_BYTES = 64 * 1024
SEGMENTS_OPEN = '{"segments":['  # how `TranscribeOutput.to_json` starts: the segments come first


async def stage(client: redis.Redis, job_id: str, pieces: AsyncIterator[str], ttl_s: float) -> None:
    """Write the answer's pieces to the job's staged key (anew: a retried end starts over); it expires with
    the job's other keys, should this worker die before the end renames it."""
    key = staged_key(job_id)
    await client.delete(key)
    buffer: list[bytes] = []
    held, written = 0, 0
    async for piece in pieces:
        buffer.append(piece.encode())
        held += len(buffer[-1])
        if held >= PIECE_BYTES:
            written += await _append(client, key, b"".join(buffer), ttl_s, first=not written)
            buffer, held = [], 0
    await _append(client, key, b"".join(buffer), ttl_s, first=not written)


async def _append(client: redis.Redis, key: str, data: bytes, ttl_s: float, first: bool) -> int:
    await client.append(key, data)
    if first:
        await client.expire(key, int(ttl_s))
    return len(data)


async def whole(output: TranscribeOutput) -> AsyncIterator[str]:
    """An answer already whole (a run without checkpoints, or a test's) as pieces: `to_json`'s bytes."""
    from orchestrator.formats.writers import json_pieces

    for piece in json_pieces(output, verbose=True):
        yield piece


@dataclass
class Stored:
    """A finished transcript in Redis, `size` bytes of verbose JSON."""

    client: redis.Redis
    job_id: str
    size: int

    async def raw(self) -> AsyncIterator[bytes]:
        """The stored bytes, PIECE_BYTES at a time."""
        key = result_key(self.job_id)
        for start in range(0, self.size, PIECE_BYTES):
            end = min(self.size, start + PIECE_BYTES)
            # as bytes: the client decodes answers, and a piece may end inside a character
            getrange = self.client.execute_command
            data = await getrange("GETRANGE", key, start, end - 1, **{NEVER_DECODE: True})  # type: ignore[no-untyped-call]
            if len(data) != end - start:
                raise JobNotFound(f"the transcript of job {self.job_id!r} expired while it was read")
            yield bytes(data)


async def stored(client: redis.Redis, job_id: str) -> Stored | None:
    """The job's stored transcript, or None while it has none (not yet, or it failed)."""
    size = int(await client.strlen(result_key(job_id)))
    return Stored(client, job_id, size) if size else None


def _opening(head: dict[str, Any], key: str) -> bytes:
    """`head`'s JSON left open for one more field, `key`, whose value follows."""
    return (json.dumps(head)[:-1] + (", " if head else "") + f'"{key}": ').encode()


async def _spliced(head: dict[str, Any], key: str, value: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield _opening(head, key)
    async for piece in value:
        yield piece
    yield b"}"


def with_result(head: dict[str, Any], found: Stored) -> AsyncIterator[bytes]:
    """The job's JSON (`head`, its small fields) with the stored transcript as its "result", in pieces: the
    stored bytes pass through as they are read, never parsed or whole here."""
    return _spliced(head, "result", found.raw())


def with_partial(head: dict[str, Any], partial: Assembled) -> AsyncIterator[bytes]:
    """The running job's JSON (`head`) with the transcript of its finished chunks as its "partial", written
    a chunk's segments at a time as `partial` reads them back."""
    return _spliced(head, "partial", (piece.encode() async for piece in partial.json_pieces()))


def with_result_size(head: dict[str, Any], found: Stored) -> int:
    """The bytes `with_result` yields: its answer's Content-Length, known before the first is read."""
    return len(_opening(head, "result")) + found.size + 1


@dataclass
class SegmentReader:
    """The stored answer's JSON fed in pieces -> its segments one by one, then its other fields.

    `feed` parses what it can; `segments` hands out what is parsed, and at the
    end `rest` the answer's other fields (the text among them)."""

    buffer: str = ""
    state: str = "open"  # open -> segments -> rest -> done
    parsed: deque[Segment] = field(default_factory=deque)
    head: dict[str, Any] | None = None
    _decode: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())
    _json: json.JSONDecoder = field(default_factory=json.JSONDecoder)

    @property
    def done(self) -> bool:
        return self.state == "done"

    def feed(self, data: bytes, final: bool = False) -> None:
        self.buffer += self._decode.decode(data, final)
        pos = 0
        if self.state == "open" and len(self.buffer) >= len(SEGMENTS_OPEN):
            if not self.buffer.startswith(SEGMENTS_OPEN):
                raise ValueError("a stored transcript starts with its segments")
            pos, self.state = len(SEGMENTS_OPEN), "segments"
        while self.state == "segments":
            while pos < len(self.buffer) and self.buffer[pos] in " \n\r\t,":
                pos += 1
            if pos == len(self.buffer):
                break
            if self.buffer[pos] == "]":
                pos, self.state = pos + 1, "rest"
                break
            try:
                found, pos_after = self._json.raw_decode(self.buffer, pos)
            except json.JSONDecodeError:
                if final:
                    raise
                break  # the segment goes on in the next piece
            self.parsed.append(Segment.model_validate(found))
            pos = pos_after
        self.buffer = self.buffer[pos:]
        if final:
            if self.state != "rest":
                raise ValueError("a stored transcript ends after its segments")
            self.head = json.loads("{" + self.buffer.lstrip(" \n\r\t,"))
            self.buffer, self.state = "", "done"

    def segments(self) -> Iterator[Segment]:
        """The segments as they are parsed; its reader feeds it first (`Reading.ready`)."""
        while True:
            if self.parsed:
                yield self.parsed.popleft()
            elif self.state in ("rest", "done"):
                return
            else:
                raise RuntimeError("a segment was asked for before it was read")

    def segments_parsed(self) -> list[Segment]:
        """What is parsed and not yet handed out, handed out now."""
        out = list(self.parsed)
        self.parsed.clear()
        return out

    def rest(self) -> TranscribeOutput:
        """The answer's fields but its segments, once all is read."""
        if self.head is None:
            raise RuntimeError("the answer's fields were asked for before they were read")
        return TranscribeOutput.model_validate({**self.head, "segments": []})
