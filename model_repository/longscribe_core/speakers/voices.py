"""A chunk's speech pieces -> voice windows -> `Voice`s.

A piece of speech (between pauses) may hold a change of speaker, so a long
one is cut into windows of about WINDOW_S; a piece under MIN_PIECE_S is too
short to tell a voice by and is skipped (its words take the nearest voice's
speaker). Each window is embedded from the PARTIAL_S of audio centred on it,
one encoder partial: windows shorter than that borrow audio from around them
(the pause before or after), so every embedding hears the same length.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from longscribe_core.segments import Voice
from longscribe_core.speakers.encoder import PARTIAL_SAMPLES, SAMPLE_RATE, embed_batch

# A voice per this much speech (10 h of speech: 15,000 voices), each embedded from its middle 1.6 s. Measured
# on the conversations of tests/conversations.py (8, two speaker sets) and a 4-minute macro chunk on a bare Triton
# (2 cores; that bench is now part of bench.speakers): 1.6 s windows 2.6 % DER; 2.0 s 2.6 %, +18 % wall time; 2.4 s
# 2.9 %, +11 % wall time
# (issue 22's goal: at most 15 %). The count of speakers was right in all.
WINDOW_S = 2.4
MIN_PIECE_S = 0.5  # shorter pieces are not embedded: too little to tell a voice by
BRIDGE_S = 0.3  # speech pieces closer than this are one piece (a breath is no change of speaker)

Window = tuple[int, int]  # [lo, hi) in samples
# clips -> embeddings [n, 256], awaited: the micro chunker's calls to the `speaker_encoder` model
EmbedClipsAsync = Callable[[list[np.ndarray]], Awaitable[np.ndarray]]


def speech_pieces(speaks: np.ndarray) -> list[Window]:
    """Runs of True in a per-sample speech mask [n] -> pieces [lo, hi) in samples."""
    mask = np.asarray(speaks, dtype=np.int8)
    if len(mask) == 0:
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask, [0]))))
    return [(int(lo), int(hi)) for lo, hi in zip(edges[::2], edges[1::2])]


def merge_pieces(pieces: Sequence[Window], bridge: int = int(BRIDGE_S * SAMPLE_RATE)) -> list[Window]:
    """Pieces sorted and joined where the gap between them is under `bridge` samples."""
    merged: list[list[int]] = []
    for lo, hi in sorted(pieces):
        if merged and lo - merged[-1][1] < bridge:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return [(lo, hi) for lo, hi in merged]


def voice_windows(pieces: Sequence[Window]) -> list[Window]:
    """Speech pieces [lo, hi) in samples -> windows of about WINDOW_S, each inside its piece."""
    target, shortest = WINDOW_S * SAMPLE_RATE, MIN_PIECE_S * SAMPLE_RATE
    windows: list[Window] = []
    for lo, hi in merge_pieces(pieces):
        if hi - lo < shortest:
            continue
        count = max(1, int(round((hi - lo) / target)))
        edges = np.linspace(lo, hi, count + 1).round().astype(np.int64)
        windows.extend((int(a), int(b)) for a, b in zip(edges, edges[1:]))
    return windows


def window_clip(audio: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """The PARTIAL_S of `audio` centred on window [lo, hi), kept inside the audio (shorter only if it is)."""
    start = max(0, min((lo + hi) // 2 - PARTIAL_SAMPLES // 2, len(audio) - PARTIAL_SAMPLES))
    return np.asarray(audio[start : start + PARTIAL_SAMPLES], dtype=np.float32)


def voices_of(
    audio_16k: np.ndarray,
    pieces: Sequence[Window],
    embed_clips: Callable[[list[np.ndarray]], np.ndarray] = embed_batch,
) -> list[Voice]:
    """The voices of a chunk's speech pieces ([lo, hi) samples), times in seconds from the audio's start.

    `embed_clips` turns clips into embeddings [n, 256]: the encoder in this
    process by default; the micro chunker sends the clips to `speaker_encoder`.
    """
    windows = voice_windows(pieces)
    if not windows:
        return []
    return _voices(windows, embed_clips([window_clip(audio_16k, lo, hi) for lo, hi in windows]))


async def voices_via(audio_16k: np.ndarray, pieces: Sequence[Window], embed_clips: EmbedClipsAsync) -> list[Voice]:
    """`voices_of` with the embeddings awaited (the micro chunker, through BLS)."""
    windows = voice_windows(pieces)
    if not windows:
        return []
    clips = [window_clip(audio_16k, lo, hi) for lo, hi in windows]  # copies: the caller may drop the audio
    return _voices(windows, await embed_clips(clips))


def _voices(windows: list[Window], vectors: np.ndarray) -> list[Voice]:
    if len(vectors) != len(windows):
        raise ValueError(f"{len(windows)} clips embedded as {len(vectors)} embeddings")
    return [
        Voice(lo / SAMPLE_RATE, hi / SAMPLE_RATE, tuple(float(x) for x in vector))
        for (lo, hi), vector in zip(windows, vectors)
    ]
