"""Macro chunk planning: nominal cuts every `macro_chunk_size_sec`, each moved
into the quietest point of a short window around it. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

from longscribe_core.audio import SAMPLE_RATE, Int16Audio, int16_to_float, quietest_index, smoothed_energy, speech_level

SHORT_TAIL_FRACTION = 0.1  # a last chunk under 10 % of the macro size joins the one before
MIN_CHUNK_S = 1.0  # snapped cuts closer than this to each other collapse into one


@dataclass(frozen=True)
class MacroChunk:
    """[start_s, end_s) of the media, in seconds; chunks tile the media."""

    index: int
    start_s: float
    end_s: float
    # where its audio was read from: before start_s when reading with overlap
    read_start_s: float | None = None
    in_speech: bool = False  # the cut at start_s found no pause: the transcript joins there inside speech

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def offset_s(self) -> float:
        """Media time of the first sample the model saw."""
        return self.start_s if self.read_start_s is None else self.read_start_s


def nominal_cuts(duration_s: float, macro_s: float) -> list[float]:
    """Interior cut times k * macro_s, without one that would leave a sliver at the end."""
    cuts: list[float] = []
    k = 1
    while k * macro_s < duration_s - SHORT_TAIL_FRACTION * macro_s:
        cuts.append(k * macro_s)
        k += 1
    return cuts


def search_window(cut_s: float, macro_s: float, duration_s: float, window_s: float) -> tuple[float, float]:
    """Where to look for a pause near `cut_s`; never more than a quarter chunk away."""
    half = min(window_s / 2, macro_s / 4)
    return max(0.0, cut_s - half), min(duration_s, cut_s + half)


@dataclass(frozen=True)
class Cut:
    at_s: float
    in_pause: bool  # false: no pause in the window, so the cut falls in speech and chunks must overlap


def snap_cut(window_start_s: float, pcm: Int16Audio, smoothing_samples: int, fallback_s: float) -> Cut:
    """The quietest moment of `pcm` (int16, starting at window_start_s), and whether it is a pause."""
    if len(pcm) == 0:
        return Cut(fallback_s, in_pause=True)  # no audio there: nothing to cut through
    envelope = smoothed_energy(int16_to_float(pcm), smoothing_samples)
    index = quietest_index(envelope, 0, len(envelope))
    return Cut(window_start_s + index / SAMPLE_RATE, in_pause=bool(envelope[index] <= speech_level(envelope)))


def plan_chunks(duration_s: float, cuts: list[float]) -> list[MacroChunk]:
    """Cuts -> chunks that tile [0, duration_s); no chunk shorter than MIN_CHUNK_S."""
    bounds = [0.0]
    for cut in sorted(cuts):
        if cut - bounds[-1] >= MIN_CHUNK_S and duration_s - cut >= MIN_CHUNK_S:
            bounds.append(cut)
    bounds.append(duration_s)
    return [MacroChunk(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:]))]
