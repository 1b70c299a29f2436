"""Whisper's timestamp tokens -> time-bracketed spans of text tokens."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longscribe_core.engines.timestamps import TIME_PRECISION_S, TokenSpan, split_on_timestamps

EOT = 50_256
TS = 50_364  # <|0.00|>; <|t|> is TS + t / 0.02


def ts(seconds: float) -> int:
    return TS + int(round(seconds / TIME_PRECISION_S))


def test_bracketed_runs_become_spans() -> None:
    tokens = [ts(0.0), 11, 12, ts(1.0), ts(1.0), 13, ts(2.5), EOT]
    assert split_on_timestamps(tokens, TS, EOT, 30.0) == [
        TokenSpan(0.0, 1.0, (11, 12)),
        TokenSpan(1.0, 2.5, (13,)),
    ]


def test_a_run_without_closing_timestamp_ends_at_the_audio_duration() -> None:
    spans = split_on_timestamps([ts(0.0), 11, ts(3.0), ts(3.0), 12, 13], TS, EOT, 7.3)
    assert spans[-1] == TokenSpan(3.0, 7.3, (12, 13))


def test_text_after_a_lone_closing_timestamp_starts_at_that_time() -> None:
    spans = split_on_timestamps([ts(0.0), 1, 2, ts(1.0), 3, ts(2.0)], TS, EOT, 30.0)
    assert spans == [TokenSpan(0.0, 1.0, (1, 2)), TokenSpan(1.0, 2.0, (3,))]


def test_text_before_any_timestamp_starts_at_zero() -> None:
    assert split_on_timestamps([11, 12, ts(1.2)], TS, EOT, 30.0) == [TokenSpan(0.0, 1.2, (11, 12))]
    assert split_on_timestamps([11, 12], TS, EOT, 4.0) == [TokenSpan(0.0, 4.0, (11, 12))]


def test_end_of_text_stops_parsing() -> None:
    tokens = [ts(0.0), 11, ts(1.0), EOT, ts(1.0), 99, ts(2.0)]
    assert split_on_timestamps(tokens, TS, EOT, 30.0) == [TokenSpan(0.0, 1.0, (11,))]


def test_the_later_of_repeated_opening_timestamps_opens_the_span() -> None:
    spans = split_on_timestamps([ts(0.0), ts(0.4), 11, ts(1.0)], TS, EOT, 30.0)
    assert spans == [TokenSpan(0.4, 1.0, (11,))]


def test_timestamps_past_the_audio_are_clamped_to_its_duration() -> None:
    spans = split_on_timestamps([ts(0.0), 11, ts(1.0), ts(1.0), 12, ts(29.0)], TS, EOT, 2.0)
    assert spans == [TokenSpan(0.0, 1.0, (11,)), TokenSpan(1.0, 2.0, (12,))]


def test_no_text_gives_no_spans() -> None:
    assert split_on_timestamps([ts(0.0), ts(1.0), EOT], TS, EOT, 30.0) == []
    assert split_on_timestamps([], TS, EOT, 30.0) == []


TOKENS = st.lists(st.one_of(st.integers(0, TS - 1), st.integers(TS, TS + 1500)), max_size=60)


@given(TOKENS, st.floats(0.0, 30.0))
def test_times_never_leave_zero_to_duration(tokens: list[int], duration: float) -> None:
    for span in split_on_timestamps(tokens, TS, EOT, duration):
        assert 0.0 <= span.start_s <= duration
        assert 0.0 <= span.end_s <= duration
        assert span.tokens and all(t < TS and t != EOT for t in span.tokens)


@st.composite
def well_formed(draw: st.DrawFn) -> tuple[list[int], list[TokenSpan], float]:
    """`<|a|> text <|b|>` pairs with rising times, as Whisper's timestamp rules produce."""
    steps = sorted(draw(st.lists(st.integers(0, 1500), min_size=2, max_size=16)))
    duration = draw(st.floats(0.0, 30.0))
    tokens: list[int] = []
    expected: list[TokenSpan] = []
    for a, b in zip(steps[::2], steps[1::2], strict=False):
        text = tuple(draw(st.lists(st.integers(0, EOT - 1), min_size=1, max_size=5)))
        tokens += [TS + a, *text, TS + b]
        start, end = (min(x * TIME_PRECISION_S, duration) for x in (a, b))
        expected.append(TokenSpan(start, end, text))
    return tokens + [EOT], expected, duration


@given(well_formed())
def test_well_formed_sequences_give_back_their_ordered_spans(case: tuple[list[int], list[TokenSpan], float]) -> None:
    tokens, expected, duration = case
    spans = split_on_timestamps(tokens, TS, EOT, duration)
    assert spans == expected
    assert all(a.end_s <= b.start_s for a, b in pairwise(spans))


@pytest.mark.parametrize("duration", [0.0, 0.5, 29.98])
def test_a_lone_opening_timestamp_with_text_runs_to_the_duration(duration: float) -> None:
    spans = split_on_timestamps([ts(0.0), 11], TS, EOT, duration)
    assert spans == [TokenSpan(0.0, duration, (11,))]
