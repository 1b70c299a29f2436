"""The readability measures: formatted WER keeps case and punctuation, join artifacts count what joins leave."""

from __future__ import annotations

from tests.readability import formatted_wer, join_artifacts, tokens

REFERENCE = "Printing, in the only sense with which we are concerned, differs from most arts. It is modern."


def test_punctuation_marks_are_tokens_of_their_own_and_case_is_kept() -> None:
    assert tokens("Hello, World! isn't it?") == ["Hello", ",", "World", "!", "isn't", "it", "?"]


def test_formatted_wer_is_zero_only_for_the_same_case_and_punctuation() -> None:
    assert formatted_wer(REFERENCE, REFERENCE) == 0.0
    assert formatted_wer(REFERENCE, REFERENCE.replace("It is", "it is")) > 0.0
    assert formatted_wer(REFERENCE, REFERENCE.replace("arts.", "arts")) > 0.0
    assert formatted_wer(REFERENCE, REFERENCE.replace(",", "")) > 0.0


def test_formatted_wer_ignores_other_punctuation() -> None:
    assert formatted_wer('He said "lower-case" letters.', "He said lower case letters.") == 0.0


def test_a_clean_transcript_has_no_join_artifacts() -> None:
    assert join_artifacts(REFERENCE, REFERENCE).per_1000_words == 0.0


def test_a_lower_case_sentence_start_after_a_stop_is_an_artifact() -> None:
    found = join_artifacts(REFERENCE, "Printing, in the only sense. with which we are concerned, differs.")
    assert found.lower_sentence_starts == 1 and found.capitalised_mid_sentence == 0


def test_a_capitalised_common_word_in_mid_sentence_is_an_artifact_but_not_i_or_a_name() -> None:
    reference = "And I think the Middle Ages were when the craftsmen took care."
    found = join_artifacts(reference, "And I think the Middle Ages, When the craftsmen Took care.")
    assert (found.lower_sentence_starts, found.capitalised_mid_sentence) == (0, 2)
    assert found.per_1000_words == 1000 * 2 / 11


def test_abbreviations_do_not_end_a_sentence() -> None:
    reference = "The letters, i.e. the types, etc. and Mr. Smith."
    assert join_artifacts(reference, reference).per_1000_words == 0.0
