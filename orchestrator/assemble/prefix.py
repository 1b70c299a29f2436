"""The settled prefix of a transcript, kept going by appending: each chunk is merged and built once. Pure.

A chunk is merged for good once the chunk after it has finished too (only then
is its end settled: the last chunk keeps what it heard past its nominal end).
What it adds is built into the API's segments once, for the `chunk` events,
and then forgotten: the merge reads only the last kept segment, so the prefix
holds that one, never the transcript so far (flat memory in the media's
length). The finished answer is assembled again from the chunks
(`assemble.final`), with case and punctuation reconciled at the joins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from longscribe_core.segments import ChunkResult
from orchestrator.assemble import merge, transcript
from orchestrator.assemble.merge import TimedText
from orchestrator.plan.macro import MacroChunk
from orchestrator.schemas import Segment


@dataclass
class Prefix:
    """Chunks 0, 1, 2, ... appended in order; `keep` answers with the segments each one settles."""

    with_words: bool
    chunks: int = 0  # chunks kept so far
    last: list[TimedText] = field(default_factory=list)  # the last kept segment (merged, unclipped), if any
    segments_done: int = 0  # segments merged or built so far: the work, linear in the media

    def keep(self, chunk: MacroChunk, result: ChunkResult) -> list[Segment]:
        """Merge a chunk for good (the one after it has finished, so its end is settled); its segments as
        the API writes them."""
        tail = self.last[-1:]
        merge.merge_chunk(tail, chunk, result, first=self.chunks == 0, last=False, duration_s=math.inf)
        new = tail[len(self.last) :]
        self.chunks += 1
        self.last = tail[-1:]
        self.segments_done += len(result.segments) + len(new)
        return transcript.build(new, 0.0, 0.0, self.with_words).segments if new else []
