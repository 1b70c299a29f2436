"""Whisper's log-mel front end in numpy."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from faster_whisper import feature_extractor  # a dev dependency: without it this reference check fails, not skips

from longscribe_core.audio import MAX_WINDOW_SAMPLES, SAMPLE_RATE
from longscribe_core.mel import N_FFT, N_FRAMES, log_mel, mel_filters

MEL_SIZES = [80, 128]


def tone_with_noise(seconds: float, seed: int = 0) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.05 * rng.normal(size=len(t))
    audio: npt.NDArray[np.float32] = wave.astype(np.float32)
    return audio


@pytest.mark.parametrize("n_mels", MEL_SIZES)
@pytest.mark.parametrize("seconds", [30.0, 7.3, 0.0])
def test_log_mel_is_a_finite_float32_window_of_3000_frames(n_mels: int, seconds: float) -> None:
    mel = log_mel(tone_with_noise(seconds), n_mels)
    assert mel.shape == (n_mels, N_FRAMES) == (n_mels, 3000)
    assert mel.dtype == np.float32
    assert np.all(np.isfinite(mel))


@pytest.mark.parametrize("n_mels", MEL_SIZES)
def test_log_mel_values_span_at_most_the_normalised_range(n_mels: int) -> None:
    mel = log_mel(tone_with_noise(12.0), n_mels)
    assert float(mel.max() - mel.min()) <= 2.0 + 1e-6


def test_silence_is_the_floor_everywhere() -> None:
    mel = log_mel(np.zeros(SAMPLE_RATE, dtype=np.float32), 80)
    np.testing.assert_allclose(mel, (-10.0 + 4.0) / 4.0, rtol=1e-6)  # float32 log10


def test_short_audio_is_zero_padded_to_thirty_seconds() -> None:
    audio = tone_with_noise(5.0)
    padded = np.zeros(MAX_WINDOW_SAMPLES, dtype=np.float32)
    padded[: len(audio)] = audio
    np.testing.assert_array_equal(log_mel(audio, 80), log_mel(padded, 80))


def test_audio_past_thirty_seconds_is_ignored() -> None:
    audio = tone_with_noise(31.0)
    np.testing.assert_array_equal(log_mel(audio, 80), log_mel(audio[:MAX_WINDOW_SAMPLES], 80))


def test_speech_frames_stand_above_the_padding() -> None:
    mel = log_mel(tone_with_noise(10.0), 80)
    sound, pad = mel[:, : 10 * 100 - 2], mel[:, 10 * 100 + 2 :]
    assert float(sound.mean()) > float(pad.mean()) + 0.5


@pytest.mark.parametrize("n_mels", MEL_SIZES)
def test_mel_filters_are_non_negative_and_none_is_empty(n_mels: int) -> None:
    filters = mel_filters(n_mels)
    assert filters.shape == (n_mels, N_FFT // 2 + 1)
    assert filters.dtype == np.float32
    assert np.all(filters >= 0.0)
    assert np.all(filters.max(axis=1) > 0.0)


@pytest.mark.parametrize("n_mels", MEL_SIZES)
def test_mel_filter_peaks_rise_with_the_band(n_mels: int) -> None:
    peaks = mel_filters(n_mels).argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0)
    assert peaks[-1] > peaks[0]


@pytest.mark.parametrize("n_mels", MEL_SIZES)
def test_log_mel_matches_faster_whisper(n_mels: int) -> None:
    audio = tone_with_noise(11.0, seed=3)
    padded = np.zeros(MAX_WINDOW_SAMPLES, dtype=np.float32)
    padded[: len(audio)] = audio
    reference = feature_extractor.FeatureExtractor(feature_size=n_mels)(padded, padding=0)[:, :N_FRAMES]
    ours = log_mel(audio, n_mels)
    assert ours.shape == reference.shape
    assert float(np.max(np.abs(ours - reference))) < 1e-4
