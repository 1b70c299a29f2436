"""Finished macro chunks -> progress reports, each with the transcript of the finished prefix."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from longscribe_core.segments import ChunkResult
from orchestrator.assemble import transcript
from orchestrator.assemble.prefix import Prefix
from orchestrator.plan.macro import MacroChunk
from orchestrator.schemas import Segment, TranscribeOutput


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
    # the prefix's segments settled by this report (a chunk settles once the next one is done), in order:
    # a bounded delta for event streams, which never carry the prefix itself
    added: tuple[Segment, ...] = ()


OnProgress = Callable[[Progress], None]


@dataclass
class Tracker:
    """Finished chunks -> Progress, with the transcript of the finished prefix.

    The prefix grows by appending (assemble.prefix): each report merges and builds
    only what the newly finished chunks add, however long the media."""

    chunks_total: int
    duration_s: float
    started: float
    with_words: bool
    report: OnProgress
    done: dict[int, ChunkPart] = field(default_factory=dict)
    prefix: Prefix = field(init=False)
    audio_done_s: float = 0.0  # media seconds in finished chunks

    def __post_init__(self) -> None:
        self.prefix = Prefix(self.with_words)

    async def track(self, work: Coroutine[Any, Any, ChunkPart]) -> ChunkPart:
        part = await work
        self.done[part.chunk.index] = part
        self.audio_done_s += part.chunk.duration_s
        # the previous last chunk of the prefix is settled once the one after it is done
        built_before = len(self.prefix.built)
        while len(self.prefix.chunks) + 1 in self.done and len(self.prefix.chunks) in self.done:
            settled = self.done[len(self.prefix.chunks)]
            self.prefix.keep(settled.chunk, settled.result)
        elapsed_s = time.monotonic() - self.started
        last = self.done.get(len(self.prefix.chunks))
        self.report(
            Progress(
                chunks_done=len(self.done),
                chunks_total=max(self.chunks_total, len(self.done)),
                audio_done_s=self.audio_done_s,
                duration_s=self.duration_s,
                prefix=self.prefix.output(last.chunk, last.result, elapsed_s)
                if last
                else transcript.build([], 0.0, elapsed_s, self.with_words),
                added=tuple(self.prefix.built[built_before:]),
            )
        )
        return part
