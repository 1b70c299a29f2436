"""Finished macro chunks -> progress reports, each with the transcript of the finished prefix."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from longscribe_core.segments import ChunkResult
from orchestrator.assemble import merge, transcript
from orchestrator.plan.macro import MacroChunk
from orchestrator.schemas import TranscribeOutput


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
    prefix: TranscribeOutput  # the transcript of the finished chunks from the start, in order


OnProgress = Callable[[Progress], None]


@dataclass
class Tracker:
    """Finished chunks -> Progress, with the transcript of the finished prefix."""

    chunks_total: int
    duration_s: float
    started: float
    with_words: bool
    report: OnProgress
    done: dict[int, ChunkPart] = field(default_factory=dict)

    async def track(self, work: Coroutine[Any, Any, ChunkPart]) -> ChunkPart:
        part = await work
        self.done[part.chunk.index] = part
        prefix: list[ChunkPart] = []
        while len(prefix) in self.done:
            prefix.append(self.done[len(prefix)])
        end_s = prefix[-1].chunk.end_s if prefix else 0.0
        timed = merge.merge_chunks([(p.chunk, p.result) for p in prefix], end_s) if prefix else []
        self.report(
            Progress(
                chunks_done=len(self.done),
                chunks_total=max(self.chunks_total, len(self.done)),
                audio_done_s=sum(p.chunk.duration_s for p in self.done.values()),
                duration_s=self.duration_s,
                prefix=transcript.build(timed, end_s, time.monotonic() - self.started, self.with_words),
            )
        )
        return part
