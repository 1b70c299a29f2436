"""Which audio decides a file's language, and how the windows' guesses are combined."""

from __future__ import annotations

import numpy as np

from longscribe_core.audio import MAX_WINDOW_SAMPLES, SAMPLE_RATE
from longscribe_core.segments import ChunkResult
from orchestrator.plan.language import MAX_WINDOWS, speech_windows, vote


def tone(seconds: float, amplitude: float = 8000) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    # on and off every 0.3 s, like syllables
    return (amplitude * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 1.7 * t) > 0)).astype(np.int16)


def quiet(seconds: float) -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE)) * 20).astype(np.int16)


def test_silence_asks_nothing() -> None:
    assert speech_windows(quiet(60)) == []


def test_windows_start_at_the_first_speech() -> None:
    pcm = np.concatenate([quiet(40), tone(20)])
    windows = speech_windows(pcm)
    assert len(windows) == 1
    assert abs(len(windows[0]) - 20 * SAMPLE_RATE) < SAMPLE_RATE  # the 40 s of quiet are not in it


def test_at_most_a_few_full_windows_in_time_order() -> None:
    windows = speech_windows(tone(120))
    assert len(windows) == MAX_WINDOWS
    assert all(len(w) == MAX_WINDOW_SAMPLES for w in windows)


def test_the_most_probable_language_over_all_windows_wins() -> None:
    guesses = [
        ChunkResult((), "de", language_probability=0.9),
        ChunkResult((), "nl", language_probability=0.6),
        ChunkResult((), "nl", language_probability=0.5),
    ]
    assert vote(guesses) == "nl"
    assert vote([]) is None
