"""Chunk results -> one ordered, non-overlapping transcript in media time. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from longscribe_core.segments import ChunkResult

from .chunking import MacroChunk

OVERLAP_EPS_S = 0.02  # one Whisper timestamp step


@dataclass(frozen=True)
class TimedText:
    start_s: float
    end_s: float
    text: str
    language: str | None


def merge_chunks(parts: Sequence[tuple[MacroChunk, ChunkResult]], duration_s: float) -> list[TimedText]:
    """Shift each chunk's segments by its read offset and stitch them in order.

    A chunk read with overlap also hears its neighbours' edges: a segment
    belongs to the chunk whose own span [start_s, end_s) holds its midpoint,
    so a sentence heard by both chunks is kept once (the first chunk's span
    starts at -inf, the last one's ends at +inf). A segment wholly inside what
    is already kept is a duplicate. Times are clipped to the media and made
    non-overlapping.
    """
    merged: list[TimedText] = []
    ordered = sorted(parts, key=lambda p: p[0].start_s)
    for n, (chunk, result) in enumerate(ordered):
        own_from = chunk.start_s if n > 0 else -math.inf
        own_to = chunk.end_s if n < len(ordered) - 1 else math.inf
        for seg in result.segments:
            if not seg.text.strip():
                continue  # a blank segment must not move the cursor
            start = min(max(0.0, seg.start_s + chunk.offset_s), duration_s)
            end = min(max(start, seg.end_s + chunk.offset_s), duration_s)
            if not own_from <= (seg.start_s + seg.end_s) / 2 + chunk.offset_s < own_to:
                continue
            prev_end = merged[-1].end_s if merged else 0.0
            if merged and end <= prev_end - OVERLAP_EPS_S and start < prev_end:
                continue
            start = max(start, prev_end)
            merged.append(TimedText(start, max(start, end), seg.text.strip(), result.language))
    return merged


def join_text(segments: Sequence[TimedText]) -> str:
    return " ".join(s.text for s in segments)
