"""Finished macro chunks -> progress reports, each with the segments it settles in the finished prefix."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from longscribe_core.segments import ChunkResult
from orchestrator.assemble.prefix import Prefix
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


NO_RESULT = ChunkResult(segments=(), language=None)


def bare(part: ChunkPart) -> ChunkPart:
    """The part without its segments: where it lies and what was decoded, all the end of a run needs of it
    once its result is kept elsewhere (checkpoints, or `final.HeldParts`)."""
    return replace(part, result=NO_RESULT)


@dataclass(frozen=True)
class Progress:
    """Reported each time a macro chunk finishes."""

    chunks_done: int
    chunks_total: int  # as planned from the probed length (more if the media runs past it)
    audio_done_s: float  # media seconds in finished chunks
    duration_s: float  # the probed length
    # the prefix's segments settled by this report (a chunk settles once the next one is done), in order:
    # a bounded delta for event streams; no report carries the prefix itself (nor does the tracker hold it)
    added: tuple[Segment, ...] = ()


OnProgress = Callable[[Progress], None]


@dataclass
class Tracker:
    """Finished chunks -> Progress, with the segments each one settles in the finished prefix.

    It holds only the chunks not yet merged into the prefix (those that finished
    ahead of an earlier one, and the prefix's last): flat in the media's length.
    Each report merges and builds only what the newly settled chunks add."""

    chunks_total: int
    duration_s: float
    with_words: bool
    report: OnProgress
    waiting: dict[int, ChunkPart] = field(default_factory=dict)  # finished, not yet merged into the prefix
    prefix: Prefix = field(init=False)
    chunks_done: int = 0
    audio_done_s: float = 0.0  # media seconds in finished chunks

    def __post_init__(self) -> None:
        self.prefix = Prefix(self.with_words)

    async def track(self, work: Coroutine[Any, Any, ChunkPart]) -> ChunkPart:
        part = await work
        self.waiting[part.chunk.index] = part
        self.chunks_done += 1
        self.audio_done_s += part.chunk.duration_s
        # the previous last chunk of the prefix is settled once the one after it is done
        added: list[Segment] = []
        while self.prefix.chunks + 1 in self.waiting and self.prefix.chunks in self.waiting:
            settled = self.waiting.pop(self.prefix.chunks)
            added += self.prefix.keep(settled.chunk, settled.result)
        self.report(
            Progress(
                chunks_done=self.chunks_done,
                chunks_total=max(self.chunks_total, self.chunks_done),
                audio_done_s=self.audio_done_s,
                duration_s=self.duration_s,
                added=tuple(added),
            )
        )
        return part
