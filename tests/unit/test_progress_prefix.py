"""Progress reports settle the prefix by appending: the same segments as a full merge, linear work, flat memory."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from longscribe_core.segments import ChunkResult, Segment, Word
from orchestrator.assemble import merge, transcript
from orchestrator.assemble.progress import ChunkPart, Progress, Tracker
from orchestrator.plan.macro import MacroChunk

CHUNK_S = 10.0


def chunk_result(rng: random.Random, chunk: MacroChunk, with_words: bool) -> ChunkResult:
    """Segments relative to the read start (1 s before the chunk): overlaps, blanks, words, two languages."""
    segments, t = [], 0.0
    while t < chunk.end_s - chunk.offset_s + 1.0:
        length = rng.uniform(0.3, 4.0)
        text = rng.choice(["", " hello there", " again", " the end of it", " more words here"])
        words = ()
        if with_words and text.strip():
            parts = text.split()
            step = length / len(parts)
            words = tuple(Word(t + i * step, t + (i + 1) * step, " " + w, 0.9) for i, w in enumerate(parts))
        segments.append(Segment(t, t + length, text, avg_logprob=-0.2, words=words))
        t += length * rng.choice([0.7, 1.0, 1.2])  # some overlap the next, some leave a gap
    return ChunkResult(segments=tuple(segments), language=rng.choice(["en", "en", "de"]))


def parts_for(n: int, seed: int, with_words: bool, last_s: float = CHUNK_S) -> list[ChunkPart]:
    rng = random.Random(seed)
    parts = []
    for i in range(n):
        start = i * CHUNK_S
        end = start + (last_s if i == n - 1 else CHUNK_S)
        chunk = MacroChunk(i, start, end, read_start_s=max(0.0, start - 1.0))
        parts.append(ChunkPart(chunk, chunk_result(rng, chunk, with_words), end, int(end * 16_000), i == n - 1))
    return parts


async def track_in(order: list[ChunkPart], with_words: bool) -> tuple[Tracker, list[Progress], list[int]]:
    """Reports, and how many finished chunks the tracker held after each."""
    reports: list[Progress] = []
    tracker = Tracker(len(order), len(order) * CHUNK_S, with_words, reports.append)
    held: list[int] = []

    async def finished(part: ChunkPart) -> ChunkPart:
        return part

    for part in order:
        await tracker.track(finished(part))
        held.append(len(tracker.waiting))
    return tracker, reports, held


def whole(parts: list[ChunkPart], with_words: bool) -> list[dict[str, Any]]:
    """The segments of every chunk merged at once, unclipped, as the API writes them."""
    timed = merge.merge_chunks([(p.chunk, p.result) for p in parts], math.inf)
    return [s.model_dump() for s in transcript.build(timed, 0.0, 0.0, with_words).segments]


@pytest.mark.parametrize("with_words", [False, True])
@pytest.mark.parametrize("seed", range(6))
async def test_reports_add_each_settled_segment_once_in_order_in_any_completion_order(
    seed: int, with_words: bool
) -> None:
    """Events carry `added`: joined, the deltas are the transcript's segments up to the last chunk, each once."""
    parts = parts_for(14, seed, with_words)
    order = parts[:]
    random.Random(seed).shuffle(order)
    _, reports, _ = await track_in(order, with_words)
    joined = [s.model_dump() for report in reports for s in report.added]
    assert [r.chunks_done for r in reports] == list(range(1, 15))
    reference = whole(parts, with_words)
    assert joined and joined == reference[: len(joined)]
    assert len(joined) >= len(whole(parts[:-2], with_words)) - 1, "every chunk but the last settles"
    assert max(len(report.added) for report in reports) < len(reference), "no report carries the whole prefix"


async def test_the_tracker_holds_only_the_chunks_not_yet_merged() -> None:
    parts = parts_for(40, 3, True)
    _, _, held = await track_in(parts, True)
    assert max(held) == 1, "in order: only the prefix's last chunk waits for the next"
    _, _, held = await track_in(parts[::-1], True)
    assert held[-1] == 1, "out of order they wait, and go once merged"


@pytest.mark.parametrize("shuffled", [False, True])
async def test_the_work_grows_linearly_with_the_media(shuffled: bool) -> None:
    work = {}
    for n in (40, 160):
        parts = parts_for(n, 7, False)
        if shuffled:
            random.Random(n).shuffle(parts)
        tracker, _, _ = await track_in(parts, False)
        total = sum(len(p.result.segments) for p in parts)
        work[n] = tracker.prefix.segments_done / total
    # each segment is merged and built a bounded number of times, however many chunks came before it
    assert max(work.values()) <= 4.0
    assert work[160] <= work[40] * 1.25
