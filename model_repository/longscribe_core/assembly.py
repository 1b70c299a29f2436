"""Transcript assembly: decoded pieces -> a chunk's segments -> the ordered transcript, joins recorded. Pure.

The one home of the rules that put independently decoded text together:

1. Inside the micro chunker (`assemble_pieces`): each decode window's
   segments are split where the audio pauses, their starts moved to where
   speech begins (`segmentation.pauses`), and each segment records the join
   before it: same window, new piece, in speech or in a pause, the gap.
2. In the orchestrator (`assemble_chunks`): every chunk's segments are moved
   to media time, each word kept by the one chunk whose own span holds it,
   duplicates dropped, times clipped and made non-overlapping, and the joins
   recorded again in media time, now with chunk joins.
3. `join_text`: the segments' texts as one string.

No Triton and no aiohttp: both callers convert their records to these.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from longscribe_core.audio import Envelope
from longscribe_core.segmentation.pauses import snap_start, split_at_pauses
from longscribe_core.segments import ChunkResult, Join, Segment, Word

OVERLAP_EPS_S = 0.02  # one Whisper timestamp step
MIN_SEGMENT_S = 0.02  # a kept segment lasts at least one timestamp step: subtitles need start < end


@dataclass(frozen=True)
class ChunkSpan:
    """Where one macro chunk lies in the media, as assembly needs it."""

    index: int
    start_s: float  # its own span [start_s, end_s) of the media
    end_s: float
    offset_s: float  # media time of the first sample the model saw (before start_s when read with overlap)
    in_speech: bool = False  # the cut at start_s fell in speech rather than in a pause


@dataclass(frozen=True)
class TimedText:
    """One segment of the finished transcript, in media time."""

    start_s: float
    end_s: float
    text: str
    language: str | None
    words: tuple[Word, ...] = ()  # in media time, inside [start_s, end_s], in order
    scores: Segment | None = field(default=None, compare=False)  # the model's segment: its confidence fields
    join: Join = field(default=Join(), compare=False)  # how it meets the segment before, in media time


def window_segments(segments: Iterable[Segment], window_id: int, in_speech: bool) -> list[Segment]:
    """Mark segments as heard by one decode window (any id unique in the chunk: `assemble_pieces` numbers them).

    `in_speech`: the cut where the window's own audio starts fell in speech.
    """
    return [replace(s, join=Join(kind="piece", piece=window_id, in_speech=in_speech)) for s in segments]


def _joined(prev: Join | None, prev_end_s: float, start_s: float, cur: Join, chunk_in_speech: bool = False) -> Join:
    """The join before a segment that comes from window `cur` (piece, chunk), after one from `prev`."""
    if prev is None:
        return replace(cur, kind="start", in_speech=False, gap_s=0.0)
    gap_s = max(0.0, start_s - prev_end_s)
    if cur.chunk != prev.chunk:
        return replace(cur, kind="chunk", in_speech=chunk_in_speech, gap_s=gap_s)
    if cur.piece != prev.piece:
        return replace(cur, kind="piece", gap_s=gap_s)
    return replace(cur, kind="segment", in_speech=False, gap_s=gap_s)


def assemble_pieces(per_window: Iterable[Sequence[Segment]], envelope: Envelope, levels: Envelope) -> list[Segment]:
    """Windows' segments (marked by `window_segments`), in order -> the chunk's segments with their joins.

    Times in samples' seconds from the chunk's start; `envelope` and `levels`
    [n] are the chunk's energy and local speech level.
    """
    parts = [
        snap_start(part, envelope, levels)
        for group in per_window
        for seg in group
        for part in split_at_pauses(seg, envelope, levels)
    ]
    numbers: dict[int, int] = {}
    out: list[Segment] = []
    for seg in parts:
        cur = replace(seg.join, piece=numbers.setdefault(seg.join.piece, len(numbers)), chunk=0)
        prev = out[-1] if out else None
        join = _joined(prev.join if prev else None, prev.end_s if prev else 0.0, seg.start_s, cur)
        out.append(replace(seg, join=join))
    return out


def _clamped_words(words: Sequence[Word], start_s: float, end_s: float) -> tuple[Word, ...]:
    """Words inside [start_s, end_s] and monotonic, whatever the alignment said."""
    out: list[Word] = []
    cursor = start_s
    for w in words:
        w_start = min(max(w.start_s, cursor), end_s)
        w_end = min(max(w.end_s, w_start), end_s)
        out.append(replace(w, text=w.text.strip(), start_s=w_start, end_s=w_end))
        cursor = w_end
    return tuple(out)


def assemble_chunks(parts: Sequence[tuple[ChunkSpan, ChunkResult]], duration_s: float) -> list[TimedText]:
    """Shift each chunk's segments by its read offset and stitch them in order.

    A chunk read with overlap also hears its neighbours' edges: each word
    belongs to the chunk whose own span [start_s, end_s) holds its middle
    (a segment without words, by the segment's middle), so a sentence heard
    by both chunks is kept once and a word cut at the boundary is kept once
    (the first chunk's span starts at -inf, the last one's ends at +inf). A
    segment wholly inside what is already kept is a duplicate. Times are
    clipped to the media and made non-overlapping.
    """
    merged: list[TimedText] = []
    ordered = sorted(parts, key=lambda p: p[0].start_s)
    for n, (chunk, result) in enumerate(ordered):
        own_from = chunk.start_s if n > 0 else -math.inf
        own_to = chunk.end_s if n < len(ordered) - 1 else math.inf
        for raw in result.segments:
            if not raw.text.strip():
                continue  # a blank segment must not move the cursor
            seg = raw.shifted(chunk.offset_s).owned_part(own_from, own_to)
            if seg is None:
                continue
            start = min(max(0.0, seg.start_s), duration_s)
            end = min(max(start, seg.end_s), duration_s)
            prev_end = merged[-1].end_s if merged else 0.0
            if merged and end <= prev_end - OVERLAP_EPS_S and start < prev_end:
                continue
            start = min(max(start, prev_end), duration_s)
            end = min(max(end, start + MIN_SEGMENT_S), duration_s)
            if end <= start:
                continue  # nothing left of it inside the media
            prev = merged[-1].join if merged else None
            join = _joined(prev, prev_end, start, replace(seg.join, chunk=chunk.index), chunk.in_speech)
            words = _clamped_words(seg.words, start, end)
            merged.append(TimedText(start, end, seg.text.strip(), result.language, words, seg, join))
    return merged


def join_text(segments: Sequence[TimedText]) -> str:
    return " ".join(s.text for s in segments)
