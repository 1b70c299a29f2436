"""Text at the joins between windows reads as one text: case and sentence punctuation reconciled from the join facts."""

from __future__ import annotations

from longscribe_core.assembly import LONG_PAUSE_S, SHORT_GAP_S, TimedText, join_text, reconcile_joins
from longscribe_core.segments import Join, JoinKind, Word


def timed(text: str, kind: JoinKind = "piece", gap_s: float = 0.2, language: str = "en") -> TimedText:
    words = tuple(Word(0.0, 0.1, f" {w}", 0.9) for w in text.split())
    return TimedText(0.0, 1.0, text, language, words, join=Join(kind=kind, gap_s=gap_s))


def reconciled(*parts: TimedText) -> list[str]:
    return [t.text for t in reconcile_joins([timed("Start.", kind="start"), *parts])][1:]


def test_a_window_initial_capital_is_lowered_when_the_sentence_goes_on() -> None:
    assert reconciled(timed("by a similar process,"), timed("Produced the block books")) == [
        "by a similar process,",
        "produced the block books",
    ]


def test_the_lowered_word_is_lowered_in_the_words_too() -> None:
    out = reconcile_joins([timed("in the Middle Ages,", kind="start"), timed("When the craftsmen")])
    assert out[1].words[0].text == " when"


def test_a_capital_after_a_sentence_end_stays() -> None:
    assert reconciled(timed("has never been surpassed."), timed("Printing, then")) == [
        "has never been surpassed.",
        "Printing, then",
    ]


def test_a_capital_after_a_pause_that_is_not_short_stays() -> None:
    assert reconciled(timed("and so"), timed("The next", gap_s=SHORT_GAP_S + 0.1))[1] == "The next"


def test_i_acronyms_and_names_the_transcript_capitalises_elsewhere_keep_their_capitals() -> None:
    out = reconciled(
        timed("as I said to"),
        timed("Paris in spring, and"),
        timed("I think the"),
        timed("BBC said, and to"),
        timed("Spring came, as it does in Paris, and"),  # a name: capitalised in mid-sentence here
    )
    assert [t.split()[0] for t in out] == ["as", "Paris", "I", "BBC", "spring"]


def test_a_window_final_full_stop_goes_when_the_next_window_goes_on_in_lower_case() -> None:
    out = reconcile_joins([timed("Produced the block books.", kind="start"), timed("which were the")])
    assert [t.text for t in out] == ["Produced the block books", "which were the"]
    assert out[0].words[-1].text == " books"


def test_a_long_pause_ends_a_sentence() -> None:
    out = reconciled(timed("the block books."), timed("which were", gap_s=LONG_PAUSE_S + 0.5))
    assert out == ["the block books.", "which were"]


def test_abbreviations_questions_and_exclamations_are_left_alone() -> None:
    assert reconciled(timed("missals, psalters, etc."), timed("produced by"))[0] == "missals, psalters, etc."
    assert reconciled(timed("what is it?"), timed("she asked"))[0] == "what is it?"


def test_an_ellipsis_at_a_short_join_goes_and_the_sentence_goes_on() -> None:
    assert reconciled(timed("Now..."), timed("As all books")) == ["Now", "as all books"]


def test_joins_inside_one_window_are_whispers_own_and_stay() -> None:
    out = reconciled(timed("the block books."), timed("which were", kind="segment"))
    assert out == ["the block books.", "which were"]
    assert reconciled(timed("by a process,"), timed("Produced the", kind="segment"))[1] == "Produced the"


def test_chunk_joins_are_reconciled_like_piece_joins() -> None:
    assert reconciled(timed("by a process,"), timed("Produced the", kind="chunk"))[1] == "produced the"


def test_text_in_languages_written_without_spaces_joins_without_one() -> None:
    parts = [timed("我们今天", "start", language="zh"), timed("去公园。", language="zh"), timed("Good", language="en")]
    assert join_text(parts) == "我们今天去公园。 Good"
    assert join_text([timed("こんにちは", "start", language="ja"), timed("世界", language="ja")]) == "こんにちは世界"
    assert join_text([timed("one", "start"), timed("two")]) == "one two"
