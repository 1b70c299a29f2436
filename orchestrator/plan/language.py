"""One language per file: Whisper's guess on the first speech of the media, before the fan-out.

Each piece guessing for itself lets a noisy or short piece come out in another
language (and its text translated or garbled); the file's first speech,
a few 30 s windows of it, decides once for every chunk. Pure.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from longscribe_core.audio import (
    MAX_WINDOW_SAMPLES,
    SAMPLE_RATE,
    FloatAudio,
    Int16Audio,
    int16_to_float,
    smoothed_energy,
    speech_level,
)
from longscribe_core.segments import ChunkResult

DETECT_SPAN_S = 120.0  # how far into the media to look for speech
MAX_WINDOWS = 3  # windows asked, the most speech-filled first
MIN_SPEECH_SHARE = 0.25  # a window with less speech than this is not asked
ENVELOPE_WIDTH = SAMPLE_RATE // 10  # 0.1 s, the width speech levels are set for


def speech_windows(pcm: Int16Audio) -> list[FloatAudio]:
    """Up to MAX_WINDOWS 30 s windows tiled from the first speech, those holding the most speech."""
    audio = int16_to_float(pcm)
    envelope = smoothed_energy(audio, ENVELOPE_WIDTH)
    speaking = envelope > speech_level(envelope)
    if not speaking.any():
        return []
    first = int(np.argmax(speaking))
    starts = range(first, len(audio), MAX_WINDOW_SAMPLES)
    shares = [(float(speaking[lo : lo + MAX_WINDOW_SAMPLES].mean()), lo) for lo in starts]
    chosen = sorted((lo for share, lo in sorted(shares, reverse=True)[:MAX_WINDOWS] if share >= MIN_SPEECH_SHARE))
    return [audio[lo : lo + MAX_WINDOW_SAMPLES] for lo in chosen]


def vote(guesses: list[ChunkResult]) -> str | None:
    """The language with the most probability summed over the windows."""
    weight: dict[str, float] = defaultdict(float)
    for guess in guesses:
        if guess.language:
            weight[guess.language] += guess.language_probability or 0.0
    return max(weight, key=weight.__getitem__) if weight else None
