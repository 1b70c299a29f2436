"""A macro chunk -> micro chunks cut at pauses -> transcribed pieces -> segments.

The model call is injected, so the micro-chunk Triton model binds it to BLS
and the tests to a fake. Pauses of a second or more are first shortened to
half a second (`condense`): windows hold more speech, and every time is
mapped back before assembly. What happens to each piece:

1. A piece with no speech energy at all is not decoded (Whisper invents text
   in silence).
2. A cut that falls in speech, not in a pause, is decoded with CUT_OVERLAP_S
   of audio past it on both sides; each side keeps only the words whose
   middle lies on its side of the cut, so a word cut in two is neither lost
   nor doubled.
3. Each piece is decoded greedily (or sampled at the caller's temperature),
   and again hotter while the result loops or is unsure (`quality`). A window the decoder calls silent, a loop that
   survives every temperature, and text without a letter are dropped; so is a
   window that heard only a stock phrase ("thanks for watching", a lone
   "you") unless the decoder is sure and the audio holds the speech to say it.
4. Where the decoder stopped early, at its token limit or by closing the
   window before its speech ended, the rest is decoded again on its own.
5. The windows' segments are put together by `assembly`: split at pauses
   between their words, starts moved to where speech begins, and each join
   (new window or not, cut in speech or in a pause, gap) recorded.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from longscribe_core import assembly, quality
from longscribe_core.audio import (
    MAX_WINDOW_S,
    MAX_WINDOW_SAMPLES,
    SAMPLE_RATE,
    SILENCE_FLOOR,
    Envelope,
    FloatAudio,
    Int16Audio,
    int16_to_float,
    plan_cuts,
    quietest_index,
    smoothed_energy,
    speech_level,
)
from longscribe_core.segmentation.condense import QUIET_SHARE, condense
from longscribe_core.segments import ChunkResult, Segment, Voice, Work
from longscribe_core.speakers.voices import EmbedClipsAsync, speech_pieces, voices_via

# audio, sampling temperature -> what Whisper heard
TranscribePiece = Callable[[FloatAudio, float], Awaitable[ChunkResult]]

FALLBACK = quality.FALLBACK_TEMPERATURES
MIN_TAIL_S = 1.0  # shorter uncovered tails are left alone
MAX_TAIL_ROUNDS = 2  # re-decodes of an uncovered tail per piece
CUT_OVERLAP_S = 1.0  # audio decoded past a cut that is not in a pause: longer than most words
# A piece is cut at the quietest point of its last CUT_SEARCH_S (of its last half when shorter), so
# windows are nearly full: each costs a whole 30 s encoder pass however little audio it holds. Most
# speech pauses within a few seconds; where it does not, the cut in speech is decoded with overlap.
CUT_SEARCH_S = 5.0
MIN_RECUT_S = 2.0  # a truncated piece without a single closed segment is halved down to this
LEAD_PAD = int(0.2 * SAMPLE_RATE)  # quiet audio kept before a window's first speech
TRAIL_PAD = int(0.3 * SAMPLE_RATE)  # and after its last
# Whisper sometimes skips a sentence inside a long window, and the alignment then stretches the
# word before it over the skipped speech. No spoken word lasts this long: what lies past it is
# treated as not transcribed, and decoded again when it holds this much speech.
MAX_WORD_S = 1.5
MIN_SKIPPED_SPEECH_S = 1.0
MIN_STOCK_SPEECH_S = 1.0  # speech energy a window needs to keep a stock phrase ("thanks for watching": ~1 s)
LEVEL_BLOCK_S = 5.0  # the speech level is set afresh every this many seconds,
LEVEL_CONTEXT_S = 15.0  # from the loudness of this much audio around


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


def speech_levels(envelope: Envelope) -> Envelope:
    """Per-sample speech level [n], each from the LEVEL_CONTEXT_S around it.

    Local, so a quiet speaker after a loud one (another recording, another
    microphone) is still heard as speech rather than as a pause.
    """
    n = len(envelope)
    levels: Envelope = np.full(n, SILENCE_FLOOR, dtype=np.float32)
    block, half = int(LEVEL_BLOCK_S * SAMPLE_RATE), int(LEVEL_CONTEXT_S * SAMPLE_RATE) // 2
    step = SAMPLE_RATE // 100  # the envelope is smooth: 10 ms steps are plenty for a percentile
    coarse = envelope[::step]
    for lo in range(0, n, block):
        centre = lo + block // 2
        around = coarse[max(0, centre - half) // step : min(n, centre + half) // step + 1]
        levels[lo : lo + block] = speech_level(around)
    return levels


def speech_mask(envelope: Envelope) -> NDArray[np.bool_]:
    """Per-sample: is this speech? Not a pause by `condense`'s rule (below QUIET_SHARE of the local level).

    What the speaker voices are taken from (`speakers.speech_pieces`)."""
    return envelope >= QUIET_SHARE * speech_levels(envelope)  # as transcribe_macro_chunk takes them


def plan_pieces(envelope: Envelope, max_len: int, levels: Envelope) -> list[Piece]:
    """Cut at pauses; a cut inside speech makes its two pieces overlap by CUT_OVERLAP_S each way."""
    overlap = int(CUT_OVERLAP_S * SAMPLE_RATE)
    tiles = plan_cuts(envelope, max_len, max(max_len // 2, max_len - int(CUT_SEARCH_S * SAMPLE_RATE)))
    pieces = []
    for k, (lo, hi) in enumerate(tiles):
        hard_start = k > 0 and envelope[lo] > levels[lo]
        hard_end = k < len(tiles) - 1 and envelope[hi] > levels[hi]
        dec_lo = max(0, lo - overlap) if hard_start else lo
        dec_hi = min(len(envelope), hi + overlap) if hard_end else hi
        dec_hi = min(dec_hi, dec_lo + MAX_WINDOW_SAMPLES)  # Whisper hears 30 s at most
        pieces.append(Piece(dec_lo, dec_hi, lo, hi))
    return pieces


def cap_words(segment: Segment) -> Segment:
    """End every word at most MAX_WORD_S after it starts, and the segment with its last word."""
    if not segment.words:
        return segment
    words = tuple(replace(w, end_s=min(w.end_s, w.start_s + MAX_WORD_S)) for w in segment.words)
    return replace(segment, words=words, end_s=max(segment.start_s, min(segment.end_s, words[-1].end_s)))


def skipped_speech(heard: list[Segment], p: Piece, speaks: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Stretches of [p.lo, last word's end) that hold speech but no word: [lo, hi) in samples."""
    words = [w for s in heard for w in s.words]
    if not words:
        return []
    gaps: list[tuple[int, int]] = []
    for before, after in zip(words, words[1:]):
        lo, hi = int(before.end_s * SAMPLE_RATE), int(after.start_s * SAMPLE_RATE)
        if hi - lo >= MIN_SKIPPED_SPEECH_S * SAMPLE_RATE and p.lo <= lo and hi <= p.hi:
            gaps.append((lo, hi))
    return [(lo, hi) for lo, hi in gaps if np.count_nonzero(speaks[lo:hi]) >= MIN_SKIPPED_SPEECH_S * SAMPLE_RATE]


def _score(result: ChunkResult) -> tuple[float, float, float]:
    """(avg log-prob, no-speech prob, compression ratio) of a decode; 0/0/1 when it is empty."""
    if not result.segments:
        return 0.0, 0.0, 1.0
    first = result.segments[0]  # the engine gives every segment of a window the window's scores
    return first.avg_logprob, first.no_speech_prob, first.compression_ratio


def _passes(result: ChunkResult) -> bool:
    logprob, _, ratio = _score(result)
    return not quality.is_loop(ratio) and not quality.is_unsure(logprob)


async def decode_with_fallback(
    audio: FloatAudio, transcribe: TranscribePiece, temperatures: tuple[float, ...] = quality.FALLBACK_TEMPERATURES
) -> ChunkResult | None:
    """The first rung, then hotter while the text loops or is unsure; None for silence or an incurable loop.

    `temperatures` is the ladder (`quality.fallback_from`): greedy first by
    default, or the caller's temperature. A hotter decode is kept only when it
    passes: when none does, the first one stands or falls alone. On music or
    noise, a sample now and then is a fluent stock phrase that scores better
    than the greedy babble while still unsure ("I'm going to go back to the
    next video.", -1.8): sampling luck, not hearing.
    """
    first = await transcribe(audio, temperatures[0])
    chosen = first
    if not _passes(first):
        if _score(first)[1] > quality.MAX_NO_SPEECH_PROB:
            return None  # the decoder hears no speech: hotter sampling would only invent some
        for temperature in temperatures[1:]:
            result = await transcribe(audio, temperature)
            if _passes(result):
                chosen = result
                break
    logprob, _, ratio = _score(chosen)
    if quality.is_loop(ratio) or logprob < quality.MIN_KEPT_LOGPROB:
        return None
    segments = tuple(s for s in chosen.segments if quality.has_words(s.text))
    return replace(chosen, segments=segments)


async def transcribe_macro_chunk(
    pcm_int16: Int16Audio,
    max_s: float,
    smoothing_samples: int,
    transcribe: TranscribePiece,
    temperature: float = 0.0,
    embed_clips: EmbedClipsAsync | None = None,
) -> ChunkResult:
    """int16 PCM [n] of one macro chunk -> segments with times from its start.

    `temperature` starts every piece's fallback ladder: 0 is greedy first.
    `embed_clips`, when given (diarization), embeds the speech's voice windows
    while the pieces are decoded: the result carries them as `voices`."""
    check_micro_size(max_s)
    ladder = quality.fallback_from(temperature)
    pcm = int16_to_float(pcm_int16)
    envelope = smoothed_energy(pcm, smoothing_samples)
    levels = speech_levels(envelope)
    # long pauses shortened: fewer windows for the same speech; times are mapped back before assembly
    short = condense(envelope < QUIET_SHARE * levels)
    speaker_work: asyncio.Future[list[Voice]] | None = None
    if embed_clips is not None:  # the clips are cut now, before the chunk's audio is let go
        pieces_of_speech = speech_pieces(envelope >= QUIET_SHARE * levels)
        speaker_work = asyncio.ensure_future(voices_via(pcm, pieces_of_speech, embed_clips))
    heard_env, heard_levels = short.select(envelope), short.select(levels)
    chunk = _Chunk(short.select(pcm), heard_env, heard_levels, heard_env > heard_levels, transcribe, ladder)
    del pcm
    pieces = plan_pieces(heard_env, int(max_s * SAMPLE_RATE), heard_levels) if len(heard_env) else []
    try:
        per_piece = await asyncio.gather(*(chunk.piece(p, MAX_TAIL_ROUNDS) for p in pieces))
        voices = tuple(await speaker_work) if speaker_work is not None else ()
    finally:
        if speaker_work is not None and not speaker_work.done():
            speaker_work.cancel()  # a failed or cancelled chunk sends no more clips
    in_chunk_time = [[short.segment(s) for s in segments] for segments in per_piece]
    segments = assembly.assemble_pieces(in_chunk_time, envelope, levels)
    languages = chunk.languages
    language = languages[min(languages)] if languages else None
    return ChunkResult(segments=tuple(segments), language=language, work=chunk.work, voices=voices)


@dataclass
class _Chunk:
    """One macro chunk's audio and what is known of it while its pieces are decoded.

    A plain object, not closures: a closure that calls itself is a reference
    cycle, and it kept each 5-minute chunk's arrays (100 MB) alive until the
    garbage collector's next full pass.
    """

    pcm: FloatAudio
    envelope: Envelope
    levels: Envelope
    speaks: NDArray[np.bool_]  # envelope above the local speech level
    transcribe: TranscribePiece
    ladder: tuple[float, ...] = FALLBACK  # temperatures a piece is decoded at, first to last resort
    # piece start -> its language; the earliest piece speaks for the chunk
    languages: dict[int, str] = field(default_factory=dict)
    window_ids: Iterator[int] = field(default_factory=itertools.count)  # each decode window's mark for assembly
    work: Work = Work()  # every decode's, kept or not

    async def decode(self, audio: FloatAudio, temperature: float) -> ChunkResult:
        result = await self.transcribe(audio, temperature)
        self.work += result.work
        return result

    async def piece(self, p: Piece, tail_rounds: int, strict: bool = False) -> list[Segment]:
        loud = np.flatnonzero(self.speaks[p.lo : p.hi])
        if len(loud) == 0:
            return []  # no speech energy: nothing to hear, and nothing to invent
        # Whisper's first timestamp is capped at 1 s and alignment starts at the first frame, so
        # a leading pause would be glued to the first word: start the window where speech does
        # and end it where speech ends: the word alignment's path runs to the window's end, and would
        # stretch the last word over a trailing pause
        p = replace(p, lo=p.lo + max(0, int(loud[0]) - LEAD_PAD), hi=min(p.hi, p.lo + int(loud[-1]) + TRAIL_PAD))
        # a second look (a tail, skipped speech) must be confident at the first rung (greedy unless the
        # caller asked hotter): every window costs a full encoder pass, and a short clip the first
        # decode passed over rarely earns six
        ladder = self.ladder[:1] if strict else self.ladder
        result = await decode_with_fallback(self.pcm[p.lo : p.hi], self.decode, ladder)
        if result is None or (strict and not _confident(result)) or self.stock_only(result, p):
            return []
        if result.language and result.segments:
            self.languages.setdefault(p.own_lo, result.language)
        heard = [cap_words(s.shifted(p.lo / SAMPLE_RATE)) for s in result.segments]
        owned = (s.owned_part(p.own_lo / SAMPLE_RATE, p.own_hi / SAMPLE_RATE) for s in heard)
        in_speech = 0 < p.own_lo < len(self.speaks) and bool(self.speaks[p.own_lo])
        segments = assembly.window_segments((s for s in owned if s is not None), next(self.window_ids), in_speech)
        if not strict:  # skipped speech inside the window, decoded on its own and held to the tail's rules
            stretches = skipped_speech(heard, p, self.speaks)
            skipped = [Piece(a, b, max(a, p.own_lo), min(b, p.own_hi)) for a, b in stretches]
            found = await asyncio.gather(*(self.piece(g, 0, strict=True) for g in skipped))
            segments = sorted(segments + [s for group in found for s in group], key=lambda s: s.start_s)
        if result.truncated and not heard and p.hi - p.lo >= 2 * MIN_RECUT_S * SAMPLE_RATE:
            return await self.recut(p, tail_rounds)
        # how far the decoder got, whatever this piece keeps of it
        covered = max(p.lo, int(round(heard[-1].end_s * SAMPLE_RATE))) if heard else p.hi
        if tail_rounds == 0 or covered >= p.own_hi:
            return segments
        tail = Piece(covered, p.hi, covered, p.own_hi)
        if result.truncated:  # real speech the decoder had no room for: decode it, same rules
            return segments + await self.piece(tail, tail_rounds - 1)
        if p.hi - covered >= MIN_TAIL_S * SAMPLE_RATE and np.any(self.speaks[covered : p.hi]):
            return segments + await self.piece(tail, tail_rounds - 1, strict=True)
        return segments

    def stock_only(self, result: ChunkResult, p: Piece) -> bool:
        """Heard nothing but a stock phrase, and neither the decoder is sure of speech nor the audio holds it."""
        if not quality.is_stock_phrase(" ".join(s.text for s in result.segments)):
            return False
        logprob, no_speech, _ = _score(result)
        speech_s = np.count_nonzero(self.speaks[p.lo : p.hi]) / SAMPLE_RATE
        unsure = no_speech > quality.STOCK_MAX_NO_SPEECH_PROB or logprob < quality.STOCK_MIN_LOGPROB
        return unsure or speech_s < MIN_STOCK_SPEECH_S

    async def recut(self, p: Piece, tail_rounds: int) -> list[Segment]:
        """No closed segment before the token limit: halve the piece at its quietest middle point."""
        third = (p.hi - p.lo) // 3
        cut = quietest_index(self.envelope, p.lo + third, p.hi - third)
        halves = [Piece(p.lo, cut, max(p.own_lo, p.lo), cut), Piece(cut, p.hi, cut, p.own_hi)]
        parts = await asyncio.gather(*(self.piece(h, tail_rounds) for h in halves))
        return [s for part in parts for s in part]


def _confident(result: ChunkResult) -> bool:
    """Both of Whisper's signals say speech: what a short re-decoded tail must show to be kept."""
    logprob, no_speech, _ = _score(result)
    return not quality.is_unsure(logprob) and no_speech <= quality.MAX_NO_SPEECH_PROB
