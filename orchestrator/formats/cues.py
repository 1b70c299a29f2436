"""Segments -> subtitle cues with their lines wrapped, as openai/whisper's --max_line_width and
--max_line_count cut them. Pure.

Words are packed into lines of at most `max_line_width` characters (a word longer than that keeps a line
of its own). With a width alone each segment stays one cue, its text wrapped. With a line count too the
words flow on across segments: a cue ends when it holds `max_line_count` lines and another word comes, or
at a pause of over LONG_PAUSE_S, or where the speaker changes (a diarized transcript: each cue is one
speaker's, and says whose). A cue's times are those of its first and last words: the words' own
when the transcript has word timestamps, else shared out over the segment by characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from longscribe_core.assembly import written_with_spaces
from orchestrator.schemas import Segment, SubtitleLayout, WordOut

LONG_PAUSE_S = 3.0  # openai/whisper's: when cues flow across segments, a silence this long still ends one
_SPACE = re.compile(r"\s")


@dataclass(frozen=True)
class TimedWord:
    """One word of a cue: its text without spaces, whether a space goes before it, its times in seconds."""

    text: str
    spaced: bool
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Cue:
    """One subtitle: times in seconds from the media start, its lines joined by newlines."""

    start_s: float
    end_s: float
    text: str
    speaker: str | None = None  # who says it (params.diarize)


def _spaced(segment: Segment | None) -> bool:
    return segment is not None and written_with_spaces(segment.language_code)


def _aligned(text: str, words: Sequence[WordOut], first_spaced: bool) -> list[TimedWord]:
    """The segment's timed words, each found in its text to learn whether a space precedes it (words come
    stripped; scripts written without spaces must not gain any)."""
    out: list[TimedWord] = []
    cursor = 0
    for w in words:
        word = w.word.strip()
        if not word:
            continue
        at = text.find(word, cursor)
        spaced = first_spaced if not out else at < 0 or bool(_SPACE.search(text, cursor, at))
        cursor = cursor if at < 0 else at + len(word)
        out.append(TimedWord(word, spaced, w.start_time_sec, max(w.end_time_sec, w.start_time_sec)))
    return out


def _interpolated(segment: Segment, first_spaced: bool) -> list[TimedWord]:
    """The segment's text split at spaces, its time shared out by characters (no word timestamps)."""
    words = segment.text.split()
    total = sum(len(w) for w in words)
    start, span = segment.start_time_sec, max(0.0, segment.end_time_sec - segment.start_time_sec)
    out: list[TimedWord] = []
    done = 0
    for i, word in enumerate(words):
        at_s = start + span * done / total
        done += len(word)
        out.append(TimedWord(word, first_spaced or i > 0, at_s, start + span * done / total))
    return out


def timed_words(segment: Segment, previous: Segment | None = None) -> list[TimedWord]:
    """Its words with times: its word timestamps when it has them, else interpolated over its text. Its first
    word is spaced from the segment before as the transcript's text joins them (none between two segments
    in a language written without spaces)."""
    first_spaced = _spaced(previous) or _spaced(segment)
    if segment.words:
        return _aligned(segment.text, segment.words, first_spaced)
    return _interpolated(segment, first_spaced)


def _cue(lines: list[list[TimedWord]], speaker: str | None) -> Cue:
    text = "\n".join(line[0].text + "".join((" " if w.spaced else "") + w.text for w in line[1:]) for line in lines)
    start_s = lines[0][0].start_s
    return Cue(start_s, max(start_s, lines[-1][-1].end_s), text, speaker)


def cues(segments: Iterable[Segment], layout: SubtitleLayout) -> Iterator[Cue]:
    """The segments as cues of wrapped lines, one at a time (whatever the transcript's length)."""
    width = layout.max_line_width or 0
    count = layout.max_line_count
    flowing = count is not None  # whisper keeps segments as cues unless both limits are given
    lines: list[list[TimedWord]] = []
    line_chars = 0
    last_end_s: float | None = None
    previous: Segment | None = None
    speaker: str | None = None
    for segment in segments:
        turn = previous is not None and segment.speaker != previous.speaker  # a cue is one speaker's
        for i, word in enumerate(timed_words(segment, previous)):
            new_segment = i == 0 and (not flowing or turn)
            paused = flowing and last_end_s is not None and word.start_s - last_end_s > LONG_PAUSE_S
            needed = len(word.text) + (1 if word.spaced else 0)
            if lines and not new_segment and not paused and line_chars + needed <= width:
                lines[-1].append(word)
                line_chars += needed
            else:
                if lines and (new_segment or paused or (count is not None and len(lines) >= count)):
                    yield _cue(lines, speaker)
                    lines = []
                lines.append([word])
                line_chars = len(word.text)
            last_end_s = word.end_s
            speaker = segment.speaker
        previous = segment
    if lines:
        yield _cue(lines, speaker)
