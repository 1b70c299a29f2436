"""Chunk results -> one ordered, non-overlapping transcript in media time. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from longscribe_core.segments import ChunkResult, Segment, Word
from orchestrator.plan.macro import MacroChunk

OVERLAP_EPS_S = 0.02  # one Whisper timestamp step
MIN_SEGMENT_S = 0.02  # a kept segment lasts at least one timestamp step: subtitles need start < end


@dataclass(frozen=True)
class TimedText:
    start_s: float
    end_s: float
    text: str
    language: str | None
    words: tuple[Word, ...] = ()  # in media time, inside [start_s, end_s], in order
    scores: Segment | None = field(default=None, compare=False)  # the model's segment: its confidence fields


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


def merge_chunks(parts: Sequence[tuple[MacroChunk, ChunkResult]], duration_s: float) -> list[TimedText]:
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
        merge_chunk(merged, chunk, result, first=n == 0, last=n == len(ordered) - 1, duration_s=duration_s)
    return merged


def merge_chunk(
    merged: list[TimedText], chunk: MacroChunk, result: ChunkResult, first: bool, last: bool, duration_s: float
) -> None:
    """Append one chunk's segments to `merged`, the chunks before it already there (merge_chunks' step).

    Reads only merged[-1], so a caller that keeps the merge going chunk by chunk (progress) may
    pass just the last kept segment."""
    own_from = -math.inf if first else chunk.start_s
    own_to = math.inf if last else chunk.end_s
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
        words = _clamped_words(seg.words, start, end)
        merged.append(TimedText(start, end, seg.text.strip(), result.language, words, seg))


def join_text(segments: Sequence[TimedText]) -> str:
    return " ".join(s.text for s in segments)
