"""A macro chunk -> micro chunks cut at pauses -> transcribed pieces -> segments.

The model call is injected, so the micro-chunk Triton model binds it to BLS
and the tests to a fake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np

from .audio import (
    MAX_WINDOW_S,
    SAMPLE_RATE,
    Envelope,
    FloatAudio,
    Int16Audio,
    int16_to_float,
    plan_cuts,
    smoothed_energy,
)
from .segments import ChunkResult, Segment

TranscribePiece = Callable[[FloatAudio], Awaitable[ChunkResult]]

# Whisper often closes a nearly full window early and drops its last words.
# Like the sequential decoder's seek, an uncovered tail that still holds
# speech is decoded again on its own.
MIN_TAIL_S = 1.0  # shorter uncovered tails are left alone
SPEECH_LEVEL = 0.1  # tail speaks if its envelope passes this share of the chunk's loud level
LOUD_PERCENTILE = 95.0  # the chunk's "loud level"
MAX_TAIL_ROUNDS = 2  # re-decodes per piece
# openai/whisper's thresholds. A piece is silence when the decoder believes
# so and its text is unlikely (both), as openai/whisper and faster-whisper
# skip it. A re-decoded tail is short and often only noise, where Whisper
# invents text: there either signal drops it.
MIN_AVG_LOGPROB = -1.0
MAX_NO_SPEECH_PROB = 0.6
START_PAD_S = 0.1  # a snapped start sits this far before the first loud sample


def snap_start(segment: Segment, envelope: Envelope, speech_level: float) -> Segment:
    """Move a segment's start to where its speech begins.

    Whisper's first timestamp in a window is capped at 1 s and tiny models
    often say 0.00 whatever the leading pause; the energy envelope knows
    better. The start only moves forward, and never past the segment's end.
    """
    lo = int(segment.start_s * SAMPLE_RATE)
    hi = min(int(segment.end_s * SAMPLE_RATE), len(envelope))
    loud = np.flatnonzero(envelope[lo:hi] > speech_level)
    if len(loud) == 0:
        return segment
    start_s = max(segment.start_s, (lo + int(loud[0])) / SAMPLE_RATE - START_PAD_S)
    return replace(segment, start_s=min(start_s, segment.end_s))


def _confident(result: ChunkResult) -> bool:
    return all(s.avg_logprob >= MIN_AVG_LOGPROB and s.no_speech_prob <= MAX_NO_SPEECH_PROB for s in result.segments)


def _silence(result: ChunkResult) -> bool:
    return any(s.avg_logprob < MIN_AVG_LOGPROB and s.no_speech_prob > MAX_NO_SPEECH_PROB for s in result.segments)


def check_micro_size(max_s: float) -> None:
    if not 0 < max_s <= MAX_WINDOW_S:
        raise ValueError(f"micro_chunk_size_sec must be in (0, {MAX_WINDOW_S:g}], got {max_s}")


async def transcribe_macro_chunk(
    pcm_int16: Int16Audio, max_s: float, smoothing_samples: int, transcribe: TranscribePiece
) -> ChunkResult:
    """int16 PCM [n] of one macro chunk -> segments with times from its start."""
    check_micro_size(max_s)
    pcm = int16_to_float(pcm_int16)
    envelope = smoothed_energy(pcm, smoothing_samples)
    speech_level = SPEECH_LEVEL * float(np.percentile(envelope, LOUD_PERCENTILE)) if len(envelope) else 0.0
    max_len = int(max_s * SAMPLE_RATE)
    # the seed's rule: cut in the second half of the longest allowed piece
    pieces = plan_cuts(envelope, max_len=max_len, min_len=max_len // 2)
    languages: dict[int, str] = {}  # piece start -> its language; the earliest piece speaks for the chunk

    async def piece(start: int, end: int, rounds_left: int, is_tail: bool = False) -> list[Segment]:
        result = await transcribe(pcm[start:end])
        if _silence(result) or (is_tail and not _confident(result)):
            return []
        if result.language:
            languages.setdefault(start, result.language)
        segments = [s.shifted(start / SAMPLE_RATE) for s in result.segments]
        if not segments or rounds_left == 0:
            return segments
        covered = min(end, int(round(segments[-1].end_s * SAMPLE_RATE)))
        tail = envelope[covered:end]
        if covered > start and len(tail) >= MIN_TAIL_S * SAMPLE_RATE and tail.max(initial=0.0) > speech_level:
            segments += await piece(covered, end, rounds_left - 1, is_tail=True)
        return segments

    per_piece = await asyncio.gather(*(piece(a, b, MAX_TAIL_ROUNDS) for a, b in pieces))
    segments = tuple(snap_start(s, envelope, speech_level) for group in per_piece for s in group)
    return ChunkResult(segments=segments, language=languages[min(languages)] if languages else None)
