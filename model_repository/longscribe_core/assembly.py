"""Transcript assembly: decoded pieces -> a chunk's segments -> the ordered transcript, joins recorded. Pure.

The one home of the rules that put independently decoded text together:

1. Inside the micro chunker (`assemble_pieces`): each decode window's
   segments are split where the audio pauses, their starts moved to where
   speech begins (`segmentation.pauses`), and each segment records the join
   before it: same window, new piece, in speech or in a pause, the gap.
2. In the orchestrator (`assemble_chunks`, chunk by chunk `append_chunk`):
   every chunk's segments are moved to media time, each word kept by the one
   chunk whose own span holds it, duplicates dropped, times clipped and made
   non-overlapping, and the joins recorded again in media time, now with
   chunk joins. `transcript` = that, then step 3.
3. `reconcile_joins`: case and sentence punctuation mended where two
   windows meet, from the join facts (Whisper starts every window with a
   capital and likes to end it with a full stop).
4. `join_text`: the segments' texts as one string; languages written without
   spaces join without one.

No Triton and no aiohttp: both callers convert their records to these.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from longscribe_core.audio import Envelope
from longscribe_core.segmentation.pauses import snap_start, split_at_pauses
from longscribe_core.segments import ChunkResult, Join, Segment, Word

# Joins between windows whose text is reconciled, and the pauses that decide how. Chosen by measurement
# (bench/accuracy.py's cased recording, formatted WER and join artifacts, at 300/30 and 20/8): 0.5-3 s
# for SHORT_GAP_S and 2-10 s for LONG_PAUSE_S scored alike; 1 s for both cost 1.7 artifacts / 1000 words.
# Joins inside one window are Whisper's own, decoded with context: reconciling them changed nothing.
RECONCILED_JOINS = frozenset({"piece", "chunk"})
SHORT_GAP_S = 1.0  # a window-initial capital after a pause this short is the window's, not the sentence's
LONG_PAUSE_S = 2.0  # a pause this long ends a sentence: the full stop before it stays
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "yue"})  # written without spaces
ABBREVIATIONS = frozenset({"mr.", "mrs.", "ms.", "dr.", "st.", "etc.", "vs.", "no.", "jr.", "sr."})
OVERLAP_EPS_S = 0.02  # one Whisper timestamp step
MIN_SEGMENT_S = 0.02  # a kept segment lasts at least one timestamp step: subtitles need start < end


@dataclass(frozen=True)
class ChunkSpan:
    """Where one macro chunk lies in the media, as assembly needs it."""

    index: int
    start_s: float  # its own span [start_s, end_s) of the media
    end_s: float
    offset_s: float  # media time of the first sample the model saw (before start_s when read with overlap)
    in_speech: bool = False  # the cut at start_s fell in speech rather than in a pause


@dataclass(frozen=True)
class TimedText:
    """One segment of the finished transcript, in media time."""

    start_s: float
    end_s: float
    text: str
    language: str | None
    words: tuple[Word, ...] = ()  # in media time, inside [start_s, end_s], in order
    scores: Segment | None = field(default=None, compare=False)  # the model's segment: its confidence fields
    join: Join = field(default=Join(), compare=False)  # how it meets the segment before, in media time


def window_segments(segments: Iterable[Segment], window_id: int, in_speech: bool) -> list[Segment]:
    """Mark segments as heard by one decode window (any id unique in the chunk: `assemble_pieces` numbers them).

    `in_speech`: the cut where the window's own audio starts fell in speech.
    """
    return [replace(s, join=Join(kind="piece", piece=window_id, in_speech=in_speech)) for s in segments]


def _joined(prev: Join | None, prev_end_s: float, start_s: float, cur: Join, chunk_in_speech: bool = False) -> Join:
    """The join before a segment that comes from window `cur` (piece, chunk), after one from `prev`."""
    if prev is None:
        return replace(cur, kind="start", in_speech=False, gap_s=0.0)
    gap_s = max(0.0, start_s - prev_end_s)
    if cur.chunk != prev.chunk:
        return replace(cur, kind="chunk", in_speech=chunk_in_speech, gap_s=gap_s)
    if cur.piece != prev.piece:
        return replace(cur, kind="piece", gap_s=gap_s)
    return replace(cur, kind="segment", in_speech=False, gap_s=gap_s)


def assemble_pieces(per_window: Iterable[Sequence[Segment]], envelope: Envelope, levels: Envelope) -> list[Segment]:
    """Windows' segments (marked by `window_segments`), in order -> the chunk's segments with their joins.

    Times in samples' seconds from the chunk's start; `envelope` and `levels`
    [n] are the chunk's energy and local speech level.
    """
    parts = [
        snap_start(part, envelope, levels)
        for group in per_window
        for seg in group
        for part in split_at_pauses(seg, envelope, levels)
    ]
    numbers: dict[int, int] = {}
    out: list[Segment] = []
    for seg in parts:
        cur = replace(seg.join, piece=numbers.setdefault(seg.join.piece, len(numbers)), chunk=0)
        prev = out[-1] if out else None
        join = _joined(prev.join if prev else None, prev.end_s if prev else 0.0, seg.start_s, cur)
        out.append(replace(seg, join=join))
    return out


def _clamped_words(words: Sequence[Word], start_s: float, end_s: float) -> tuple[Word, ...]:
    """Words inside [start_s, end_s] and monotonic, whatever the alignment said."""
    out: list[Word] = []
    cursor = start_s
    for w in words:
        w_start = min(max(w.start_s, cursor), end_s)
        w_end = min(max(w.end_s, w_start), end_s)
        out.append(replace(w, text=w.text.strip(), start_s=w_start, end_s=w_end))
        cursor = w_end
    return tuple(out)


def append_chunk(
    merged: list[TimedText], chunk: ChunkSpan, result: ChunkResult, first: bool, last: bool, duration_s: float
) -> None:
    """Append one chunk's segments to `merged`, the chunks before it already there (`assemble_chunks`' step).

    Reads only merged[-1], so a caller that keeps the merge going chunk by
    chunk (progress prefixes) may pass just the last kept segment.
    """
    own_from = -math.inf if first else chunk.start_s
    own_to = math.inf if last else chunk.end_s
    for raw in result.segments:
        if not raw.text.strip():
            continue  # a blank segment must not move the cursor
        seg = raw.shifted(chunk.offset_s).owned_part(own_from, own_to)
        if seg is None:
            continue
        start = min(max(0.0, seg.start_s), duration_s)
        end = min(max(start, seg.end_s), duration_s)
        prev_end = merged[-1].end_s if merged else 0.0
        if merged and end <= prev_end - OVERLAP_EPS_S and start < prev_end:
            continue
        start = min(max(start, prev_end), duration_s)
        end = min(max(end, start + MIN_SEGMENT_S), duration_s)
        if end <= start:
            continue  # nothing left of it inside the media
        prev = merged[-1].join if merged else None
        join = _joined(prev, prev_end, start, replace(seg.join, chunk=chunk.index), chunk.in_speech)
        words = _clamped_words(seg.words, start, end)
        merged.append(TimedText(start, end, seg.text.strip(), result.language, words, seg, join))


def assemble_chunks(parts: Sequence[tuple[ChunkSpan, ChunkResult]], duration_s: float) -> list[TimedText]:
    """Shift each chunk's segments by its read offset and stitch them in order, joins recorded.

    A chunk read with overlap also hears its neighbours' edges: each word
    belongs to the chunk whose own span [start_s, end_s) holds its middle
    (a segment without words, by the segment's middle), so a sentence heard
    by both chunks is kept once and a word cut at the boundary is kept once
    (the first chunk's span starts at -inf, the last one's ends at +inf). A
    segment wholly inside what is already kept is a duplicate. Times are
    clipped to the media and made non-overlapping. The text is as decoded:
    `transcript` reconciles the joins too.
    """
    merged: list[TimedText] = []
    ordered = sorted(parts, key=lambda p: p[0].start_s)
    for n, (chunk, result) in enumerate(ordered):
        append_chunk(merged, chunk, result, first=n == 0, last=n == len(ordered) - 1, duration_s=duration_s)
    return merged


def transcript(parts: Sequence[tuple[ChunkSpan, ChunkResult]], duration_s: float) -> list[TimedText]:
    """The finished transcript's segments: chunks assembled, then their joins reconciled."""
    return reconcile_joins(assemble_chunks(parts, duration_s))


def written_with_spaces(language: str | None) -> bool:
    """Whether text in `language` (an ISO code, a region allowed: zh-TW) puts spaces between words: the one rule
    for joining texts, here, in subtitle cues and in OpenAI's stream deltas."""
    return (language or "").split("-")[0] not in NO_SPACE_LANGUAGES


def _spaced(t: TimedText) -> bool:
    return written_with_spaces(t.language)


def join_text(segments: Sequence[TimedText]) -> str:
    """The texts in order, one space apart, none between two in a language written without spaces."""
    out: list[str] = []
    for prev, seg in zip([None, *segments], segments):
        if prev is not None and (_spaced(prev) or _spaced(seg)):
            out.append(" ")
        out.append(seg.text)
    return "".join(out)


_FIRST_WORD = re.compile(r"^\W*?([^\W\d_][\w']*)")
_TOKEN = re.compile(r"[\w'.]+|[,;:?!]")


def _ends_sentence(text: str) -> bool:
    """Ends with . ? ! but not with an ellipsis or an abbreviation."""
    if not text.endswith((".", "?", "!")) or text.endswith(".."):
        return False
    last = text.rsplit(maxsplit=1)[-1].lower()
    return not (last in ABBREVIATIONS or last.count(".") > 1)  # "i.e." and "U.S." are no sentence end


def kept_capitals(timed: Iterable[TimedText], kept: set[str] | None = None) -> set[str]:
    """Words the transcript writes with a capital in mid-sentence somewhere: names, not window starts.

    Adds to `kept` when given, so a caller may gather them chunk by chunk."""
    kept = set() if kept is None else kept
    for t in timed:
        toks = _TOKEN.findall(t.text)
        for prev, tok in zip(toks, toks[1:]):
            word = tok.rstrip(".")
            if word[:1].isupper() and not _ends_sentence(prev):
                kept.add(word)
    return kept


def _lowerable(word: str, kept: set[str]) -> bool:
    """A capital that could be only the window's: not "I", not an acronym, not a name."""
    if word == "I" or word.startswith("I'") or word in kept:
        return False
    return word[0].isupper() and (len(word) == 1 or word[1:].islower())


def _strip_end(t: TimedText, suffix: str) -> TimedText:
    """`t` without `suffix` at its end, and its last word without it too."""
    words = t.words
    if words and words[-1].text.endswith(suffix):
        words = (*words[:-1], replace(words[-1], text=words[-1].text[: -len(suffix)]))
    return replace(t, text=t.text[: -len(suffix)].rstrip(), words=words)


def _lower_first(t: TimedText, word: str, at: int) -> TimedText:
    """`t` with `word`, found at `at` in its text, starting in lower case; its first word too."""
    lowered = word[0].lower() + word[1:]
    words = t.words
    if words and words[0].text.lstrip().startswith(word):
        w0 = words[0]
        lead = len(w0.text) - len(w0.text.lstrip())
        words = (replace(w0, text=w0.text[:lead] + lowered + w0.text[lead + len(word) :]), *words[1:])
    return replace(t, text=t.text[:at] + lowered + t.text[at + len(word) :], words=words)


def reconcile_joins(timed: Sequence[TimedText], kept: set[str] | None = None) -> list[TimedText]:
    """Case and sentence punctuation at the joins between windows, from the join facts. Pure.

    At a piece or chunk join between two texts written with spaces:
    - a full stop before a word in lower case goes, unless a pause of
      LONG_PAUSE_S lies between: the next window heard the sentence go on;
    - an ellipsis goes when the pause is under SHORT_GAP_S: the cut, not the
      speaker, trailed off;
    - then, where the text before does not end a sentence and the pause is
      under SHORT_GAP_S, the next window's first capital is lowered, unless
      it is "I", an acronym or a word the transcript capitalises elsewhere
      in mid-sentence.

    `kept`: `kept_capitals` of the whole transcript, for a caller that goes
    piece by piece: each call then gets the last segment of the call before
    (as this one left it) followed by the next ones, and keeps all but its
    last; the joined pieces equal one call over the whole.
    """
    out = list(timed)
    kept = kept_capitals(timed) if kept is None else kept
    for i in range(1, len(out)):
        prev, cur = out[i - 1], out[i]
        if cur.join.kind not in RECONCILED_JOINS or not (_spaced(prev) and _spaced(cur)):
            continue
        first = _FIRST_WORD.match(cur.text)
        if first is None:
            continue
        word, gap_s = first.group(1), cur.join.gap_s
        if _ends_sentence(prev.text) and prev.text.endswith(".") and word[0].islower() and gap_s < LONG_PAUSE_S:
            prev = out[i - 1] = _strip_end(prev, ".")
        if prev.text.endswith("...") and gap_s < SHORT_GAP_S:
            prev = out[i - 1] = _strip_end(prev, "...")
        if not _ends_sentence(prev.text) and gap_s < SHORT_GAP_S and _lowerable(word, kept):
            out[i] = _lower_first(cur, word, first.start(1))
    return out
