"""Segment times from the audio's own pauses: where speech starts, where a segment splits."""

from __future__ import annotations

import numpy as np

from longscribe_core.audio import SAMPLE_RATE
from longscribe_core.segmentation.pauses import START_PAD_S, snap_start, split_at_pauses
from longscribe_core.segments import Segment, Word

LEVEL = 0.1


def envelope(*spans: tuple[float, float], seconds: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Loud (1.0) inside the spans, quiet (0.0) elsewhere, and a flat speech level."""
    env = np.zeros(int(seconds * SAMPLE_RATE))
    for a, b in spans:
        env[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] = 1.0
    return env, np.full(len(env), LEVEL)


def word(text: str, start_s: float, end_s: float) -> Word:
    return Word(start_s, end_s, text, 0.9)


def test_a_start_in_a_pause_moves_to_where_speech_begins() -> None:
    env, levels = envelope((3.0, 5.0))
    snapped = snap_start(Segment(1.0, 5.0, "hello there", words=(word(" hello", 1.0, 3.5),)), env, levels)
    assert snapped.start_s == 3.0 - START_PAD_S
    assert snapped.words[0].start_s == snapped.start_s


def test_a_start_on_the_last_sound_before_a_pause_moves_past_the_pause() -> None:
    # the segment opens on another recording's noisy tail (2.0-2.3), then 0.7 s of quiet, then its first word
    env, levels = envelope((2.0, 2.3), (3.0, 5.0))
    segment = Segment(2.1, 5.0, "He hoped", words=(word(" He", 3.1, 3.4), word(" hoped", 3.4, 3.9)))
    assert snap_start(segment, env, levels).start_s == 3.0 - START_PAD_S


def test_speech_before_a_pause_far_from_the_first_word_is_kept() -> None:
    # the aligned first word lies well after the pause: the sound before it is taken as speech of this segment
    env, levels = envelope((2.0, 3.0), (3.5, 6.0))
    segment = Segment(2.0, 6.0, "a long one", words=(word(" a", 4.5, 4.8), word(" long", 4.8, 5.2)))
    assert snap_start(segment, env, levels).start_s == 2.0


def test_a_segment_splits_at_a_pause_between_its_words() -> None:
    env, levels = envelope((1.0, 2.0), (3.0, 4.0))
    segment = Segment(1.0, 4.0, "one two", words=(word(" one", 1.0, 2.0), word(" two", 2.2, 4.0)))
    left, right = split_at_pauses(segment, env, levels)
    assert (left.text, right.text) == ("one", "two")
    assert left.end_s == 2.0 and right.start_s == 3.0 - START_PAD_S
