"""Whisper's log-mel in torch, for the GPU engine: the same math as `mel.log_mel`.

Two implementations of one spectrogram drift apart silently, so this one is
checked against `log_mel` wherever torch imports (tests/unit/test_torch_mel.py,
CPU torch is enough) and on the GPU by `make gpu-smoke`. torch is passed in:
importing this module needs neither torch nor a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from longscribe_core.audio import MAX_WINDOW_SAMPLES, FloatAudio
from longscribe_core.mel import HOP_LENGTH, N_FFT


def torch_log_mel(torch: Any, audio: FloatAudio, filters: Any, window: Any, device: str) -> Any:
    """float32 audio [n <= 480000] -> normalised log-mel [n_mels, 3000], float32, on `device`.

    `filters` is `mel.mel_filters(n_mels)` and `window` a periodic Hann of N_FFT,
    both as tensors on `device`; zero-padded to 30 s and reflect-centred as `log_mel`.
    """
    wave = torch.zeros(MAX_WINDOW_SAMPLES, device=device)
    n = min(len(audio), MAX_WINDOW_SAMPLES)
    wave[:n] = torch.from_numpy(np.asarray(audio[:n], dtype=np.float32)).to(device)
    stft = torch.stft(wave, N_FFT, HOP_LENGTH, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(filters @ power, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0
