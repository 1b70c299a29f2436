"""The caller's temperature starts the fallback ladder: 0 keeps Whisper's, t > 0 samples at t and only hotter."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from longscribe_core.audio import SAMPLE_RATE
from longscribe_core.quality import FALLBACK_TEMPERATURES, fallback_from
from longscribe_core.segmentation.micro import decode_with_fallback, transcribe_macro_chunk
from longscribe_core.segments import ChunkResult, Segment

from .test_micro_chunk_model import SMOOTHING, FakeWhisper, speech

LOOP = ("go on. " * 30, -0.2, 0.1, 9.0)  # text, avg_logprob, no_speech_prob, compression_ratio


def test_temperature_zero_keeps_whispers_ladder_exactly() -> None:
    assert fallback_from(0.0) == FALLBACK_TEMPERATURES == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@pytest.mark.parametrize(
    ("start", "ladder"),
    [(0.5, (0.5, 0.6, 0.8, 1.0)), (0.2, (0.2, 0.4, 0.6, 0.8, 1.0)), (0.9, (0.9, 1.0)), (1.0, (1.0,))],
)
def test_a_positive_temperature_samples_there_first_and_falls_back_only_hotter(
    start: float, ladder: tuple[float, ...]
) -> None:
    assert fallback_from(start) == ladder


@given(st.floats(0.0, 1.0))
def test_every_ladder_starts_at_the_request_rises_and_ends_at_one(start: float) -> None:
    ladder = fallback_from(start)
    assert ladder[0] == start and ladder[-1] == 1.0
    assert all(a < b for a, b in zip(ladder, ladder[1:]))


@pytest.mark.parametrize("start", [-0.1, 1.01, math.nan, math.inf])
def test_a_temperature_outside_zero_to_one_is_refused(start: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        fallback_from(start)


class Hot(FakeWhisper):
    """FakeWhisper whose segments carry the temperature they were decoded at, as the engines' do."""

    async def __call__(self, audio: npt.NDArray[np.float32], temperature: float = 0.0) -> ChunkResult:
        result = await super().__call__(audio, temperature)
        return ChunkResult(tuple(replace(s, temperature=temperature) for s in result.segments), result.language)


class Looping(FakeWhisper):
    """Loops at every temperature: the whole ladder is tried."""

    async def __call__(self, audio: npt.NDArray[np.float32], temperature: float = 0.0) -> ChunkResult:
        self.temperatures.append(temperature)
        text, logprob, no_speech, ratio = LOOP
        seg = Segment(0.0, len(audio) / SAMPLE_RATE, text, logprob, no_speech, ratio, temperature)
        return ChunkResult(segments=(seg,), language="en")


async def test_a_failing_decode_at_half_climbs_only_the_hotter_rungs() -> None:
    whisper = Looping()
    assert await decode_with_fallback(np.ones(16_000, np.float32), whisper, fallback_from(0.5)) is None
    assert whisper.temperatures == [0.5, 0.6, 0.8, 1.0]


async def test_a_chunk_asked_at_half_never_decodes_cooler_and_reports_the_decode_kept() -> None:
    whisper = Hot(stop=lambda call, n: min(n / SAMPLE_RATE, 6.0))  # leaves tails to decode again
    out = await transcribe_macro_chunk(speech(40.0), 30.0, SMOOTHING, whisper, temperature=0.5)
    assert whisper.temperatures and min(whisper.temperatures) == 0.5
    assert out.segments and {s.temperature for s in out.segments} == {0.5}


async def test_a_chunk_at_temperature_zero_decodes_greedily_first_as_before() -> None:
    whisper = FakeWhisper()
    await transcribe_macro_chunk(speech(40.0), 10.0, SMOOTHING, whisper)
    assert whisper.temperatures and set(whisper.temperatures) == {0.0}
    looping = Looping()
    await transcribe_macro_chunk(speech(8.0), 10.0, SMOOTHING, looping)
    assert looping.temperatures == list(FALLBACK_TEMPERATURES)


async def test_a_chunk_refuses_a_temperature_above_one_before_decoding() -> None:
    whisper = FakeWhisper()
    with pytest.raises(ValueError, match="temperature"):
        await transcribe_macro_chunk(speech(5.0), 10.0, SMOOTHING, whisper, temperature=1.5)
    assert whisper.calls == []
