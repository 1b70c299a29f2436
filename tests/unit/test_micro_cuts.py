"""Silence search inside a macro chunk: envelope, quietest point, micro cuts."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longscribe_core.audio import plan_cuts, quietest_index, smoothed_energy

Floats = npt.NDArray[np.float64]
SEEDS = st.integers(0, 2**32 - 1)


@st.composite
def cut_problems(draw: st.DrawFn) -> tuple[Floats, int, int]:
    """A random envelope (sometimes coarsely quantised, so minima tie) and cut limits."""
    n = draw(st.integers(0, 3000))
    max_len = draw(st.integers(1, 700))
    min_len = draw(st.integers(-5, max_len + 50))
    envelope = np.random.default_rng(draw(SEEDS)).random(n)
    if draw(st.booleans()):
        envelope = np.round(envelope, 1)
    return envelope, max_len, min_len


@given(cut_problems())
def test_pieces_tile_the_input_exactly_once(problem: tuple[Floats, int, int]) -> None:
    envelope, max_len, min_len = problem
    pieces = plan_cuts(envelope, max_len=max_len, min_len=min_len)
    coverage = np.zeros(len(envelope), dtype=int)
    for start, end in pieces:
        assert start < end
        coverage[start:end] += 1
    assert np.all(coverage == 1)
    assert [a for a, _ in pieces[1:]] == [b for _, b in pieces[:-1]]


@given(cut_problems())
def test_every_piece_is_at_most_max_len(problem: tuple[Floats, int, int]) -> None:
    envelope, max_len, min_len = problem
    assert all(end - start <= max_len for start, end in plan_cuts(envelope, max_len, min_len))


@given(cut_problems())
def test_every_piece_but_the_last_is_at_least_min_len(problem: tuple[Floats, int, int]) -> None:
    envelope, max_len, min_len = problem
    effective_min = max(1, min(min_len, max_len))
    pieces = plan_cuts(envelope, max_len, min_len)
    assert all(end - start >= effective_min for start, end in pieces[:-1])


def test_empty_input_gives_no_pieces() -> None:
    assert plan_cuts(np.zeros(0), max_len=10, min_len=5) == []


@pytest.mark.parametrize("max_len", [0, -3])
def test_non_positive_max_len_is_rejected(max_len: int) -> None:
    with pytest.raises(ValueError):
        plan_cuts(np.ones(10), max_len=max_len, min_len=1)


@st.composite
def signals_with_a_pause(draw: st.DrawFn) -> tuple[Floats, int, int, int, int, int]:
    """Noise (|x| >= 0.2 everywhere) with one run of zeros inside the first search window."""
    width = draw(st.integers(1, 40))
    pause_len = draw(st.integers(width + 1, width + 120))
    min_len = draw(st.integers(1, 500))
    max_len = min_len + pause_len - 1 + draw(st.integers(0, 500))
    pause_start = draw(st.integers(min_len, max_len - pause_len + 1))
    n = max_len + 1 + draw(st.integers(0, 800))
    rng = np.random.default_rng(draw(SEEDS))
    signal = rng.uniform(0.2, 1.0, n) * rng.choice([-1.0, 1.0], n)
    signal[pause_start : pause_start + pause_len] = 0.0
    return signal, width, min_len, max_len, pause_start, pause_len


@given(signals_with_a_pause())
def test_cut_lands_inside_a_clear_pause_in_the_search_window(
    case: tuple[Floats, int, int, int, int, int],
) -> None:
    signal, width, min_len, max_len, pause_start, pause_len = case
    pieces = plan_cuts(smoothed_energy(signal, width), max_len=max_len, min_len=min_len)
    first_cut = pieces[0][1]
    assert pause_start <= first_cut < pause_start + pause_len


@given(
    st.integers(0, 200),
    st.integers(1, 300),
    st.integers(0, 200),
    SEEDS,
)
def test_quietest_index_picks_the_centre_of_a_flat_quiet_run(before: int, run: int, after: int, seed: int) -> None:
    envelope = np.random.default_rng(seed).uniform(0.5, 1.0, before + run + after)
    envelope[before : before + run] = 0.1
    index = quietest_index(envelope, 0, len(envelope))
    assert before <= index < before + run
    assert abs(index - (before + (run - 1) / 2)) <= 0.5


def test_quietest_index_prefers_the_longest_of_equally_quiet_runs() -> None:
    envelope = np.ones(100)
    envelope[10:14] = 0.0
    envelope[50:80] = 0.0
    assert quietest_index(envelope, 0, 100) == 65


def test_quietest_index_searches_only_its_range() -> None:
    envelope = np.linspace(1.0, 0.0, 100)
    assert quietest_index(envelope, 10, 40) == 39
    assert quietest_index(envelope, -5, 3) == 2


def test_quietest_index_rejects_an_empty_range() -> None:
    with pytest.raises(ValueError):
        quietest_index(np.ones(10), 5, 5)


@given(st.floats(-1.0, 1.0), st.integers(1, 2000), st.integers(-3, 3000))
@settings(max_examples=60)
def test_smoothed_energy_of_a_constant_signal_is_that_constant(level: float, n: int, width: int) -> None:
    envelope = smoothed_energy(np.full(n, level), width)
    assert envelope.shape == (n,)
    np.testing.assert_allclose(envelope, abs(level), rtol=1e-6, atol=1e-9)  # a float32 envelope


@given(SEEDS, st.integers(1, 500), st.integers(1, 100))
@settings(max_examples=60)
def test_smoothed_energy_is_a_box_mean_of_the_magnitude(seed: int, n: int, width: int) -> None:
    signal = np.random.default_rng(seed).normal(size=n)
    envelope = smoothed_energy(signal, width)
    mag = np.abs(signal)
    assert np.all(envelope >= 0.0)
    assert np.all(envelope <= mag.max() * (1 + 1e-6))  # a float32 envelope
    w = min(width, n)
    for i in range(0, n, max(1, n // 7)):
        lo, hi = max(0, i - w // 2), min(n, i - w // 2 + w)
        assert envelope[i] == pytest.approx(mag[lo:hi].mean(), rel=1e-6, abs=1e-9)


def test_smoothed_energy_of_nothing_is_empty() -> None:
    assert smoothed_energy(np.zeros(0, dtype=np.int16), 1600).shape == (0,)
