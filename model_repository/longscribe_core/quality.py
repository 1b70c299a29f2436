"""Whisper's own signals that a decode went wrong, and what counts as wrong.

The thresholds are openai/whisper's (and faster-whisper's) defaults:
- compression ratio above 2.4: the text repeats itself (a loop);
- mean token log-probability below -1.0: the decoder was guessing;
- no-speech probability above 0.6: the decoder believes the window is silent.
"""

from __future__ import annotations

import zlib

MAX_COMPRESSION_RATIO = 2.4
MIN_AVG_LOGPROB = -1.0
MAX_NO_SPEECH_PROB = 0.6
# Ours: a greedy decode that no temperature mends is kept only above this (mean token
# probability 22 %). Below it the decoder is guessing at noise or music, not hearing words:
# tiny.en's stock phrases on synthetic music score -1.76 to -1.87.
MIN_KEPT_LOGPROB = -1.5
# Greedy first; each failed decode is tried again hotter (openai/whisper's ladder)
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def compression_ratio(text: str) -> float:
    """UTF-8 bytes / zlib-compressed bytes: about 1-2 for speech, far more for a loop."""
    raw = text.encode("utf-8")
    if not raw:
        return 1.0
    return len(raw) / len(zlib.compress(raw))


def is_loop(ratio: float) -> bool:
    return ratio > MAX_COMPRESSION_RATIO


def is_unsure(avg_logprob: float) -> bool:
    return avg_logprob < MIN_AVG_LOGPROB


def has_words(text: str) -> bool:
    """Text with at least one letter or digit: '. . .' and '♪' are not speech."""
    return any(ch.isalnum() for ch in text)
