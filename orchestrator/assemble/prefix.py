"""The transcript of the finished prefix, kept by appending: each chunk is merged and built once. Pure.

A full rebuild at every finished chunk costs the whole transcript each time,
quadratic in the media's length (about 7 s of blocked event loop on 12 hours).
Here a chunk is merged for good once the chunk after it has finished too (only
then is its end settled: the last chunk keeps what it heard past its nominal
end). The last one is merged afresh at each report, onto the last kept segment.
The answer equals `merge.merge_chunks` + `transcript.build` over the prefix.
Case and punctuation at the joins are reconciled only in the finished
answer (`merge.final_segments`): that pass looks at the whole transcript
(which words it capitalises in mid-sentence), so it cannot grow by appending.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from longscribe_core.segments import ChunkResult
from orchestrator.assemble import merge, transcript
from orchestrator.assemble.merge import TimedText
from orchestrator.languages import language_name
from orchestrator.plan.macro import MacroChunk
from orchestrator.schemas import Segment, TranscribeOutput


@dataclass
class Prefix:
    """Chunks 0, 1, 2, ... appended in order; `output` answers for all of them so far."""

    with_words: bool
    chunks: list[tuple[MacroChunk, ChunkResult]] = field(default_factory=list)  # kept, in order
    kept: list[TimedText] = field(default_factory=list)  # merged, unclipped (the media's end is not known)
    starts: list[int] = field(default_factory=list)  # len(kept) before each kept chunk
    built: list[Segment] = field(default_factory=list)  # the API's form of each kept segment
    spoken: dict[str, float] = field(default_factory=dict)  # seconds per language over `kept`
    segments_done: int = 0  # segments merged or built so far: the work, linear in the media

    def keep(self, chunk: MacroChunk, result: ChunkResult) -> None:
        """Merge a chunk for good: the one after it has finished, so its end is settled."""
        self.starts.append(len(self.kept))
        self.chunks.append((chunk, result))
        merge.merge_chunk(self.kept, chunk, result, first=len(self.chunks) == 1, last=False, duration_s=math.inf)
        new = self.kept[self.starts[-1] :]
        self.built += self._build(new)
        _add_spoken(self.spoken, new)
        self.segments_done += len(result.segments)

    def output(self, last: MacroChunk, result: ChunkResult, elapsed_s: float) -> TranscribeOutput:
        """The prefix's transcript with `last` as its final chunk, as a full rebuild would give it."""
        end_s = last.end_s
        reuse = len(self.kept)  # kept segments that stand as they are
        while reuse and self.kept[reuse - 1].end_s > end_s:  # the end clips a kept segment (a tiny last chunk)
            reuse -= 1
        spoken, again = self.spoken, self.chunks[len(self.chunks) :]
        if reuse < len(self.kept):  # merge again, clipped, from the chunk that made the first clipped segment
            n = bisect.bisect_right(self.starts, reuse) - 1
            reuse, again = self.starts[n], self.chunks[n:]
            spoken = {}
            _add_spoken(spoken, self.kept[:reuse])
        seed = self.kept[reuse - 1 : reuse]  # merge_chunk reads only the last segment before
        tail = list(seed)
        first = len(self.chunks) - len(again)
        for i, (chunk, chunk_result) in enumerate(again, start=first):
            merge.merge_chunk(tail, chunk, chunk_result, first=i == 0, last=False, duration_s=end_s)
        merge.merge_chunk(tail, last, result, first=not self.chunks, last=True, duration_s=end_s)
        redo = tail[len(seed) :]
        self.segments_done += len(result.segments) + sum(len(r.segments) for _, r in again)
        spoken = dict(spoken)
        _add_spoken(spoken, redo)
        code = max(spoken, key=spoken.__getitem__) if spoken else None
        return TranscribeOutput.model_construct(
            segments=self.built[:reuse] + self._build(redo),
            input_duration_sec=end_s,
            processing_duration_sec=elapsed_s,
            speedup=end_s / elapsed_s if elapsed_s > 0 else 0.0,
            text=merge.join_text([*self.kept[:reuse], *redo]),
            language=language_name(code),
            language_code=code,
            timings=None,
        )

    def _build(self, timed: Sequence[TimedText]) -> list[Segment]:
        self.segments_done += len(timed)
        return transcript.build(timed, 0.0, 0.0, self.with_words).segments if timed else []


def _add_spoken(spoken: dict[str, float], timed: Sequence[TimedText]) -> None:
    """transcript.main_language's sums, continued: same order of additions, same floats."""
    for t in timed:
        if t.language:
            spoken[t.language] = spoken.get(t.language, 0.0) + t.end_s - t.start_s
