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


def apply_timestamp_rules(
    tokens: Sequence[int],
    timestamp_begin: int,
    eot: int,
    max_initial_index: int,
) -> list[int]:
    """The timestamp tokens Whisper's decoding rules allow, after the fact.

    CTranslate2 applies these rules while it decodes (its `ApplyTimestampRules`,
    as openai/whisper's): the first token is a timestamp within
    `max_initial_index` steps (1 s), timestamps come in pairs (two in a row, then
    text), and none is earlier than the one before. A runtime that decodes
    without them (TensorRT-LLM here) gets them applied to what it returns: a
    timestamp the rules forbid is dropped, so its text runs on into the next span
    rather than becoming a backwards or empty one, and a late first timestamp is
    pulled back to the latest allowed. Text tokens are never dropped or moved.
    On a sequence that already obeys the rules (anything CTranslate2 returns)
    this is the identity.
    """
    kept: list[int] = []
    last_time: int | None = None  # the latest timestamp kept
    for token in tokens:
        if token == eot:
            break
        if token < timestamp_begin:
            kept.append(token)
            continue
        if not kept:  # the first token: within the initial limit
            token = min(token, timestamp_begin + max_initial_index)
        else:
            last_was_time = kept[-1] >= timestamp_begin
            penultimate_was_time = len(kept) < 2 or kept[-2] >= timestamp_begin
            if last_was_time and penultimate_was_time:
                continue  # a third in a row (or a second after the opening one): text must come first
            if last_time is not None and token < last_time:
                continue  # backwards
        kept.append(token)
        last_time = token
    return kept
