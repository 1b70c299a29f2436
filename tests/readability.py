"""How a transcript reads, against a cased, punctuated reference. Pure; used by the tests and bench/accuracy.py.

- Formatted WER: case kept, and `. , ? !` scored as words of their own, as
  NeMo's punctuation-and-case WER does; other punctuation (quotes, hyphens,
  colons) only separates words.
- Join artifacts per 1,000 words: what text decoded in independent windows
  shows where the windows meet. A sentence that starts in lower case after
  `. ? !`, and a capitalised common word in mid-sentence (one the reference
  writes only in lower case).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SENTENCE_END = frozenset(".?!")
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[.,?!]")


def tokens(text: str) -> list[str]:
    """Words (case kept, inner apostrophes kept) and `. , ? !` as tokens of their own."""
    return _TOKEN.findall(text)


def formatted_wer(reference: str, hypothesis: str) -> float:
    import jiwer

    ref, hyp = " ".join(tokens(reference)), " ".join(tokens(hypothesis))
    if not ref:
        return float(bool(hyp))
    return float(jiwer.wer(ref, hyp))


def _is_word(token: str) -> bool:
    return token not in SENTENCE_END and token != ","


def lower_case_only(reference: str) -> set[str]:
    """Words the reference writes in lower case everywhere, capital-free even at a sentence start."""
    words = [t for t in tokens(reference) if _is_word(t)]
    capitalised = {w.lower() for w in words if w[0].isupper()}
    return {w for w in words if w.islower() and w not in capitalised}


@dataclass(frozen=True)
class JoinArtifacts:
    """Counts in the hypothesis, and their rate per 1,000 of its words."""

    lower_sentence_starts: int  # "... books. which were ..."
    capitalised_mid_sentence: int  # "... the Middle Ages, When the ..."
    words: int

    @property
    def per_1000_words(self) -> float:
        return 1000 * (self.lower_sentence_starts + self.capitalised_mid_sentence) / max(1, self.words)


ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "etc.", "vs.", "jr.", "sr."})


def _ends_sentence(word: str) -> bool:
    """A written word that closes a sentence: not an abbreviation ("etc.", "Mr.", "i.e.", "U.S.")."""
    core = word.rstrip("\"')]")
    if not core.endswith(tuple(SENTENCE_END)):
        return False
    return not (core.lower() in ABBREVIATIONS or core.rstrip(".").count(".") > 0)


def join_artifacts(reference: str, hypothesis: str) -> JoinArtifacts:
    common = lower_case_only(reference)
    lower_starts = capitalised = n_words = 0
    ended = True  # the text's start is a sentence start
    for written in hypothesis.split():
        word = tokens(written)[0] if tokens(written) else ""
        if word and word[0].isalpha():
            n_words += 1
            if ended:
                lower_starts += word[0].islower()
            elif word[0].isupper() and word != "I" and word.lower() in common:
                capitalised += 1
        ended = _ends_sentence(written)
    return JoinArtifacts(lower_starts, capitalised, n_words)
