"""Finished macro chunks -> progress reports, each with what the finished prefix gained."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from longscribe_core.segments import ChunkResult
from orchestrator.assemble import merge, transcript
from orchestrator.plan.macro import MacroChunk
from orchestrator.schemas import Segment


@dataclass(frozen=True)
class ChunkPart:
    """One macro chunk as the pipeline finished it."""

    chunk: MacroChunk
    result: ChunkResult
    decoded_end_s: float  # media time where the decoded audio stopped
    n_samples: int  # how much was decoded; 0 past the real end of an over-reported file
    reached_end: bool  # FFmpeg ran out of media before the requested length


@dataclass(frozen=True)
class Progress:
    """Reported each time a macro chunk finishes."""

    chunks_done: int
    chunks_total: int  # as planned from the probed length (more if the media runs past it)
    audio_done_s: float  # media seconds in finished chunks
    duration_s: float  # the probed length
    # segments the finished prefix (chunks 0..k, in order) gained with this chunk: usually one chunk's
    # worth, more when it closed a gap left by chunks that finished early; never the prefix itself
    added: tuple[Segment, ...] = ()


OnProgress = Callable[[Progress], None]


@dataclass
class Tracker:
    """Finished chunks -> Progress; the finished prefix is merged as it grows, never rebuilt."""

    chunks_total: int
    duration_s: float
    started: float
    with_words: bool
    report: OnProgress
    done: dict[int, ChunkPart] = field(default_factory=dict)
    audio_done_s: float = 0.0
    prefix_chunks: int = 0  # chunks 0..prefix_chunks-1 are merged
    kept_end_s: float | None = None  # where the merged prefix's last segment ends

    async def track(self, work: Coroutine[Any, Any, ChunkPart]) -> ChunkPart:
        part = await work
        self.done[part.chunk.index] = part
        self.audio_done_s += part.chunk.duration_s
        added: list[merge.TimedText] = []
        while self.prefix_chunks in self.done:
            joined = self.done.pop(self.prefix_chunks)  # only chunks ahead of the prefix wait here
            added += self._join(joined)
            self.prefix_chunks += 1
        self.report(
            Progress(
                chunks_done=self.prefix_chunks + len(self.done),
                chunks_total=max(self.chunks_total, self.prefix_chunks + len(self.done)),
                audio_done_s=self.audio_done_s,
                duration_s=self.duration_s,
                added=tuple(transcript.segment(t, self.with_words) for t in added),
            )
        )
        return part

    def _join(self, part: ChunkPart) -> list[merge.TimedText]:
        """The chunk's share, owned as `merge.merge_chunks` will own it (the last planned chunk owns the tail)."""
        first, last = part.chunk.index == 0, part.chunk.index >= self.chunks_total - 1
        own_from = -math.inf if first else part.chunk.start_s
        own_to = math.inf if last else part.chunk.end_s
        end_s = self.duration_s if last else part.chunk.end_s
        timed = merge.stitch(part.chunk, part.result, own_from, own_to, end_s, self.kept_end_s)
        if timed:
            self.kept_end_s = timed[-1].end_s
        return timed
