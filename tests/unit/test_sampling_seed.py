"""A sampled decode is reproducible: the same audio at the same temperature draws the same text."""

from __future__ import annotations

import numpy as np

from longscribe_core.engines.ct2 import sampling_seed


def test_the_same_audio_and_temperature_give_the_same_seed() -> None:
    audio = [np.linspace(-1, 1, 16_000, dtype=np.float32)]
    assert sampling_seed(audio, 0.2) == sampling_seed([a.copy() for a in audio], 0.2)


def test_another_temperature_or_other_audio_gives_another_seed() -> None:
    audio = [np.linspace(-1, 1, 16_000, dtype=np.float32)]
    other = [audio[0][::-1].copy()]
    assert sampling_seed(audio, 0.2) != sampling_seed(audio, 0.4)
    assert sampling_seed(audio, 0.2) != sampling_seed(other, 0.2)
    assert 0 <= sampling_seed(audio, 1.0) < 2**32  # what ctranslate2.set_random_seed takes
