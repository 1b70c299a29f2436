"""The GPU engine's log-mel (torch) is `mel.log_mel`'s: checked wherever torch imports.

CPU torch is enough; this machine's virtual environment has no torch, so here it is
skipped, and `make gpu-smoke` checks the same on the GPU (mel parity, within 1e-2).
"""

from __future__ import annotations

import numpy as np
import pytest

from longscribe_core.audio import SAMPLE_RATE
from longscribe_core.engines.torch_mel import torch_log_mel
from longscribe_core.mel import N_FFT, log_mel, mel_filters

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("seconds", [0.3, 11.0, 30.0])
def test_the_torch_log_mel_matches_log_mel(n_mels: int, seconds: float) -> None:
    rng = np.random.default_rng(n_mels)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    filters = torch.from_numpy(mel_filters(n_mels))
    window = torch.hann_window(N_FFT)
    ours = torch_log_mel(torch, audio, filters, window, "cpu").numpy()
    assert ours.shape == (n_mels, 3000)
    assert float(np.max(np.abs(ours - log_mel(audio, n_mels)))) <= 1e-2
