"""Progress prefixes grow by appending: the same transcript as a full rebuild, for linear work."""

from __future__ import annotations

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


async def track_in(order: list[ChunkPart], with_words: bool) -> tuple[Tracker, list[Progress]]:
    reports: list[Progress] = []
    tracker = Tracker(len(order), len(order) * CHUNK_S, 0.0, with_words, reports.append)

    async def finished(part: ChunkPart) -> ChunkPart:
        return part

    for part in order:
        await tracker.track(finished(part))
    return tracker, reports


def full_rebuild(done: list[ChunkPart], report: Progress, with_words: bool) -> dict[str, Any]:
    prefix: list[ChunkPart] = []
    by_index = {p.chunk.index: p for p in done}
    while len(prefix) in by_index:
        prefix.append(by_index[len(prefix)])
    end_s = prefix[-1].chunk.end_s if prefix else 0.0
    timed = merge.merge_chunks([(p.chunk, p.result) for p in prefix], end_s) if prefix else []
    elapsed = report.prefix.processing_duration_sec
    return transcript.build(timed, end_s, elapsed, with_words).model_dump()


@pytest.mark.parametrize("with_words", [False, True])
@pytest.mark.parametrize("seed", range(6))
async def test_each_reported_prefix_equals_a_full_rebuild_in_any_completion_order(seed: int, with_words: bool) -> None:
    parts = parts_for(14, seed, with_words, last_s=[CHUNK_S, 0.3, 2.5][seed % 3])  # a tiny last chunk clips
    order = parts[:]
    random.Random(seed).shuffle(order)
    _, reports = await track_in(order, with_words)
    for n, report in enumerate(reports, start=1):
        assert report.prefix.model_dump() == full_rebuild(order[:n], report, with_words)
        assert report.chunks_done == n
    assert reports[-1].prefix.segments, "the whole transcript at the end"


async def test_a_last_chunk_shorter_than_a_kept_segment_clips_it_as_the_rebuild_does() -> None:
    long_tail = ChunkResult(segments=(Segment(1.0, 8.9, "one"), Segment(9.0, 10.8, " runs past")), language="en")
    first = ChunkPart(MacroChunk(0, 0.0, 10.0, read_start_s=0.0), long_tail, 10.0, 160_000, False)
    tiny = ChunkPart(MacroChunk(1, 10.0, 10.3), ChunkResult(segments=(), language=None), 10.3, 4_800, True)
    for order in ([first, tiny], [tiny, first]):
        _, reports = await track_in(order, False)
        assert reports[-1].prefix.model_dump() == full_rebuild(order, reports[-1], False)
        assert reports[-1].prefix.segments[-1].end_time_sec == pytest.approx(10.3)


@pytest.mark.parametrize("shuffled", [False, True])
async def test_the_work_grows_linearly_with_the_media(shuffled: bool) -> None:
    work = {}
    for n in (40, 160):
        parts = parts_for(n, 7, False)
        if shuffled:
            random.Random(n).shuffle(parts)
        tracker, _ = await track_in(parts, False)
        total = sum(len(p.result.segments) for p in parts)
        work[n] = tracker.prefix.segments_done / total
    # each segment is merged and built a bounded number of times, however many chunks came before it
    assert max(work.values()) <= 4.0
    assert work[160] <= work[40] * 1.25


@pytest.mark.parametrize("seed", range(4))
async def test_reports_add_each_settled_segment_once_in_order_for_event_streams(seed: int) -> None:
    """Events carry `added`, not the prefix: joined, the deltas are the prefix's settled segments, each once."""
    parts = parts_for(14, seed, False)
    order = parts[:]
    random.Random(seed).shuffle(order)
    _, reports = await track_in(order, False)
    joined = [s for report in reports for s in report.added]
    final = reports[-1].prefix.segments
    assert joined and [s.model_dump() for s in joined] == [s.model_dump() for s in final[: len(joined)]]
    assert max(len(report.added) for report in reports) < len(final), "no report carries the whole prefix"
