"""Macro chunk planning: nominal cuts, pause search windows, snapping, tiling."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from longscribe_core.audio import SAMPLE_RATE
from orchestrator.plan.macro import (
    MIN_CHUNK_S,
    SHORT_TAIL_FRACTION,
    MacroChunk,
    nominal_cuts,
    plan_chunks,
    search_window,
    snap_cut,
)

DURATIONS = st.floats(0.0, 20_000.0)
MACRO_SIZES = st.floats(1.0, 3600.0)
CUT_LISTS = st.lists(st.floats(-50.0, 21_000.0), max_size=30)


@given(DURATIONS, MACRO_SIZES)
def test_nominal_cuts_are_whole_multiples_of_the_macro_size(duration: float, macro: float) -> None:
    cuts = nominal_cuts(duration, macro)
    assert cuts == [k * macro for k in range(1, len(cuts) + 1)]
    assert all(0.0 < c < duration for c in cuts)


@given(DURATIONS, MACRO_SIZES)
def test_nominal_cuts_leave_no_sliver_tail(duration: float, macro: float) -> None:
    cuts = nominal_cuts(duration, macro)
    if cuts:
        assert duration - cuts[-1] > SHORT_TAIL_FRACTION * macro


@given(DURATIONS, MACRO_SIZES)
def test_nominal_cuts_miss_no_cut(duration: float, macro: float) -> None:
    cuts = nominal_cuts(duration, macro)
    last_start = cuts[-1] if cuts else 0.0
    assert duration - last_start <= (1.0 + SHORT_TAIL_FRACTION) * macro + 1e-9 * duration


def assert_tiles(chunks: list[MacroChunk], duration: float) -> None:
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].start_s == 0.0
    assert chunks[-1].end_s == duration
    assert all(a.end_s == b.start_s for a, b in pairwise(chunks))


@given(DURATIONS, CUT_LISTS)
def test_plan_chunks_tiles_the_media_in_order(duration: float, cuts: list[float]) -> None:
    chunks = plan_chunks(duration, cuts)
    assert_tiles(chunks, duration)
    assert all(a.start_s < b.start_s for a, b in pairwise(chunks))


@given(st.floats(MIN_CHUNK_S, 20_000.0), CUT_LISTS)
def test_plan_chunks_makes_no_chunk_under_the_minimum(duration: float, cuts: list[float]) -> None:
    assert all(c.duration_s >= MIN_CHUNK_S for c in plan_chunks(duration, cuts))


@given(DURATIONS, CUT_LISTS)
def test_plan_chunks_cuts_only_where_asked(duration: float, cuts: list[float]) -> None:
    bounds = {c.start_s for c in plan_chunks(duration, cuts)[1:]}
    assert bounds <= set(cuts)


@given(DURATIONS, CUT_LISTS, st.data())
def test_plan_chunks_ignores_cut_order_and_duplicates(duration: float, cuts: list[float], data: st.DataObject) -> None:
    repeated = cuts + data.draw(st.lists(st.sampled_from(cuts), max_size=10)) if cuts else []
    shuffled = data.draw(st.permutations(repeated))
    assert plan_chunks(duration, shuffled) == plan_chunks(duration, sorted(set(cuts)))


def test_plan_chunks_without_cuts_is_one_chunk() -> None:
    assert plan_chunks(42.5, []) == [MacroChunk(0, 0.0, 42.5)]


def test_plan_chunks_collapses_cuts_closer_than_the_minimum() -> None:
    chunks = plan_chunks(100.0, [30.0, 30.4, 60.0, 99.5])
    assert [(c.start_s, c.end_s) for c in chunks] == [(0.0, 30.0), (30.0, 60.0), (60.0, 100.0)]


@st.composite
def windows(draw: st.DrawFn) -> tuple[float, float, float, float]:
    duration = draw(st.floats(0.1, 100_000.0))
    cut = duration * draw(st.floats(0.0, 1.0))
    return cut, draw(MACRO_SIZES), duration, draw(st.floats(0.01, 600.0))


@given(windows())
def test_search_window_stays_inside_the_media(case: tuple[float, float, float, float]) -> None:
    cut, macro, duration, window = case
    lo, hi = search_window(cut, macro, duration, window)
    assert 0.0 <= lo <= cut <= hi <= duration


@given(windows())
def test_search_window_stays_within_a_quarter_chunk_and_half_a_window(case: tuple[float, float, float, float]) -> None:
    cut, macro, duration, window = case
    lo, hi = search_window(cut, macro, duration, window)
    reach = min(macro / 4, window / 2) + 1e-9 * max(1.0, cut)
    assert cut - lo <= reach
    assert hi - cut <= reach


@given(
    st.floats(0.0, 10_000.0),
    st.integers(0, 4 * SAMPLE_RATE - 8000),
    st.integers(0, 2**32 - 1),
)
def test_snap_cut_finds_a_pause_in_the_window(window_start: float, pause_at: int, seed: int) -> None:
    pause_len = 8000
    rng = np.random.default_rng(seed)
    pcm = (rng.integers(3000, 20_000, 4 * SAMPLE_RATE) * rng.choice([-1, 1], 4 * SAMPLE_RATE)).astype(np.int16)
    pcm[pause_at : pause_at + pause_len] = rng.integers(-10, 11, pause_len)
    cut = snap_cut(window_start, pcm, smoothing_samples=1600, fallback_s=-1.0)
    assert cut.in_pause
    offset = cut.at_s - window_start
    assert pause_at / SAMPLE_RATE - 1e-6 <= offset <= (pause_at + pause_len) / SAMPLE_RATE + 1e-6


def test_snap_cut_of_no_audio_falls_back_to_the_nominal_cut() -> None:
    assert snap_cut(290.0, np.zeros(0, dtype=np.int16), 1600, fallback_s=300.0).at_s == pytest.approx(300.0)


def test_a_window_without_a_pause_says_its_cut_falls_in_speech() -> None:
    rng = np.random.default_rng(0)
    loud = (rng.integers(2000, 20_000, 10 * 16_000) * rng.choice([-1, 1], 10 * 16_000)).astype(np.int16)
    assert not snap_cut(0.0, loud, 1600, fallback_s=5.0).in_pause
    loud[4 * 16_000 : 5 * 16_000] = 0
    assert snap_cut(0.0, loud, 1600, fallback_s=5.0).in_pause
