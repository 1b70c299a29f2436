"""Whisper's log-mel front end in numpy (the reference STFT and Slaney mel bank).

Whisper's encoder sees 30 s: 3000 frames of 10 ms, each 400 samples wide.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from longscribe_core.audio import MAX_WINDOW_SAMPLES, SAMPLE_RATE, FloatAudio

N_FFT = 400  # 25 ms window
HOP_LENGTH = 160  # 10 ms hop
N_FRAMES = MAX_WINDOW_SAMPLES // HOP_LENGTH  # 3000


# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above
HZ_PER_MEL = 200.0 / 3
LOG_FROM_HZ = 1000.0
LOG_FROM_MEL = LOG_FROM_HZ / HZ_PER_MEL  # 15
LOG_STEP = np.log(6.4) / 27.0


def _hz_to_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    mel = hz / HZ_PER_MEL
    log_part = hz >= LOG_FROM_HZ
    mel[log_part] = LOG_FROM_MEL + np.log(hz[log_part] / LOG_FROM_HZ) / LOG_STEP
    return mel


def _mel_to_hz(mel: NDArray[np.float64]) -> NDArray[np.float64]:
    hz = HZ_PER_MEL * mel
    log_part = mel >= LOG_FROM_MEL
    hz[log_part] = LOG_FROM_HZ * np.exp(LOG_STEP * (mel[log_part] - LOG_FROM_MEL))
    return hz


@lru_cache(maxsize=4)
def mel_filters(n_mels: int) -> NDArray[np.float32]:
    """Slaney-normalised triangular filters [n_mels, N_FFT // 2 + 1]."""
    fft_freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    edges = np.array([0.0, SAMPLE_RATE / 2.0])
    mel_lo, mel_hi = _hz_to_mel(edges.copy())
    freqs = _mel_to_hz(np.linspace(mel_lo, mel_hi, n_mels + 2))
    widths = np.diff(freqs)
    ramps = freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2:] - freqs[:-2]))[:, None]
    filters: NDArray[np.float32] = weights.astype(np.float32)
    return filters


@lru_cache(maxsize=1)
def _hann() -> NDArray[np.float32]:
    window: NDArray[np.float32] = np.hanning(N_FFT + 1)[:-1].astype(np.float32)  # periodic
    return window


def log_mel(audio: FloatAudio, n_mels: int) -> NDArray[np.float32]:
    """float32 audio [n <= 480000] -> normalised log-mel [n_mels, 3000].

    Audio is zero-padded to 30 s first, as Whisper was trained.
    """
    padded = np.zeros(MAX_WINDOW_SAMPLES, dtype=np.float32)
    n = min(len(audio), MAX_WINDOW_SAMPLES)
    padded[:n] = audio[:n]
    centred = np.pad(padded, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(centred, N_FFT)[::HOP_LENGTH]
    spectrum = np.fft.rfft(frames[:N_FRAMES] * _hann(), axis=-1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel = mel_filters(n_mels) @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    normalised: NDArray[np.float32] = ((log_spec + 4.0) / 4.0).astype(np.float32)
    return normalised
