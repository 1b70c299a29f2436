"""Whisper's text tokens + a cross-attention alignment -> timed words. Pure.

The engine aligns every window's text tokens against the audio (dynamic time
warping over the alignment heads' attention, done by the engine). Here the
tokens are grouped into words, punctuation is attached to its word, and each
word gets the times where the alignment path enters its first and leaves its
last token.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from longscribe_core.engines.timestamps import TokenSpan
from longscribe_core.segments import Word

FRAMES_PER_S = 50  # the encoder's output: one frame per 20 ms
PREPENDED = "\"'“¿([{-"  # openai/whisper's defaults: these attach to the next word
APPENDED = "\"'.。,，!！?？:：”)]}、"  # and these to the previous one
# Languages written without spaces: words are split at unicode boundaries instead
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})
REPLACEMENT_CHAR = "\ufffd"  # what a partial UTF-8 sequence decodes to
# A sentence's span opens this long before its first aligned word, as Whisper's timestamp tokens open
# theirs before the speech: DTW places a first word late, having stretched the word before it over the
# pause. Never before the previous sentence's last word starts; the segment start is then moved to where
# the audio's speech begins (segmentation.pauses.snap_start).
SPAN_LEAD_S = 0.15
SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")
# a full stop that ends no sentence: titles and common abbreviations, and single letters ("J. R. R.")
ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "etc.", "vs.", "no.", "jr.", "sr.", "e.g.", "i.e."})


@dataclass
class _Word:
    text: str
    tokens: list[int]


def split_words(tokens: Sequence[int], decode: Callable[[list[int]], str], by_spaces: bool) -> list[_Word]:
    """Text tokens -> words, each the tokens that decode to it (no token is lost or shared)."""
    pieces: list[_Word] = []
    current: list[int] = []
    for token in tokens:
        current.append(token)
        text = decode(current)
        if REPLACEMENT_CHAR not in text:  # a whole unicode character (or more) is complete
            pieces.append(_Word(text, current))
            current = []
    if current:
        pieces.append(_Word(decode(current), current))
    if not by_spaces:
        return pieces
    words: list[_Word] = []
    for piece in pieces:
        starts_word = piece.text.startswith(" ") or piece.text.strip() in string.punctuation
        if not words or starts_word:
            words.append(_Word(piece.text, list(piece.tokens)))
        else:
            words[-1].text += piece.text
            words[-1].tokens += piece.tokens
    return words


def _merge_punctuation(words: list[_Word]) -> list[_Word]:
    """Attach opening marks to the next word and closing marks to the previous one."""
    out: list[_Word] = []
    pending: _Word | None = None
    for word in words:
        if pending is not None:
            word = _Word(pending.text + word.text, pending.tokens + word.tokens)
            pending = None
        if word.text.startswith(" ") and word.text.strip() and word.text.strip() in PREPENDED:
            pending = word
        elif out and word.text.strip() in APPENDED and word.text.strip() and not out[-1].text.endswith(" "):
            out[-1] = _Word(out[-1].text + word.text, out[-1].tokens + word.tokens)
        else:
            out.append(word)
    if pending is not None:
        out.append(pending)
    return out


def timed_words(
    tokens: Sequence[int],
    alignment: Sequence[tuple[int, int]],
    token_probs: Sequence[float],
    decode: Callable[[list[int]], str],
    language: str | None,
) -> list[tuple[Word, int]]:
    """One window's text tokens -> (word in window time, its token count), in order.

    `alignment` is the DTW path as (text index, frame index) pairs; a word
    starts at the frame where the path first reaches its first token.
    """
    if not tokens or not alignment:
        return []
    words = _merge_punctuation(split_words(tokens, decode, by_spaces=language not in NO_SPACE_LANGUAGES))
    text_idx = np.array([a[0] for a in alignment])
    frame_idx = np.array([a[1] for a in alignment])
    jumps = np.concatenate(([True], np.diff(text_idx) != 0))
    jump_s = frame_idx[jumps] / FRAMES_PER_S  # time at which the path reaches each token (and the end)
    bounds = np.concatenate(([0], np.cumsum([len(w.tokens) for w in words])))
    last = len(jump_s) - 1
    probs = np.asarray(token_probs, dtype=np.float64)
    out: list[tuple[Word, int]] = []
    for word, lo, hi in zip(words, bounds[:-1], bounds[1:]):
        start_s = float(jump_s[min(lo, last)])
        end_s = max(start_s, float(jump_s[min(hi, last)]))
        prob = float(probs[lo:hi].mean()) if hi <= len(probs) and hi > lo else 0.0
        out.append((Word(start_s, end_s, word.text, prob), len(word.tokens)))
    return out


def assign_to_spans(words: list[tuple[Word, int]], span_sizes: Sequence[int]) -> list[tuple[Word, ...]]:
    """Distribute words to consecutive spans of `span_sizes` tokens (a word goes where its first token is)."""
    out: list[list[Word]] = [[] for _ in span_sizes]
    ends = np.cumsum(span_sizes)
    consumed = 0
    for word, n_tokens in words:
        span = int(np.searchsorted(ends, consumed, side="right"))
        if span < len(out) and word.text.strip():
            out[span].append(word)
        consumed += n_tokens
    return [tuple(w) for w in out]


def _ends_sentence(text: str) -> bool:
    word = text.strip().lower()
    if not word.endswith(SENTENCE_ENDS) or word.endswith(".."):
        return False
    return word not in ABBREVIATIONS and not (len(word) == 2 and word[0].isalpha() and word[1] == ".")


def sentence_spans(
    tokens: Sequence[int], words: list[tuple[Word, int]]
) -> tuple[list[TokenSpan], list[tuple[Word, ...]]]:
    """A window's aligned words -> one span per sentence, timed by its words, and each span's words.

    What Whisper's timestamp tokens would have bracketed, from the words instead: a window decoded
    without timestamp tokens. Tokens of words without text (a lone space) stay with their span.
    """
    spans: list[TokenSpan] = []
    groups: list[tuple[Word, ...]] = []
    current: list[Word] = []
    first_token = consumed = 0
    floor_s = 0.0  # where the previous sentence's last word starts
    for k, (word, n_tokens) in enumerate(words):
        consumed += n_tokens
        if word.text.strip():
            current.append(word)
        last = k == len(words) - 1
        if current and (last or _ends_sentence(word.text)):
            span_tokens = tuple(tokens[first_token : len(tokens) if last else consumed])
            start_s = min(current[0].start_s, max(floor_s, current[0].start_s - SPAN_LEAD_S))
            if spans and spans[-1].end_s > start_s:
                # the alignment stretched the last sentence's last word over the pause: it ends where this opens
                before = groups[-1]
                groups[-1] = (*before[:-1], replace(before[-1], end_s=max(before[-1].start_s, start_s)))
                spans[-1] = replace(spans[-1], end_s=max(spans[-1].start_s, start_s))
            spans.append(TokenSpan(start_s, max(current[0].start_s, current[-1].end_s), span_tokens))
            groups.append(tuple(current))
            current, first_token, floor_s = [], consumed, current[-1].start_s
    if spans and first_token < len(tokens):  # tokens of textless words after the last sentence
        spans[-1] = replace(spans[-1], tokens=spans[-1].tokens + tuple(tokens[first_token:]))
    return spans, groups
