"""A window transcribed without timestamp tokens is timed by its aligned words, one segment per sentence."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from longscribe_core.engines.ct2 import _sentences
from longscribe_core.engines.timestamps import TokenSpan
from longscribe_core.engines.words import SPAN_LEAD_S, sentence_spans
from longscribe_core.segments import Word


def aligned(*texts: str, gap_s: float = 0.0) -> list[tuple[Word, int]]:
    """Words 0.4 s long, back to back (as DTW leaves them) or `gap_s` apart, one token each."""
    return [(Word(k * (0.4 + gap_s), k * (0.4 + gap_s) + 0.4, t, 0.9), 1) for k, t in enumerate(texts)]


def texts(groups: list[tuple[Word, ...]]) -> list[str]:
    return ["".join(w.text for w in g).strip() for g in groups]


def test_a_window_is_split_into_sentences_at_full_stops_question_and_exclamation_marks() -> None:
    words = aligned(" Ask", " not.", " Why?", " Because", " we", " can!", " And", " so")
    spans, groups = sentence_spans(tuple(range(len(words))), words)
    assert texts(groups) == ["Ask not.", "Why?", "Because we can!", "And so"]
    assert [s.tokens for s in spans] == [(0, 1), (2,), (3, 4, 5), (6, 7)]


def test_titles_abbreviations_initials_and_ellipses_end_no_sentence() -> None:
    words = aligned(" Mr.", " J.", " Smith", " met", " Dr.", " Jones,", " e.g.", " here...", " then", " left.")
    _, groups = sentence_spans(tuple(range(len(words))), words)
    assert texts(groups) == ["Mr. J. Smith met Dr. Jones, e.g. here... then left."]


def test_a_sentence_opens_a_little_before_its_first_word() -> None:
    words = aligned(" One.", " Two.", gap_s=1.0)
    spans, _ = sentence_spans((0, 1), words)
    assert spans[1].start_s == words[1][0].start_s - SPAN_LEAD_S
    assert spans[0].start_s == 0.0  # not before the window


def test_where_the_alignment_stretched_the_last_word_over_the_pause_the_sentences_do_not_overlap() -> None:
    words = aligned(" One.", " Two.")  # back to back: the first word's end is the second one's start
    spans, groups = sentence_spans((0, 1), words)
    assert spans[0].end_s == spans[1].start_s == words[1][0].start_s - SPAN_LEAD_S
    assert groups[0][-1].end_s == spans[0].end_s  # the stretched word ends with its sentence


@st.composite
def windows(draw: st.DrawFn) -> list[tuple[Word, int]]:
    n = draw(st.integers(1, 30))
    out, t = [], 0.0
    for _ in range(n):
        t += draw(st.sampled_from([0.0, 0.02, 0.3, 1.5]))
        length = draw(st.floats(0.0, 1.2))
        text = draw(st.sampled_from([" word", " end.", " why?", " Mr.", " ", " A."]))
        out.append((Word(t, t + length, text, 0.5), draw(st.integers(1, 3))))
        t += length
    return out


@given(windows())
def test_sentences_are_ordered_disjoint_hold_their_words_and_every_token_once(words: list[tuple[Word, int]]) -> None:
    tokens = tuple(range(sum(n for _, n in words)))
    spans, groups = sentence_spans(tokens, words)
    assert tuple(t for s in spans for t in s.tokens) == tokens or not spans
    assert len(spans) == len(groups)
    for a, b in pairwise(spans):
        assert a.start_s <= a.end_s <= b.start_s <= b.end_s
    for span, group in zip(spans, groups):
        assert group and all(w.text.strip() for w in group)
        assert span.start_s <= group[0].start_s and group[-1].end_s <= span.end_s + 1e-9
        assert all(w.start_s <= w.end_s for w in group)


def test_a_window_cut_short_by_the_token_limit_loses_its_unfinished_last_sentence() -> None:
    words = aligned(" Done.", " Also", " done.", " Not", " yet")
    spans, groups = _sentences([TokenSpan(0.0, 30.0, (0, 1, 2, 3, 4))], words, truncated=True)
    assert texts(groups) == ["Done.", "Also done."]
    assert spans[-1].tokens == (1, 2)


def test_a_window_of_one_unfinished_sentence_cut_short_loses_only_its_last_word() -> None:
    words = aligned(" On", " and", " on", " and")
    _, groups = _sentences([TokenSpan(0.0, 30.0, (0, 1, 2, 3))], words, truncated=True)
    assert texts(groups) == ["On and on"]


def test_nothing_decoded_or_nothing_aligned_gives_no_sentences() -> None:
    assert _sentences([], [], truncated=False) == ([], [])
    assert _sentences([TokenSpan(0.0, 30.0, (1, 2))], [], truncated=False) == ([], [])
