"""One request end to end: check -> probe -> plan cuts -> decode + infer each chunk -> merge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from longscribe_core.segments import ChunkResult

from . import chunking, decode, merge
from .errors import MediaTooLong
from .languages import language_name
from .probe import probe
from .range_check import check_range_support
from .schemas import Segment, TranscribeOutput, TranscribeRequest
from .settings import Settings
from .triton_pool import TritonPool

T = TypeVar("T")
Transcriber = Callable[[TranscribeRequest], Awaitable[TranscribeOutput]]
SILENCE_SEARCHES_IN_FLIGHT = 4  # each is one short FFmpeg range read


@dataclass(frozen=True)
class Pipeline:
    """The real transcriber; `app.create_app` takes any `Transcriber`."""

    settings: Settings
    session: aiohttp.ClientSession
    pool: TritonPool

    async def __call__(self, request: TranscribeRequest) -> TranscribeOutput:
        started = time.monotonic()
        s, url, params = self.settings, request.media_url, request.params
        await check_range_support(self.session, url, s.media_timeout_sec)
        info = await probe(url, s.ffprobe_bin, s.media_timeout_sec)
        if info.duration_s > s.max_media_duration_sec:
            raise MediaTooLong(
                f"the media lasts {info.duration_s:.0f} s, over the limit of {s.max_media_duration_sec:.0f} s"
            )
        chunks = await self._plan(url, info.duration_s, params.macro_chunk_size_sec,
                                  params.silence_detection_smoothing_num_samples)  # fmt: skip
        in_flight = asyncio.Semaphore(s.chunks_in_flight_per_endpoint * len(s.triton_grpc_urls))
        parts = await _all([self._chunk(url, c, len(chunks), request, in_flight) for c in chunks])
        timed = merge.merge_chunks(parts, info.duration_s)
        elapsed = time.monotonic() - started
        return TranscribeOutput(
            segments=[
                Segment(
                    start_time_sec=round(t.start_s, 3),
                    end_time_sec=round(t.end_s, 3),
                    text=t.text,
                    language=language_name(t.language),
                    language_code=t.language,
                )  # fmt: skip
                for t in timed
            ],
            input_duration_sec=info.duration_s,
            processing_duration_sec=elapsed,
            speedup=info.duration_s / elapsed if elapsed > 0 else 0.0,
            text=merge.join_text(timed),
        )

    async def _plan(self, url: str, duration_s: float, macro_s: float, smoothing: int) -> list[chunking.MacroChunk]:
        """Move every nominal cut into a pause, reading only a window around each."""
        searches = asyncio.Semaphore(SILENCE_SEARCHES_IN_FLIGHT)

        async def snap(nominal_s: float) -> float:
            lo, hi = chunking.search_window(nominal_s, macro_s, duration_s, self.settings.silence_search_window_sec)
            async with searches:
                pcm = await decode.read_pcm(url, lo, hi - lo, self.settings.ffmpeg_bin, self.settings.media_timeout_sec)
            return chunking.snap_cut(lo, pcm, smoothing, fallback_s=nominal_s)

        cuts = await _all([snap(c) for c in chunking.nominal_cuts(duration_s, macro_s)])
        return chunking.plan_chunks(duration_s, cuts)

    async def _chunk(
        self, url: str, chunk: chunking.MacroChunk, n_chunks: int, request: TranscribeRequest,
        in_flight: asyncio.Semaphore,
    ) -> tuple[chunking.MacroChunk, ChunkResult]:  # fmt: skip
        params = request.params
        is_last = chunk.index == n_chunks - 1
        # the last chunk reads to the end: the probed duration can be a little short
        length = None if is_last else chunk.duration_s + params.macro_chunk_overlap_sec
        async with in_flight:
            pcm = await decode.read_pcm(url, chunk.start_s, length, self.settings.ffmpeg_bin,
                                        self.settings.chunk_timeout_sec)  # fmt: skip
            if len(pcm) == 0:  # the probed duration overshot: nothing left to hear
                return chunk, ChunkResult(segments=(), language=None)
            result = await self.pool.transcribe_chunk(
                pcm, params.micro_chunk_size_sec, params.silence_detection_smoothing_num_samples
            )
        return chunk, result


async def _all(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run all; the first failure cancels the others (and their FFmpeg) and is raised as is."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(c) for c in coros]
    except ExceptionGroup as failures:
        first = failures.exceptions[0]
        while isinstance(first, ExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return [t.result() for t in tasks]
