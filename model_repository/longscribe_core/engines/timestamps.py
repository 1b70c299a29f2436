"""Whisper's timestamp tokens -> segments.

With timestamps on, Whisper writes `<|t0|> text <|t1|><|t1|> text <|t2|> ...`:
each text run is bracketed by the times it starts and ends, in 20 ms steps
counted from the start of the 30 s window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

TIME_PRECISION_S = 0.02  # one timestamp token step


@dataclass(frozen=True)
class TokenSpan:
    """Text tokens with the window-relative times that bracket them."""

    start_s: float
    end_s: float
    tokens: tuple[int, ...]


def split_on_timestamps(
    tokens: Sequence[int],
    timestamp_begin: int,
    eot: int,
    duration_s: float,
) -> list[TokenSpan]:
    """Group generated ids into spans at timestamp tokens.

    A run with no closing timestamp (the decoder hit its length limit or ended
    without one) ends at `duration_s`, the true length of the audio; no time
    is ever placed past it.
    """
    spans: list[TokenSpan] = []
    start_s = 0.0  # text before any timestamp starts the window
    text: list[int] = []
    for token in tokens:
        if token == eot:
            break
        if token < timestamp_begin:
            text.append(token)
            continue
        time_s = min((token - timestamp_begin) * TIME_PRECISION_S, duration_s)
        if text:
            spans.append(TokenSpan(start_s, max(start_s, time_s), tuple(text)))
            text = []
        # a closing time also opens the next span, unless a later timestamp does
        start_s = time_s
    if text:
        spans.append(TokenSpan(start_s, max(start_s, duration_s), tuple(text)))
    return spans
