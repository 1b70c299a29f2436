"""A macro chunk -> micro chunks cut at pauses -> transcribed pieces -> segments.

The model call is injected, so the micro-chunk Triton model binds it to BLS
and the tests to a fake. What happens to each piece:

1. A piece with no speech energy at all is not decoded (Whisper invents text
   in silence).
2. A cut that falls in speech, not in a pause, is decoded with CUT_OVERLAP_S
   of audio past it on both sides; each side keeps only the words whose
   middle lies on its side of the cut, so a word cut in two is neither lost
   nor doubled.
3. Each piece is decoded greedily, and again hotter while the result loops or
   is unsure (`quality`). A window the decoder calls silent, a loop that
   survives every temperature, and text without a letter are dropped.
4. Where the decoder stopped early, at its token limit or by closing the
   window before its speech ended, the rest is decoded again on its own.
5. Segments are split at pauses between their words and their starts moved
   to where speech begins (`pauses`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

import numpy as np

from . import quality
from .audio import (
    MAX_WINDOW_S,
    MAX_WINDOW_SAMPLES,
    SAMPLE_RATE,
    Envelope,
    FloatAudio,
    Int16Audio,
    int16_to_float,
    plan_cuts,
    quietest_index,
    smoothed_energy,
)
from .pauses import snap_start, split_at_pauses
from .segments import ChunkResult, Segment

# audio, sampling temperature -> what Whisper heard
TranscribePiece = Callable[[FloatAudio, float], Awaitable[ChunkResult]]

MIN_TAIL_S = 1.0  # shorter uncovered tails are left alone
SPEECH_LEVEL = 0.1  # speech: the envelope passes this share of the chunk's loud level
LOUD_PERCENTILE = 95.0  # the chunk's "loud level"
# Below this mean |sample| over 0.1 s (about -50 dBFS) there is no speech whatever the chunk's loudness
SILENCE_FLOOR = 10 ** (-50 / 20)
MAX_TAIL_ROUNDS = 2  # re-decodes of an uncovered tail per piece
CUT_OVERLAP_S = 1.0  # audio decoded past a cut that is not in a pause: longer than most words
MIN_RECUT_S = 2.0  # a truncated piece without a single closed segment is halved down to this
LEAD_PAD = int(0.2 * SAMPLE_RATE)  # quiet audio kept before a window's first speech


@dataclass(frozen=True)
class Piece:
    """Samples [lo, hi) are decoded; words whose middle lies in [own_lo, own_hi) are kept."""

    lo: int
    hi: int
    own_lo: int
    own_hi: int


def check_micro_size(max_s: float) -> None:
    if not 0 < max_s <= MAX_WINDOW_S:
        raise ValueError(f"micro_chunk_size_sec must be in (0, {MAX_WINDOW_S:g}], got {max_s}")


def speech_level(envelope: Envelope) -> float:
    """The envelope level above which a chunk speaks."""
    if len(envelope) == 0:
        return SILENCE_FLOOR
    return max(SILENCE_FLOOR, SPEECH_LEVEL * float(np.percentile(envelope, LOUD_PERCENTILE)))


def plan_pieces(envelope: Envelope, max_len: int, level: float) -> list[Piece]:
    """Cut at pauses; a cut inside speech makes its two pieces overlap by CUT_OVERLAP_S each way."""
    overlap = int(CUT_OVERLAP_S * SAMPLE_RATE)
    tiles = plan_cuts(envelope, max_len=max_len, min_len=max_len // 2)
    pieces = []
    for k, (lo, hi) in enumerate(tiles):
        hard_start = k > 0 and envelope[lo] > level
        hard_end = k < len(tiles) - 1 and envelope[hi] > level
        dec_lo = max(0, lo - overlap) if hard_start else lo
        dec_hi = min(len(envelope), hi + overlap) if hard_end else hi
        dec_hi = min(dec_hi, dec_lo + MAX_WINDOW_SAMPLES)  # Whisper hears 30 s at most
        pieces.append(Piece(dec_lo, dec_hi, lo, hi))
    return pieces


def _owned(segments: list[Segment], own_lo_s: float, own_hi_s: float) -> list[Segment]:
    """Keep what lies in [own_lo_s, own_hi_s): words by their middle, segments without words by theirs."""
    kept = []
    for seg in segments:
        if not seg.words:
            if own_lo_s <= (seg.start_s + seg.end_s) / 2 < own_hi_s:
                kept.append(seg)
            continue
        words = [w for w in seg.words if own_lo_s <= w.mid_s < own_hi_s]
        if len(words) == len(seg.words):
            kept.append(seg)
        elif words:
            text = "".join(w.text for w in words).strip()
            kept.append(replace(seg, start_s=max(seg.start_s, words[0].start_s), end_s=words[-1].end_s,
                                text=text, words=tuple(words)))  # fmt: skip
    return kept


def _score(result: ChunkResult) -> tuple[float, float, float]:
    """(avg log-prob, no-speech prob, compression ratio) of a decode; 0/0/1 when it is empty."""
    if not result.segments:
        return 0.0, 0.0, 1.0
    first = result.segments[0]  # the engine gives every segment of a window the window's scores
    return first.avg_logprob, first.no_speech_prob, first.compression_ratio


async def decode_with_fallback(audio: FloatAudio, transcribe: TranscribePiece) -> ChunkResult | None:
    """Greedy, then hotter while the text loops or is unsure; None for silence or an incurable loop."""
    best: ChunkResult | None = None
    fell_back = False
    for temperature in quality.FALLBACK_TEMPERATURES:
        result = await transcribe(audio, temperature)
        logprob, no_speech, ratio = _score(result)
        if best is None or logprob > _score(best)[0]:
            best = result
        if not quality.is_loop(ratio) and not quality.is_unsure(logprob):
            best = result
            break
        fell_back = True
        if no_speech > quality.MAX_NO_SPEECH_PROB:
            break  # the decoder hears no speech: hotter sampling would only invent some
    assert best is not None
    logprob, no_speech, ratio = _score(best)
    if no_speech > quality.MAX_NO_SPEECH_PROB and fell_back:
        return None
    if quality.is_loop(ratio):
        return None
    segments = tuple(s for s in best.segments if quality.has_words(s.text))
    return replace(best, segments=segments)


async def transcribe_macro_chunk(
    pcm_int16: Int16Audio, max_s: float, smoothing_samples: int, transcribe: TranscribePiece
) -> ChunkResult:
    """int16 PCM [n] of one macro chunk -> segments with times from its start."""
    check_micro_size(max_s)
    pcm = int16_to_float(pcm_int16)
    envelope = smoothed_energy(pcm, smoothing_samples)
    level = speech_level(envelope)
    languages: dict[int, str] = {}  # piece start -> its language; the earliest piece speaks for the chunk

    async def piece(p: Piece, tail_rounds: int, strict: bool = False) -> list[Segment]:
        loud = np.flatnonzero(envelope[p.lo : p.hi] > level)
        if len(loud) == 0:
            return []  # no speech energy: nothing to hear, and nothing to invent
        # Whisper's first timestamp is capped at 1 s and alignment starts at the first frame, so
        # a leading pause would be glued to the first word: start the window where speech does
        p = replace(p, lo=p.lo + max(0, int(loud[0]) - LEAD_PAD))
        result = await decode_with_fallback(pcm[p.lo : p.hi], transcribe)
        if result is None or (strict and not _confident(result)):
            return []
        if result.language and result.segments:
            languages.setdefault(p.own_lo, result.language)
        heard = [s.shifted(p.lo / SAMPLE_RATE) for s in result.segments]
        segments = _owned(heard, p.own_lo / SAMPLE_RATE, p.own_hi / SAMPLE_RATE)
        if result.truncated and not heard and p.hi - p.lo >= 2 * MIN_RECUT_S * SAMPLE_RATE:
            return await _recut(p, tail_rounds)
        # how far the decoder got, whatever this piece keeps of it
        covered = max(p.lo, int(round(heard[-1].end_s * SAMPLE_RATE))) if heard else p.hi
        if tail_rounds == 0 or covered >= p.own_hi:
            return segments
        tail = Piece(covered, p.hi, covered, p.own_hi)
        if result.truncated:  # real speech the decoder had no room for: decode it, same rules
            return segments + await piece(tail, tail_rounds - 1)
        if p.hi - covered >= MIN_TAIL_S * SAMPLE_RATE and envelope[covered : p.hi].max(initial=0.0) > level:
            return segments + await piece(tail, tail_rounds - 1, strict=True)
        return segments

    async def _recut(p: Piece, tail_rounds: int) -> list[Segment]:
        """No closed segment before the token limit: halve the piece at its quietest middle point."""
        third = (p.hi - p.lo) // 3
        cut = quietest_index(envelope, p.lo + third, p.hi - third)
        halves = [Piece(p.lo, cut, max(p.own_lo, p.lo), cut), Piece(cut, p.hi, cut, p.own_hi)]
        parts = await asyncio.gather(*(piece(h, tail_rounds) for h in halves))
        return [s for part in parts for s in part]

    pieces = plan_pieces(envelope, int(max_s * SAMPLE_RATE), level) if len(pcm) else []
    per_piece = await asyncio.gather(*(piece(p, MAX_TAIL_ROUNDS) for p in pieces))
    segments = [
        snap_start(part, envelope, level)
        for group in per_piece
        for seg in group
        for part in split_at_pauses(seg, envelope, level)
    ]
    return ChunkResult(segments=tuple(segments), language=languages[min(languages)] if languages else None)


def _confident(result: ChunkResult) -> bool:
    """Both of Whisper's signals say speech: what a short re-decoded tail must show to be kept."""
    logprob, no_speech, _ = _score(result)
    return not quality.is_unsure(logprob) and no_speech <= quality.MAX_NO_SPEECH_PROB
