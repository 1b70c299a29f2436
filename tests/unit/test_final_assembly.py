"""The finished transcript assembled chunk by chunk from where the chunks are kept: the same answer, byte for
byte, as assembling every result held at once, with one chunk in memory at a time."""

from __future__ import annotations

import random
import time
import weakref

import pytest

from longscribe_core import assembly
from longscribe_core.segments import ChunkResult, Join, Segment, Word
from orchestrator.assemble import final, merge, transcript
from orchestrator.assemble.progress import ChunkPart
from orchestrator.jobs.checkpoints import decode_part, encode_part
from orchestrator.plan.macro import MacroChunk

CHUNK_S = 10.0
# window starts with a capital, full stops and ellipses, names: what the joins reconcile
TEXTS = [" Hello there.", " and then", " Paris is big...", " The end of it.", " so Paris", " I think", " more words"]


def result(rng: random.Random, chunk: MacroChunk, with_words: bool) -> ChunkResult:
    segments, t, window = [], 0.0, 0
    while t < chunk.end_s - chunk.offset_s + 1.0:
        length = rng.uniform(0.3, 4.0)
        text = rng.choice(TEXTS)
        words = ()
        if with_words:
            step = length / len(text.split())
            words = tuple(Word(t + i * step, t + (i + 1) * step, " " + w, 0.9) for i, w in enumerate(text.split()))
        window += rng.random() < 0.5
        join = Join(kind="piece", piece=window, in_speech=rng.random() < 0.5)
        segments.append(Segment(t, t + length, text, avg_logprob=-0.2, words=words, join=join))
        t += length * rng.choice([0.7, 1.0, 1.2]) + rng.choice([0.0, 0.3, 2.5])
    return ChunkResult(segments=tuple(segments), language=rng.choice(["en", "en", "ja"]))


def parts_for(n: int, seed: int, with_words: bool, last_s: float) -> list[ChunkPart]:
    rng = random.Random(seed)
    parts = []
    for i in range(n):
        start = i * CHUNK_S
        end = start + (last_s if i == n - 1 else CHUNK_S)
        chunk = MacroChunk(i, start, end, read_start_s=max(0.0, start - 1.0), in_speech=rng.random() < 0.3)
        parts.append(ChunkPart(chunk, result(rng, chunk, with_words), end, int(end * 16_000), i == n - 1))
    return parts


def held_at_once(parts: list[ChunkPart]) -> tuple[final.Read, list[int]]:
    """A reader that decodes a fresh copy each time (as from Redis), and notes how many copies were alive."""
    alive: weakref.WeakSet[ChunkResult] = weakref.WeakSet()
    counts: list[int] = []

    async def read(index: int) -> ChunkPart | None:
        part = decode_part(encode_part(parts[index]))
        counts.append(len(alive))
        alive.add(part.result)
        return part

    return read, counts


@pytest.mark.parametrize("with_words", [False, True])
@pytest.mark.parametrize("seed", range(6))
async def test_the_answer_is_byte_for_byte_the_one_from_every_result_at_once(seed: int, with_words: bool) -> None:
    parts = parts_for(12, seed, with_words, last_s=[CHUNK_S, 0.3, 2.5][seed % 3])  # a tiny last chunk clips
    duration_s = parts[-1].decoded_end_s
    read, counts = held_at_once(parts)
    assembled = await final.assemble(read, len(parts), duration_s, with_words, time.monotonic())
    timed = assembly.transcript([(merge.span(p.chunk), p.result) for p in parts], duration_s)  # all at once
    expected = transcript.build(timed, duration_s, assembled.processing_duration_sec, with_words)
    assert assembled.segment_count == len(expected.segments)
    assert assembled.language_code == expected.language_code
    written = "".join([piece async for piece in assembled.json_pieces()])
    assert written == expected.to_json()
    assert (await assembled.output()) == expected
    assert max(counts) <= 1, "one chunk's result in memory at a time"


async def test_a_run_without_a_job_holds_its_parts_and_reads_them_back() -> None:
    held = final.HeldParts()
    part = parts_for(1, 0, False, CHUNK_S)[0]
    assert held.take(part.chunk) is None, "nothing carried over"
    await held.save(part)
    assert await held.read(0) == part and await held.read(1) is None


async def test_a_chunk_gone_from_where_it_was_kept_stops_the_writing_rather_than_leaving_a_hole() -> None:
    parts = parts_for(3, 1, False, CHUNK_S)
    read, _ = held_at_once(parts)
    assembled = await final.assemble(read, 3, parts[-1].decoded_end_s, False, time.monotonic())

    async def lost(index: int) -> ChunkPart | None:
        return None if index == 1 else await read(index)

    with pytest.raises(final.PartMissing):
        [piece async for piece in final.Assembled(**{**vars(assembled), "read": lost}).json_pieces()]
