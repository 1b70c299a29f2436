"""The GE2E speaker encoder (resemblyzer's weights) in numpy: 16 kHz audio -> a 256-d voice embedding.

Resemblyzer's network: 40-band mel power spectrogram (librosa; 25 ms window,
10 ms hop, not logged), a 3-layer LSTM of 256 units, the last layer's final
hidden state through linear 256 + ReLU, L2-normalised. An utterance is cut in
partials of 160 frames (1.6 s) at 1.3 per second, each embedded, and their
mean normalised again. The LSTM runs here in numpy over a batch of partials:
no torch in the install. `embed` matches resemblyzer's `embed_utterance` on a
volume-normalised wave to within 1e-5 (tests/unit/test_speaker_encoder.py,
against embeddings resemblyzer and torch computed once).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from longscribe_core.speakers.checkpoint import load as load_checkpoint

SAMPLE_RATE = 16_000
HOP = 160  # 10 ms
N_FFT = 400  # 25 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_SAMPLES = PARTIAL_FRAMES * HOP
PARTIALS_PER_S = 1.3
MIN_COVERAGE = 0.75  # a last partial this full (zero-padded) is kept
TARGET_DBFS = -30.0  # quieter audio is raised to this loudness (never lowered), as resemblyzer does
EMBEDDING_DIM = 256
HIDDEN = 256
LAYERS = 3
# Partials per LSTM pass, always exactly this many (the last pass zero-padded), so that a clip's embedding is
# the same to the bit whatever clips share its batch: BLAS computes a row of a matrix product differently
# with the matrix's height and the row's place in it (OpenBLAS 0.3.23 here: up to 2.3e-7 apart, alone or in
# a batch, which moved float16-stored voices, and through the clustering words of a resumed job, to another
# speaker; the micro chunker's batches depend on what Triton's dynamic batcher joins). 32 cost about what
# 64 or 256 do per partial (measured on 2 cores); a lone reference clip wastes at most 31 partials' work.
# What it rests on besides: one BLAS thread (the model sets it) and the same kernels. Replicas on CPUs that
# OpenBLAS runs with other kernels (OPENBLAS_CORETYPE, or another CPU) may embed a clip differently in its last bits.
# [32, 160, 1024] float32 gates: 21 MB.
PARTIAL_BLOCK = 32


@dataclass(frozen=True)
class Network:
    """The weights, as numpy arrays, transposed for x @ W."""

    w_ih: tuple[np.ndarray, ...]  # per layer [in, 4H]
    w_hh: tuple[np.ndarray, ...]  # per layer [H, 4H]
    bias: tuple[np.ndarray, ...]  # per layer [4H]: b_ih + b_hh
    linear_w: np.ndarray  # [H, E]
    linear_b: np.ndarray  # [E]

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Network:
        def f32(name: str) -> np.ndarray:
            return np.ascontiguousarray(state[name], dtype=np.float32)

        return cls(
            tuple(f32(f"lstm.weight_ih_l{k}").T.copy() for k in range(LAYERS)),
            tuple(f32(f"lstm.weight_hh_l{k}").T.copy() for k in range(LAYERS)),
            tuple(f32(f"lstm.bias_ih_l{k}") + f32(f"lstm.bias_hh_l{k}") for k in range(LAYERS)),
            f32("linear.weight").T.copy(),
            f32("linear.bias"),
        )


@functools.cache
def network() -> Network:
    """The pinned weights, checked and loaded once per process."""
    from longscribe_core import weights  # here: weights imports the Hub client, which plain users never need

    return Network.from_state(load_checkpoint(weights.speaker_encoder_path())["model_state"])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # = 1 / (1 + e^-x), without overflow warnings


def forward(net: Network, mels: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Mel frames [B, T, 40] -> embeddings [B, 256]; `lengths` [B]: frames each sequence really has.

    A sequence shorter than T keeps its state from its last real frame (as
    if run alone): the state only moves where t < length.
    """
    batch, steps, _ = mels.shape
    live = None if lengths is None else (np.arange(steps)[None, :] < np.asarray(lengths)[:, None])  # [B, T]
    seq = mels.astype(np.float32)
    h = np.zeros((batch, HIDDEN), dtype=np.float32)
    for layer in range(LAYERS):
        inputs = seq @ net.w_ih[layer] + net.bias[layer]  # [B, T, 4H], all steps at once
        h = np.zeros((batch, HIDDEN), dtype=np.float32)
        c = np.zeros((batch, HIDDEN), dtype=np.float32)
        out = np.empty((batch, steps, HIDDEN), dtype=np.float32) if layer < LAYERS - 1 else None
        for t in range(steps):
            gates = inputs[:, t] + h @ net.w_hh[layer]
            i, f, g, o = np.split(gates, 4, axis=1)  # torch's gate order
            c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h_new = _sigmoid(o) * np.tanh(c_new)
            if live is None:
                h, c = h_new, c_new
            else:
                step = live[:, t : t + 1]
                h, c = np.where(step, h_new, h), np.where(step, c_new, c)
            if out is not None:
                out[:, t] = h
        if out is not None:
            seq = out
    raw = np.maximum(h @ net.linear_w + net.linear_b, 0.0)
    return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)


def mel_frames(audio: np.ndarray) -> np.ndarray:
    """Resemblyzer's features: librosa's 40-band mel power spectrogram, frames [T, 40]."""
    import librosa  # here: importing librosa costs about a second, and only speaker work needs it

    mel = librosa.feature.melspectrogram(y=audio, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    return np.asarray(mel.T, dtype=np.float32)


def louder(audio: np.ndarray) -> np.ndarray:
    """Raised to TARGET_DBFS when quieter (never lowered): resemblyzer's `normalize_volume(increase_only)`."""
    audio = np.asarray(audio, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    if rms <= 0.0:
        return audio
    change = TARGET_DBFS - 20.0 * np.log10(rms)
    return audio if change <= 0 else (audio * np.float32(10.0 ** (change / 20.0))).astype(np.float32)


def partial_starts(n_samples: int) -> list[int]:
    """First frame of each partial of an utterance (resemblyzer's `compute_partial_slices`)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((SAMPLE_RATE / PARTIALS_PER_S) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / PARTIAL_SAMPLES
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


def _partials(audio: np.ndarray) -> np.ndarray:
    """One utterance's partials, mel frames [P, 160, 40] (the wave zero-padded to its last partial)."""
    wave = louder(audio)
    starts = partial_starts(len(wave))
    end = (starts[-1] + PARTIAL_FRAMES) * HOP
    if end >= len(wave):
        wave = np.pad(wave, (0, end - len(wave)))
    mel = mel_frames(wave)
    return np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])


def embed_batch(clips: Sequence[np.ndarray], net: Network | None = None) -> np.ndarray:
    """Clips of 16 kHz mono float audio -> embeddings [n, 256], their partials through the LSTM in passes of
    PARTIAL_BLOCK: each clip's embedding is the same bit for bit alone or among any others."""
    if not clips:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    net = net or network()
    parts = [_partials(clip) for clip in clips]
    stacked = np.concatenate(parts)
    n = len(stacked)
    padded = np.concatenate([stacked, np.zeros((-n % PARTIAL_BLOCK, *stacked.shape[1:]), dtype=stacked.dtype)])
    embedded = np.concatenate(
        [forward(net, padded[lo : lo + PARTIAL_BLOCK]) for lo in range(0, len(padded), PARTIAL_BLOCK)]
    )[:n]
    bounds = np.cumsum([0] + [len(p) for p in parts])
    means = np.stack([embedded[a:b].mean(axis=0) for a, b in zip(bounds, bounds[1:])])
    return (means / np.linalg.norm(means, axis=1, keepdims=True)).astype(np.float32)


def embed(audio_16k: np.ndarray) -> np.ndarray:
    """One clip -> its voice embedding [256], L2-normalised (resemblyzer's `embed_utterance`)."""
    return embed_batch([np.asarray(audio_16k, dtype=np.float32)])[0]
