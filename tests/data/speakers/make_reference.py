"""resemblyzer and torch embed six clips of tests/data: the encoder parity test's reference (see README.md).

Run in a throwaway environment with torch and resemblyzer; not part of the test suite."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from resemblyzer import VoiceEncoder
from resemblyzer.audio import normalize_volume

DATA = Path(__file__).resolve().parent.parent
CLIPS = [  # name, first sample, end sample (None: to the end)
    ("jfk.flac", 0, None),
    ("ljspeech/LJ001-0002.flac", 0, None),
    ("librispeech/1089-134691-0000.flac", 0, None),
    ("sense_and_sensibility/sense_and_sensibility_01_austen_64kb-0880.wav", 0, None),
    ("ljspeech/LJ001-0001.flac", 16000, 28800),  # 0.8 s: one zero-padded partial
    ("librispeech/1089-134686-0000.flac", 0, None),
]


def pcm(path: Path) -> np.ndarray:
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-ac", "1", "-ar", "16000", "-f", "s16le", "-"]
    out = subprocess.run(args, check=True, capture_output=True).stdout
    return np.frombuffer(out, dtype=np.int16).astype(np.float32) / 32768.0


def main(out: str) -> None:
    torch.set_num_threads(1)
    encoder = VoiceEncoder("cpu", verbose=False)
    vectors = []
    for name, lo, hi in CLIPS:
        wav = pcm(DATA / name)[lo:hi]
        vectors.append(encoder.embed_utterance(normalize_volume(wav, -30, increase_only=True)))
    np.savez(
        out,
        embeddings=np.stack(vectors).astype(np.float32),
        names=np.array([c[0] for c in CLIPS]),
        starts=np.array([c[1] for c in CLIPS]),
        ends=np.array([-1 if c[2] is None else c[2] for c in CLIPS]),
    )
    print(f"{len(vectors)} embeddings with torch {torch.__version__} -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
