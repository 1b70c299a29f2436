"""The finished transcript, assembled chunk by chunk from where the finished chunks are kept.

Holding every chunk's result to the end grew the orchestrator with the media
(about 8 MiB per audio hour). A job's chunks already sit in Redis as
checkpoints, so the end reads them again one at a time, in order, twice:

1. `assemble`: each chunk merged onto the last segment kept (all the merge
   reads), gathering what the joins need from the whole transcript (the
   capitals written in mid-sentence), the spoken seconds per language and the
   count of segments. Nothing else is held.
2. `Assembled.json_pieces` (or `output`): merged again, the same way, the
   joins reconciled piece by piece (`assembly.reconcile_joins` with the
   capitals of step 1), each segment built and written as it comes.

The pieces joined are byte for byte `output().to_json()`. A run without a job
keeps its chunks in `HeldParts`, which answers the same reads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from longscribe_core import assembly
from orchestrator.assemble import merge, transcript
from orchestrator.assemble.merge import TimedText
from orchestrator.assemble.progress import ChunkPart
from orchestrator.assemble.speakers import Diarize, Speakers, VoiceBook
from orchestrator.languages import language_name
from orchestrator.plan.macro import MacroChunk
from orchestrator.schemas import Timings, TranscribeOutput

Read = Callable[[int], Awaitable[ChunkPart | None]]  # the finished part of chunk n (0, 1, ... in media order)


class PartMissing(RuntimeError):
    """A finished chunk is no longer where it was kept (Redis lost it): the transcript cannot be written. A job
    is then not ended by this worker; its lease runs out and a worker resumes it, transcribing the chunk again."""


async def _read(read: Read, index: int) -> ChunkPart:
    part = await read(index)
    if part is None:
        raise PartMissing(f"the finished chunk {index} is gone from where it was kept")
    return part


@dataclass
class HeldParts:
    """The finished chunks of a run without a job, in memory (the pipeline's `Checkpoints` without Redis)."""

    parts: dict[int, ChunkPart] = field(default_factory=dict)

    def take(self, chunk: MacroChunk) -> ChunkPart | None:
        return None  # nothing was finished before this run

    async def save(self, part: ChunkPart) -> None:
        self.parts[part.chunk.index] = part

    async def read(self, index: int) -> ChunkPart | None:
        return self.parts.get(index)


@dataclass
class _Merge:
    """Chunks merged one after another onto the last segment kept: `assembly.assemble_chunks`, chunk by chunk."""

    count: int
    duration_s: float
    done: int = 0
    last: list[TimedText] = field(default_factory=list)

    def add(self, part: ChunkPart) -> list[TimedText]:
        """The segments this chunk adds to the transcript."""
        tail = self.last[-1:]
        had = len(tail)
        first, final = self.done == 0, self.done == self.count - 1
        merge.merge_chunk(tail, part.chunk, part.result, first=first, last=final, duration_s=self.duration_s)
        self.done += 1
        self.last = tail[-1:]
        return tail[had:]


async def assemble(
    read: Read, count: int, duration_s: float, with_words: bool, started: float, diarize: Diarize | None = None
) -> Assembled:
    """Step 1: the figures of the transcript of chunks 0..count-1 (`duration_s` long), one chunk in memory
    at a time; `processing_duration_sec` counts from `started` (monotonic) to its end. With `diarize`, the
    chunks' voices are gathered too, and clustered into the recording's speakers at the end."""
    merging = _Merge(count, duration_s)
    kept: set[str] = set()
    spoken: dict[str, float] = {}  # seconds per language, summed in `transcript.main_language`'s order
    book = VoiceBook() if diarize is not None else None
    segments = 0
    for n in range(count):
        part = await _read(read, n)
        segments += await asyncio.to_thread(_look, merging, part, kept, spoken, book)
        del part
    code = max(spoken, key=spoken.__getitem__) if spoken else None
    speakers = await asyncio.to_thread(book.speakers, diarize) if book is not None and diarize is not None else None
    elapsed_s = time.monotonic() - started
    return Assembled(read, count, duration_s, elapsed_s, with_words, kept, segments, code, speakers=speakers)


def _look(merging: _Merge, part: ChunkPart, kept: set[str], spoken: dict[str, float], book: VoiceBook | None) -> int:
    """One chunk of step 1, off the loop: what it adds to the capitals, the spoken seconds and the voices;
    how many segments."""
    if book is not None:
        book.add(part.chunk, part.result.voices, first=merging.done == 0, last=merging.done == merging.count - 1)
    added = merging.add(part)
    assembly.kept_capitals(added, kept)
    for t in added:
        if t.language:
            spoken[t.language] = spoken.get(t.language, 0.0) + t.end_s - t.start_s
    return len(added)


@dataclass
class Assembled:
    """A finished transcript not yet written out: its figures, and its segments read again when written."""

    read: Read
    count: int  # chunks 0..count-1
    input_duration_sec: float
    processing_duration_sec: float
    with_words: bool
    kept: set[str]  # `assembly.kept_capitals` of the whole transcript
    segment_count: int  # how many segments the transcript has (once written: speaker turns split some)
    language_code: str | None
    timings: Timings | None = None
    model: str | None = None
    speakers: Speakers | None = None  # who spoke when (params.diarize), put on the segments as they are written

    @property
    def speaker_count(self) -> int | None:
        """How many speakers were found; None when not diarized."""
        return self.speakers.count if self.speakers is not None else None

    @property
    def speedup(self) -> float:
        elapsed = self.processing_duration_sec
        return self.input_duration_sec / elapsed if elapsed > 0 else 0.0

    async def reconciled(self) -> AsyncIterator[list[TimedText]]:
        """The transcript's segments, chunk by chunk, joins reconciled: what `longscribe_core.assembly.transcript`
        gives for every result at once."""
        merging = _Merge(self.count, self.input_duration_sec)
        carry: list[TimedText] = []  # the last segment so far: the next join may still change it
        for n in range(self.count):
            part = await _read(self.read, n)
            added = await asyncio.to_thread(merging.add, part)
            del part
            if not added:
                continue
            out = assembly.reconcile_joins([*carry, *added], self.kept)
            carry = out[-1:]
            if out[:-1]:
                yield self._labelled(out[:-1])
        if carry:
            yield self._labelled(carry)

    def _labelled(self, timed: list[TimedText]) -> list[TimedText]:
        return self.speakers.label(timed) if self.speakers is not None else timed

    async def json_pieces(self) -> AsyncIterator[str]:
        """The verbose JSON answer (`TranscribeOutput.to_json`), in about a chunk's segments per piece."""
        yield '{"segments":['
        texts: list[str] = []  # the text field comes after the segments (the whole text: ~60 KiB an hour)
        previous: TimedText | None = None
        written = 0
        async for timed in self.reconciled():
            built = transcript.build(timed, 0.0, 0.0, self.with_words).segments
            yield ("," if written else "") + ",".join(s.model_dump_json(exclude_none=True) for s in built)
            written += len(built)
            texts.append(
                (" " if previous is not None and _space_between(previous, timed[0]) else "") + merge.join_text(timed)
            )
            previous = timed[-1]
        self.segment_count = written
        yield "]," + self._head("".join(texts)).model_dump_json(exclude={"segments"}, exclude_none=True)[1:]

    async def output(self) -> TranscribeOutput:
        """The whole answer as one object (a run without a job answers with it)."""
        timed = [t async for piece in self.reconciled() for t in piece]
        self.segment_count = len(timed)
        built = transcript.build(timed, self.input_duration_sec, self.processing_duration_sec, self.with_words)
        return built.model_copy(update={"timings": self.timings, "model": self.model})

    def _head(self, text: str) -> TranscribeOutput:
        code = self.language_code
        return TranscribeOutput(
            segments=[],
            input_duration_sec=self.input_duration_sec,
            processing_duration_sec=self.processing_duration_sec,
            speedup=self.speedup,
            text=text,
            model=self.model,
            language=language_name(code),
            language_code=code,
            timings=self.timings,
        )


def _space_between(prev: TimedText, cur: TimedText) -> bool:
    """`assembly.join_text`'s rule between two neighbours."""
    return bool(assembly.written_with_spaces(prev.language) or assembly.written_with_spaces(cur.language))
