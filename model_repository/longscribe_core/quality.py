"""Whisper's own signals that a decode went wrong, and what counts as wrong.

The thresholds are openai/whisper's (and faster-whisper's) defaults:
- compression ratio above 2.4: the text repeats itself (a loop);
- mean token log-probability below -1.0: the decoder was guessing;
- no-speech probability above 0.6: the decoder believes the window is silent.
"""

from __future__ import annotations

import re
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
MAX_TEMPERATURE = FALLBACK_TEMPERATURES[-1]


def fallback_from(start: float) -> tuple[float, ...]:
    """The ladder a caller's temperature starts: 0 gives FALLBACK_TEMPERATURES as it is; t > 0 samples
    at t first, then only the hotter rungs (0.5 -> 0.5, 0.6, 0.8, 1.0), never cooler than asked."""
    if not 0.0 <= start <= MAX_TEMPERATURE:  # also NaN
        raise ValueError(f"temperature must be in [0, {MAX_TEMPERATURE:g}], got {start}")
    return (start, *(t for t in FALLBACK_TEMPERATURES if t > start))


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


# The last guard, after every signal above: Whisper's stock phrases, learnt from video subtitles, that it
# writes for a breath, room noise or music. A window whose whole text is made of these (or of their
# beginnings: "thank you for watching, thank you for") is kept only when the decoder is sure it heard
# speech (STOCK_* below) and the audio holds enough speech to say it (segmentation.micro).
STOCK_PHRASES = (
    "thank you for watching",
    "thanks for watching",
    "thank you for listening",
    "thanks for listening",
    "please subscribe",
    "like and subscribe",
    "subscribe to my channel",
    "don't forget to subscribe",
    "see you in the next video",
    "see you next time",
    "you",
)
STOCK_MAX_NO_SPEECH_PROB = 0.2  # a stock phrase must come from a window the decoder is sure holds speech,
STOCK_MIN_LOGPROB = -0.5  # and be decoded with confidence (mean token probability 61 %)
_NOT_WORDS = re.compile(r"[^\w' ]+")


def _stock_prefixes() -> frozenset[str]:
    out: set[str] = set()
    for phrase in STOCK_PHRASES:
        words = phrase.split()
        out.update(" ".join(words[:k]) for k in range(min(3, len(words)), len(words) + 1))
    return frozenset(out)


_STOCK = _stock_prefixes()


def is_stock_phrase(text: str) -> bool:
    """Text made only of stock phrases or their beginnings (three words at least: "thank you" is speech)."""
    clauses = [" ".join(c.split()) for c in _NOT_WORDS.sub(",", text.lower()).split(",")]
    clauses = [c for c in clauses if c]
    return bool(clauses) and all(c in _STOCK for c in clauses)
