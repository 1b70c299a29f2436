"""Speaker labels onto the transcript: each word to the speaker heard most while it was said.

A segment whose words belong to two speakers is split between them at a word
boundary, so no segment spans two speakers. A segment without words (an
engine that did not align them) takes the speaker who covers it most, whole.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from longscribe_core.segments import Join, Segment, Voice, Word


def speaker_name(label: int) -> str:
    """The anonymous name of speaker `label`: SPEAKER_00, SPEAKER_01, ..."""
    return f"SPEAKER_{label:02d}"


@dataclass(frozen=True)
class _Timeline:
    """Voices sorted by start, for the question "who was heard in [a, b)?" in O(log n + hits)."""

    starts: list[float]
    ends: np.ndarray
    labels: np.ndarray
    longest: float  # the longest voice: no voice starting before a - longest reaches a

    @classmethod
    def of(cls, voices: Sequence[Voice], labels: Sequence[int]) -> _Timeline:
        if len(voices) != len(labels):
            raise ValueError(f"{len(voices)} voices but {len(labels)} labels")
        order = sorted(range(len(voices)), key=lambda i: voices[i].start_s)
        starts = [voices[i].start_s for i in order]
        ends = np.array([voices[i].end_s for i in order], dtype=np.float64)
        spans = ends - np.array(starts, dtype=np.float64)
        longest = float(spans.max()) if len(spans) else 0.0
        return cls(starts, ends, np.asarray(labels, dtype=np.int64)[order], longest)

    def speaker(self, a: float, b: float) -> int:
        """The label covering [a, b) longest; the nearest voice's when none covers it."""
        lo = bisect.bisect_left(self.starts, a - self.longest)
        hi = bisect.bisect_left(self.starts, max(b, a + 1e-9))
        cover: dict[int, float] = {}
        for i in range(lo, hi):
            overlap = min(b, self.ends[i]) - max(a, self.starts[i])
            if overlap > 0:
                cover[int(self.labels[i])] = cover.get(int(self.labels[i]), 0.0) + overlap
        if cover:
            return max(cover, key=lambda label: (cover[label], -label))
        return self._nearest((a + b) / 2)

    def _nearest(self, t: float) -> int:
        i = bisect.bisect_left(self.starts, t)
        # the first voice after t, the last before it, and any earlier one long enough to end later
        near = {i - 1, i, *range(bisect.bisect_left(self.starts, t - self.longest), i)}
        candidates = sorted(j for j in near if 0 <= j < len(self.starts))
        best = min(candidates, key=lambda j: max(self.starts[j] - t, t - self.ends[j], 0.0))
        return int(self.labels[best])


def _runs(words: tuple[Word, ...]) -> list[tuple[Word, ...]]:
    """Consecutive words of one speaker."""
    runs: list[list[Word]] = []
    for word in words:
        if runs and runs[-1][-1].speaker == word.speaker:
            runs[-1].append(word)
        else:
            runs.append([word])
    return [tuple(run) for run in runs]


def _split(segment: Segment, words: tuple[Word, ...]) -> list[Segment]:
    """The segment with its labelled words, cut where the speaker changes."""
    runs = _runs(words)
    if len(runs) == 1:
        return [replace(segment, words=words, speaker=words[0].speaker)]
    parts = []
    for k, run in enumerate(runs):
        first, last = k == 0, k == len(runs) - 1
        join = segment.join if first else Join("segment", segment.join.piece, segment.join.chunk, False, 0.0)
        if not first:
            join = replace(join, gap_s=max(0.0, run[0].start_s - runs[k - 1][-1].end_s))
        parts.append(
            replace(
                segment,
                start_s=segment.start_s if first else run[0].start_s,
                end_s=segment.end_s if last else run[-1].end_s,
                text="".join(w.text for w in run).strip(),
                words=run,
                join=join,
                speaker=run[0].speaker,
            )
        )
    return parts


def label_segments(segments: Sequence[Segment], voices: Sequence[Voice], labels: Sequence[int]) -> list[Segment]:
    """Segments with speakers ("SPEAKER_00", ...), split so that none spans two; `labels[i]` is voices[i]'s.

    With no voices at all the segments come back as they were (nothing to tell).
    """
    if not voices:
        return list(segments)
    timeline = _Timeline.of(voices, labels)
    out: list[Segment] = []
    for segment in segments:
        if not segment.words:
            name = speaker_name(timeline.speaker(segment.start_s, segment.end_s))
            out.append(replace(segment, speaker=name))
            continue
        words = tuple(replace(w, speaker=speaker_name(timeline.speaker(w.start_s, w.end_s))) for w in segment.words)
        out.extend(_split(segment, words))
    return out
