"""Whisper's timestamp rules, applied after decoding: one function for both engines.

CTranslate2 decodes under the rules (the first token a timestamp within 1 s, timestamps in
pairs, none earlier than the last); TensorRT-LLM decodes without them, so what it returns
gets them applied afterwards. On anything a rule-following decoder can produce the function
is the identity, which keeps the CTranslate2 path as it was.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from longscribe_core.engines.base import MAX_INITIAL_TIMESTAMP_INDEX
from longscribe_core.engines.timestamps import apply_timestamp_rules, split_on_timestamps

from .test_timestamps import EOT, TS, ts

LAST_TS = TS + 1500  # <|30.00|>


def ruled(tokens: list[int]) -> list[int]:
    return apply_timestamp_rules(tokens, TS, EOT, MAX_INITIAL_TIMESTAMP_INDEX)


def allowed(sequence: list[int]) -> tuple[bool, bool, int, int]:
    """What CTranslate2's ApplyTimestampRules lets come next: (text?, end?, lowest timestamp, highest timestamp)."""
    if not sequence:
        return False, False, TS, TS + MAX_INITIAL_TIMESTAMP_INDEX
    times = [t for t in sequence if t >= TS]
    lowest = times[-1] if times else TS
    last_was_time = sequence[-1] >= TS
    penultimate_was_time = len(sequence) < 2 or sequence[-2] >= TS
    if last_was_time and penultimate_was_time:
        return True, True, LAST_TS + 1, LAST_TS  # text (or the end) only
    if last_was_time:
        return False, True, lowest, LAST_TS  # the opening timestamp owed, or the end
    return True, True, lowest, LAST_TS


@st.composite
def decoded_under_the_rules(draw: st.DrawFn) -> list[int]:
    """A sequence a decoder applying the rules could return, whatever the model wanted."""
    sequence: list[int] = []
    for _ in range(draw(st.integers(0, 40))):
        text, end, lowest, highest = allowed(sequence)
        choices = ["text"] * text + ["end"] * end + ["time"] * (lowest <= highest)
        choice = draw(st.sampled_from(choices))
        if choice == "end":
            return sequence + [EOT]
        sequence.append(draw(st.integers(0, EOT - 1)) if choice == "text" else draw(st.integers(lowest, highest)))
    return sequence


def every_timestamp_allowed(tokens: list[int]) -> bool:
    """Each timestamp is one the rules allow where it stands (text is never dropped, so text may stand
    where a timestamp was owed: split_on_timestamps reads a lone closing timestamp as the next opening)."""
    return all(
        lowest <= t <= highest
        for i, t in enumerate(tokens)
        if t >= TS
        for _, _, lowest, highest in [allowed(tokens[:i])]
    )


TOKENS = st.lists(st.one_of(st.integers(0, EOT - 1), st.integers(TS, LAST_TS)), max_size=60)


@given(decoded_under_the_rules())
def test_what_a_rule_following_decoder_returns_is_kept_as_it_is(tokens: list[int]) -> None:
    assert ruled(tokens) == [t for t in tokens if t != EOT]


@given(TOKENS)
def test_any_output_comes_back_obeying_the_rules_with_every_text_token(tokens: list[int]) -> None:
    out = ruled(tokens)
    assert [t for t in out if t < TS] == [t for t in tokens if t < TS]
    assert every_timestamp_allowed(out)
    assert ruled(out) == out


@given(TOKENS, st.floats(0.0, 30.0))
def test_the_spans_of_ruled_output_never_run_backwards(tokens: list[int], duration: float) -> None:
    spans = split_on_timestamps(ruled(tokens), TS, EOT, duration)
    assert all(s.start_s <= s.end_s for s in spans)
    assert all(a.end_s <= b.start_s for a, b in pairwise(spans))


def test_a_backwards_timestamp_is_dropped_and_its_text_runs_on() -> None:
    tokens = [ts(0.0), 11, ts(2.0), ts(2.0), 12, ts(1.0), 13, ts(3.0), EOT]
    assert ruled(tokens) == [ts(0.0), 11, ts(2.0), ts(2.0), 12, 13, ts(3.0)]
    spans = split_on_timestamps(ruled(tokens), TS, EOT, 30.0)
    assert [(s.start_s, s.end_s, s.tokens) for s in spans] == [(0.0, 2.0, (11,)), (2.0, 3.0, (12, 13))]


def test_a_backwards_opening_timestamp_is_dropped_too() -> None:
    assert ruled([ts(0.0), 11, ts(2.0), ts(1.5), 12, ts(3.0)]) == [ts(0.0), 11, ts(2.0), 12, ts(3.0)]


def test_the_first_timestamp_comes_within_one_second() -> None:
    assert ruled([ts(4.0), 11, ts(5.0)]) == [ts(1.0), 11, ts(5.0)]
    assert ruled([ts(0.6), 11, ts(5.0)]) == [ts(0.6), 11, ts(5.0)]


def test_timestamps_come_in_pairs_at_most() -> None:
    assert ruled([ts(0.0), ts(0.4), 11, ts(1.0), ts(1.0), ts(1.2), 12]) == [ts(0.0), 11, ts(1.0), ts(1.0), 12]


def test_end_of_text_ends_it_and_text_first_is_left_to_split() -> None:
    assert ruled([ts(0.0), 11, ts(1.0), EOT, 12]) == [ts(0.0), 11, ts(1.0)]
    assert ruled([11, 12, ts(1.2)]) == [11, 12, ts(1.2)]  # split_on_timestamps starts it at 0
