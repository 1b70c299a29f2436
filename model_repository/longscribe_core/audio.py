"""Audio constants and silence search over 16 kHz mono PCM.

Pure numpy: used by the micro-chunk model to cut macro chunks and by the
orchestrator to move macro cuts into pauses.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatAudio = NDArray[np.float32]  # samples in [-1, 1)
Int16Audio = NDArray[np.int16]  # s16le samples
Envelope = NDArray[np.float32]  # float32: a 5-minute chunk's envelope is 19 MB, not 38

SAMPLE_RATE = 16_000  # Whisper's only input rate
MAX_WINDOW_S = 30.0  # Whisper's encoder sees exactly 30 s
MAX_WINDOW_SAMPLES = int(MAX_WINDOW_S * SAMPLE_RATE)  # 480_000
INT16_SCALE = 32_768.0  # s16le full scale
SPEECH_LEVEL = 0.1  # speech: the envelope passes this share of the chunk's loud level
LOUD_PERCENTILE = 95.0  # the chunk's "loud level"
# Below this mean |sample| over 0.1 s (about -50 dBFS) there is no speech whatever the chunk's loudness
SILENCE_FLOOR = 10 ** (-50 / 20)


def int16_to_float(pcm: Int16Audio) -> FloatAudio:
    """int16 PCM [n] -> float32 in [-1, 1) [n]."""
    return pcm.astype(np.float32) / INT16_SCALE


def smoothed_energy(pcm: FloatAudio, width_samples: int) -> Envelope:
    """|pcm| box-smoothed over `width_samples` [n] -> float32 envelope [n].

    A cumulative sum makes the box filter O(n) whatever the width; slices,
    not index arrays, keep a 5-minute chunk's temporaries to two arrays.
    Near the ends the box is cut short and averages what it covers.
    """
    n = len(pcm)
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    width = max(1, min(int(width_samples), n))
    half = width // 2
    csum = np.empty(n + 1)
    csum[0] = 0.0
    np.cumsum(np.abs(pcm), dtype=np.float64, out=csum[1:])
    envelope: Envelope = np.empty(n, dtype=np.float32)  # the sums stay float64: they run to millions
    # sample i averages [i - half, i - half + width), clipped to [0, n)
    inner = n - width + 1
    envelope[half : half + inner] = (csum[width:] - csum[:inner]) / width
    head = np.arange(half) - half + width  # i < half: [0, i - half + width)
    envelope[:half] = csum[head] / head
    tail = np.arange(half + inner, n) - half  # the rest: [i - half, n)
    envelope[half + inner :] = (csum[n] - csum[tail]) / (n - tail)
    return envelope


def quietest_index(envelope: Envelope, lo: int, hi: int) -> int:
    """Index of the minimum of `envelope` in [lo, hi).

    Ties go to the middle of the quietest run, so a cut in a flat pause lands
    in its centre rather than at the edge of the next word.
    """
    lo, hi = max(0, lo), min(len(envelope), hi)
    if hi <= lo:
        raise ValueError(f"empty search range [{lo}, {hi})")
    window = envelope[lo:hi]
    quiet = np.flatnonzero(window <= window.min() + 1e-12)
    # the longest run of consecutive minima, then its centre
    breaks = np.flatnonzero(np.diff(quiet) > 1)
    starts = np.concatenate(([0], breaks + 1))
    ends = np.concatenate((breaks + 1, [len(quiet)]))
    best = int(np.argmax(ends - starts))
    run = quiet[starts[best] : ends[best]]
    return lo + int(run[len(run) // 2])


def plan_cuts(
    envelope: Envelope,
    max_len: int,
    min_len: int,
) -> list[tuple[int, int]]:
    """Split [0, len(envelope)) into pieces of at most `max_len` samples.

    Each cut is the quietest point in [start + min_len, start + max_len], the
    later part of the window, so pieces are long (few decoder calls) and end
    in a pause when one exists. Pieces tile the input: no gap, no overlap.
    """
    if max_len <= 0:
        raise ValueError("max_len must be positive")
    n = len(envelope)
    min_len = max(1, min(min_len, max_len))
    pieces: list[tuple[int, int]] = []
    start = 0
    while n - start > max_len:
        cut = quietest_index(envelope, start + min_len, start + max_len + 1)
        pieces.append((start, cut))
        start = cut
    if start < n:
        pieces.append((start, n))
    return pieces


def speech_level(envelope: Envelope) -> float:
    """The envelope level above which a short window (seconds) speaks."""
    if len(envelope) == 0:
        return SILENCE_FLOOR
    return max(SILENCE_FLOOR, SPEECH_LEVEL * float(np.percentile(envelope, LOUD_PERCENTILE)))
