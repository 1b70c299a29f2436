"""Long pauses shortened before a macro chunk is cut into windows, and times mapped back after.

Every decode window costs a whole 30 s encoder pass, however much of it is
silence: a lecture's or a meeting's pauses filled a third of some windows.
Pauses of LONG_PAUSE_S or more, where the audio is far below the speech
level, are shortened to PAUSE_KEPT_S (half kept on each side, so a word's
edges and the pause itself stay audible), the shorter audio is cut and
decoded as before, and every segment and word time is mapped back to the
chunk's own time before the segments are assembled there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import NDArray

from longscribe_core.audio import SAMPLE_RATE
from longscribe_core.segments import Segment, Word

LONG_PAUSE_S = 1.0  # pauses this long or longer are shortened
PAUSE_KEPT_S = 0.5  # to this
# a pause is audio below this share of the local speech level: soft speech (often just under the
# level) must never be cut out, only what is surely silence or room noise
QUIET_SHARE = 0.5


@dataclass(frozen=True)
class Condensed:
    """The stretches [lo, hi) of a chunk that are kept, in order, and where each starts once joined."""

    kept: NDArray[np.int64]  # [k, 2]: lo, hi in the chunk's samples
    starts: NDArray[np.int64]  # [k]: where each kept stretch starts in the condensed audio

    def select(self, samples: NDArray[np.float32]) -> NDArray[np.float32]:
        """The kept stretches of a per-sample array (audio, envelope, levels), joined."""
        if len(self.kept) == 1:
            return samples[self.kept[0, 0] : self.kept[0, 1]]
        return np.concatenate([samples[lo:hi] for lo, hi in self.kept])

    def source_s(self, t_s: float, end: bool = False) -> float:
        """A condensed time -> the chunk's time. At a join of two stretches an end belongs to the
        stretch before it, a start to the stretch after it."""
        t = t_s * SAMPLE_RATE
        k = int(np.searchsorted(self.starts, t, side="left" if end else "right")) - 1
        k = min(max(k, 0), len(self.kept) - 1)
        lo, hi = self.kept[k]
        return float(min(lo + t - self.starts[k], hi)) / SAMPLE_RATE

    def segment(self, s: Segment) -> Segment:
        """A segment heard in the condensed audio, with its words, in the chunk's time."""
        words = tuple(self._word(w) for w in s.words)
        return replace(s, start_s=self.source_s(s.start_s), end_s=self.source_s(s.end_s, end=True), words=words)

    def _word(self, w: Word) -> Word:
        return replace(w, start_s=self.source_s(w.start_s), end_s=self.source_s(w.end_s, end=True))


def condense(quiet: NDArray[np.bool_]) -> Condensed:
    """Per-sample quiet [n] -> the stretches kept: all but the middle of every quiet run of LONG_PAUSE_S or more."""
    n = len(quiet)
    edges = np.flatnonzero(np.diff(np.concatenate(([False], quiet, [False])).astype(np.int8)))
    runs = edges.reshape(-1, 2)  # [lo, hi) of each quiet run
    long_runs = runs[runs[:, 1] - runs[:, 0] >= int(LONG_PAUSE_S * SAMPLE_RATE)]
    half = int(PAUSE_KEPT_S * SAMPLE_RATE) // 2
    cuts = np.stack([long_runs[:, 0] + half, long_runs[:, 1] - half], axis=1)  # dropped [lo, hi)
    los = np.concatenate(([0], cuts[:, 1]))
    his = np.concatenate((cuts[:, 0], [n]))
    kept = np.stack([los, his], axis=1).astype(np.int64)
    starts = np.concatenate(([0], np.cumsum(kept[:-1, 1] - kept[:-1, 0]))).astype(np.int64)
    return Condensed(kept, starts)
