"""Long pauses are shortened before a chunk is cut into windows, and every time is mapped back after."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from longscribe_core.audio import SAMPLE_RATE
from longscribe_core.segmentation.condense import LONG_PAUSE_S, PAUSE_KEPT_S, condense
from longscribe_core.segmentation.micro import transcribe_macro_chunk
from longscribe_core.segments import Segment, Word

from .test_micro_chunk_model import SMOOTHING, FakeWhisper, speech

SR = SAMPLE_RATE


def quiet_between(*runs: tuple[float, float], seconds: float = 20.0) -> np.ndarray:
    quiet = np.zeros(int(seconds * SR), dtype=bool)
    for lo, hi in runs:
        quiet[int(lo * SR) : int(hi * SR)] = True
    return quiet


def test_a_long_pause_is_shortened_to_what_is_kept_of_it_half_on_each_side() -> None:
    short = condense(quiet_between((5.0, 8.0)))
    assert len(short.select(np.zeros(20 * SR, dtype=np.float32))) == int((20.0 - 3.0 + PAUSE_KEPT_S) * SR)
    assert short.source_s(4.0) == 4.0  # before the pause: unchanged
    assert short.source_s(5.0 + PAUSE_KEPT_S / 2) == 8.0 - PAUSE_KEPT_S / 2  # a start past the join: after it
    assert short.source_s(5.0 + PAUSE_KEPT_S / 2, end=True) == 5.0 + PAUSE_KEPT_S / 2  # an end: before it
    assert short.source_s(10.0) == 10.0 + 3.0 - PAUSE_KEPT_S


def test_short_pauses_and_speech_are_kept_whole() -> None:
    short = condense(quiet_between((5.0, 5.0 + LONG_PAUSE_S - 0.01), (9.0, 9.4)))
    audio = np.arange(20 * SR, dtype=np.float32)
    np.testing.assert_array_equal(short.select(audio), audio)
    assert short.source_s(12.3) == 12.3


def test_segments_and_their_words_come_back_in_the_chunks_time() -> None:
    short = condense(quiet_between((5.0, 8.0)))
    words = (Word(4.5, 5.0, " before", 0.9), Word(5.4, 6.0, " after", 0.9))
    back = short.segment(Segment(4.5, 6.0, "before after", words=words))
    assert (back.start_s, back.end_s) == (4.5, 6.0 + 2.5)
    assert [(w.start_s, w.end_s) for w in back.words] == [(4.5, 5.0), (5.4 + 2.5, 6.0 + 2.5)]


@given(st.lists(st.tuples(st.floats(0.0, 19.0), st.floats(0.0, 4.0)), max_size=6), st.floats(0.0, 20.0))
def test_mapping_back_never_runs_backwards_and_stays_in_the_chunk(runs: list[tuple[float, float]], t: float) -> None:
    short = condense(quiet_between(*((lo, min(20.0, lo + n)) for lo, n in runs)))
    length = len(short.select(np.zeros(20 * SR, dtype=np.float32))) / SR
    t = min(t, length)
    assert 0.0 <= short.source_s(t) <= short.source_s(min(length, t + 0.1)) <= 20.0
    assert short.source_s(t, end=True) <= short.source_s(t)


async def test_speech_between_long_pauses_fills_one_window_and_keeps_its_times() -> None:
    """Four 6 s bursts 6 s apart: 42 s of audio, 25.5 s once the pauses are shortened: one window, not two."""
    pcm = np.zeros(42 * SR, dtype=np.int16)
    for k in range(4):
        pcm[k * 12 * SR : (k * 12 + 6) * SR] = speech(6.0, seed=k, pause_every_s=100.0)
    fake = FakeWhisper()
    out = await transcribe_macro_chunk(pcm, 30.0, SMOOTHING, fake)
    assert len(fake.calls) == 1
    assert len(fake.calls[0]) < 27 * SR
    assert out.segments[0].start_s == 0.0 and out.segments[-1].end_s >= 41.5
