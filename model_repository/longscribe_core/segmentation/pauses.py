"""Segment times from the audio's own pauses. Pure.

Whisper's segment times are coarse: tiny models say 0.00 whatever the leading
pause, and a segment often runs across a pause into the next sentence. The
energy envelope knows where speech starts and stops; the aligned words say
which text lies on each side of a pause.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from longscribe_core.audio import SAMPLE_RATE, Envelope
from longscribe_core.segments import Segment, Word

START_PAD_S = 0.1  # a snapped start sits this far before the first loud sample
MIN_SPLIT_PAUSE_S = 0.35  # a pause at least this long between two words ends a segment
WORD_ONSET_SLACK_S = 0.5  # how far an aligned word's start may sit from the pause before it


def snap_start(segment: Segment, envelope: Envelope, levels: Envelope) -> Segment:
    """Move a segment's start forward to where its speech begins, never past its end.

    Whisper often opens a segment where the previous one closed, so its start
    can lie on the last sound before a pause (another speaker's tail, noise).
    When the first aligned word comes just after a pause, speech begins after
    that pause, not before it.
    """
    lo = int(segment.start_s * SAMPLE_RATE)
    if segment.words:
        first = segment.words[0]
        pause = longest_pause(envelope, segment.start_s, first.start_s + WORD_ONSET_SLACK_S, levels)
        if pause is not None and pause[1] >= first.start_s - WORD_ONSET_SLACK_S:
            lo = max(lo, int(pause[1] * SAMPLE_RATE))
    hi = min(int(segment.end_s * SAMPLE_RATE), len(envelope))
    loud = np.flatnonzero(envelope[lo:hi] > levels[lo:hi]) if hi > lo else np.zeros(0, dtype=np.int64)
    if len(loud) == 0:
        return segment
    start_s = max(segment.start_s, (lo + int(loud[0])) / SAMPLE_RATE - START_PAD_S)
    start_s = min(start_s, segment.end_s)
    words = segment.words
    if words and words[0].start_s < start_s:
        first = replace(words[0], start_s=min(start_s, words[0].end_s))
        words = (first, *words[1:])
    return replace(segment, start_s=start_s, words=words)


def longest_pause(envelope: Envelope, lo_s: float, hi_s: float, levels: Envelope) -> tuple[float, float] | None:
    """The longest quiet run inside [lo_s, hi_s), as (start_s, end_s), if one is long enough to split at."""
    lo, hi = max(0, int(lo_s * SAMPLE_RATE)), min(len(envelope), int(hi_s * SAMPLE_RATE))
    if hi - lo < MIN_SPLIT_PAUSE_S * SAMPLE_RATE:
        return None
    quiet = np.concatenate(([False], envelope[lo:hi] <= levels[lo:hi], [False]))
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    starts, ends = edges[::2], edges[1::2]
    if len(starts) == 0:
        return None
    best = int(np.argmax(ends - starts))
    if ends[best] - starts[best] < MIN_SPLIT_PAUSE_S * SAMPLE_RATE:
        return None
    return (lo + int(starts[best])) / SAMPLE_RATE, (lo + int(ends[best])) / SAMPLE_RATE


def _from_words(template: Segment, words: list[Word], start_s: float, end_s: float) -> Segment:
    text = "".join(w.text for w in words).strip()
    return replace(template, start_s=start_s, end_s=max(start_s, end_s), text=text, words=tuple(words))


def split_at_pauses(segment: Segment, envelope: Envelope, levels: Envelope) -> list[Segment]:
    """Split a segment wherever its audio pauses between two of its words.

    The left part ends where the pause starts and the right part starts where
    it ends, so each part's times are the speech's own.
    """
    words = list(segment.words)
    if len(words) < 2:
        return [segment]
    parts: list[Segment] = []
    first, start_s = 0, segment.start_s
    for i in range(1, len(words)):
        pause = longest_pause(envelope, words[i - 1].mid_s, words[i].mid_s, levels)
        if pause is None:
            continue
        left = [replace(w, end_s=min(w.end_s, pause[0]), start_s=min(w.start_s, pause[0])) for w in words[first:i]]
        parts.append(_from_words(segment, left, start_s, pause[0]))
        first, start_s = i, max(pause[1] - START_PAD_S, pause[0])
        moved = max(words[i].start_s, start_s)
        words[i] = replace(words[i], start_s=moved, end_s=max(words[i].end_s, moved))
    if not parts:
        return [segment]
    parts.append(_from_words(segment, words[first:], start_s, max(segment.end_s, start_s)))
    return parts
