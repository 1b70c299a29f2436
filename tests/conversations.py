"""Conversations built from corpus speakers with known turns, and diarization error rate (DER) to score them.

Shared by the speaker tests, the orchestrator's diarization tests and
`make bench-speakers`. A conversation alternates speakers of different
voices (LJ Speech, JFK, LibriSpeech 1089, the physics lecturer, the Austen
reader) in turns of 3-15 s cut from their recordings, with short low-noise
gaps between turns, so who speaks when is known to the sample.

DER is NIST's: (missed speech + false alarm + speaker confusion) / reference
speech, speakers mapped one to one to maximise agreement (Hungarian method),
and a collar (0.25 s by default) either side of every reference boundary not
scored. Time is scored in 10 ms frames; a frame has at most one speaker on
each side (the conversations here have no overlapping speech).
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import wave
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from tests import corpus

SAMPLE_RATE = corpus.SAMPLE_RATE
FRAME_S = 0.01
QUIET_DBFS = -45.0  # a turn's leading and trailing audio below this (10 ms frames) is not its speech

# Speaker sets of clearly different voices; each speaker's clips are used in order, again when used up.
SPEAKER_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    # a woman reading (LJ Speech), a lecturer (physicsworks), a man reading Austen (LibriVox)
    "readers": {
        "lj": ("ljspeech/",),
        "lecturer": ("physicsworks.wav",),
        "austen": ("sense_and_sensibility/",),
    },
    # a LibriSpeech reader, President Kennedy, and the LJ Speech reader
    "mixed": {
        "libri1089": ("librispeech/1089",),
        "jfk": ("jfk.flac",),
        "lj": ("ljspeech/",),
    },
}


@dataclass(frozen=True)
class Turn:
    start_s: float
    end_s: float
    speaker: str


@dataclass(frozen=True)
class Conversation:
    pcm: np.ndarray  # 16 kHz mono int16
    turns: tuple[Turn, ...]

    @property
    def speakers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.speaker for t in self.turns))

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / SAMPLE_RATE

    def write_wav(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(path), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(self.pcm.tobytes())
        return path


def speaker_audio(prefixes: Sequence[str]) -> np.ndarray:
    """Every clip of a speaker (manifest entries starting with a prefix), decoded and joined."""
    return _speaker_audio(str(corpus.speech_dir()), tuple(prefixes))


@functools.lru_cache(maxsize=16)
def _speaker_audio(_corpus: str, prefixes: tuple[str, ...]) -> np.ndarray:  # decoded once per test run
    root = corpus.speech_dir()
    clips = [c.path for p in prefixes for c in corpus.clips_under(p)]
    clips += [
        root / p for p in prefixes if p.endswith((".wav", ".flac")) and not any(c.name == Path(p).name for c in clips)
    ]
    clips = [c for c in clips if c.exists()]
    if not clips:
        raise FileNotFoundError(f"no audio for {prefixes} in {root}")
    return np.concatenate([corpus.decode_pcm(c) for c in clips])


def _trimmed(pcm: np.ndarray) -> tuple[int, int]:
    """[lo, hi) of `pcm` without its quiet start and end (10 ms frames under QUIET_DBFS)."""
    frame = int(FRAME_S * SAMPLE_RATE)
    n = len(pcm) // frame
    if n == 0:
        return 0, len(pcm)
    rms = np.sqrt(np.mean(pcm[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)) / 32768.0
    loud = np.flatnonzero(20 * np.log10(np.maximum(rms, 1e-9)) > QUIET_DBFS)
    if len(loud) == 0:
        return 0, 0
    return int(loud[0]) * frame, (int(loud[-1]) + 1) * frame


def build_conversation(
    speakers: Mapping[str, Sequence[str]],
    duration_s: float = 120.0,
    seed: int = 0,
    turn_s: tuple[float, float] = (3.0, 15.0),
    gap_s: tuple[float, float] = (0.3, 1.0),
) -> Conversation:
    """Turns of `turn_s` seconds, each from a speaker other than the last, until `duration_s`.

    Every speaker speaks at least once (the first turns go round them all).
    """
    rng = np.random.default_rng(seed)
    pools = {name: speaker_audio(prefixes) for name, prefixes in speakers.items()}
    cursors = dict.fromkeys(pools, 0)
    names = list(pools)
    parts: list[np.ndarray] = []
    turns: list[Turn] = []
    cursor = 0
    previous: str | None = None
    while cursor < duration_s * SAMPLE_RATE:
        if len(turns) < len(names):
            name = names[len(turns)]
        else:
            name = str(rng.choice([n for n in names if n != previous] or names))  # one speaker: turns of one
        gap = (rng.standard_normal(int(rng.uniform(*gap_s) * SAMPLE_RATE)) * 30).astype(np.int16)
        pool = pools[name]
        want = int(rng.uniform(*turn_s) * SAMPLE_RATE)
        if cursors[name] + want > len(pool):
            cursors[name] = 0  # used up: the speaker starts over (same voice, same words)
        audio = pool[cursors[name] : cursors[name] + want]
        cursors[name] += want
        lo, hi = _trimmed(audio)
        if hi - lo < SAMPLE_RATE:  # next to nothing audible here: skip it
            continue
        parts += [gap, audio[lo:hi]]
        start = cursor + len(gap)
        turns.append(Turn(start / SAMPLE_RATE, (start + hi - lo) / SAMPLE_RATE, name))
        cursor = start + hi - lo
        previous = name
    tail = (rng.standard_normal(int(0.5 * SAMPLE_RATE)) * 30).astype(np.int16)
    return Conversation(np.concatenate([*parts, tail]), tuple(turns))


@contextlib.contextmanager
def pcm_encoder(path: Path, encode_args: Sequence[str]) -> Iterator[Callable[[np.ndarray], None]]:
    """A writer of 16 kHz mono int16 PCM into one FFmpeg encoder making `path`; the file is whole when the
    block ends (RuntimeError if FFmpeg failed), and FFmpeg never outlives it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "s16le", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    encoder = subprocess.Popen([*args, "-i", "-", *encode_args, str(path)], stdin=subprocess.PIPE)
    stdin = encoder.stdin
    assert stdin is not None

    def write(pcm: np.ndarray) -> None:
        stdin.write(np.ascontiguousarray(pcm, dtype=np.int16).tobytes())

    try:
        yield write
        stdin.close()
        if encoder.wait() != 0:
            raise RuntimeError(f"ffmpeg could not encode {path}")
    finally:
        if encoder.poll() is None:
            encoder.kill()
            encoder.wait()


def write_conversation(
    path: Path,
    speakers: Mapping[str, Sequence[str]],
    duration_s: float,
    encode_args: Sequence[str] = ("-b:a", "48k"),
    seed: int = 0,
    block_s: float = 600.0,
) -> list[Turn]:
    """A conversation of hours written to `path` (MP3 by default) in blocks of `block_s`, each built
    as build_conversation builds one (its own seed), piped through one FFmpeg encoder: the builder's
    memory stays flat in the length, and the turns stay sample-true (one encode, no joins of encoded
    files whose encoder padding would shift every later turn)."""
    turns: list[Turn] = []
    written = 0
    with pcm_encoder(path, encode_args) as write:
        block = 0
        while written < duration_s * SAMPLE_RATE:
            want = min(block_s, duration_s - written / SAMPLE_RATE)
            part = build_conversation(speakers, max(want, 1.0), seed=seed * 100_003 + block)
            offset = written / SAMPLE_RATE
            turns += [Turn(t.start_s + offset, t.end_s + offset, t.speaker) for t in part.turns]
            write(part.pcm)
            written += len(part.pcm)
            block += 1
    return turns


@dataclass(frozen=True)
class DerScore:
    missed_s: float
    false_alarm_s: float
    confusion_s: float
    total_s: float  # reference speech scored (outside the collars)
    mapping: dict[str, str]  # hypothesis speaker -> reference speaker

    @property
    def der(self) -> float:
        return (self.missed_s + self.false_alarm_s + self.confusion_s) / self.total_s if self.total_s else 0.0


def _frames(turns: Sequence[Turn], names: dict[str, int], n: int) -> np.ndarray:
    """Per-frame speaker index, -1 for none; a later turn wins a frame two turns share."""
    out = np.full(n, -1, dtype=np.int64)
    for t in turns:
        out[int(round(t.start_s / FRAME_S)) : int(round(t.end_s / FRAME_S))] = names[t.speaker]
    return out


def der(reference: Sequence[Turn], hypothesis: Sequence[Turn], collar_s: float = 0.25) -> DerScore:
    """Diarization error of `hypothesis` against `reference` (see the module doc)."""
    ref_names = {s: i for i, s in enumerate(dict.fromkeys(t.speaker for t in reference))}
    hyp_names = {s: i for i, s in enumerate(dict.fromkeys(t.speaker for t in hypothesis))}
    end = max([t.end_s for t in [*reference, *hypothesis]], default=0.0)
    n = int(round(end / FRAME_S)) + 1
    ref, hyp = _frames(reference, ref_names, n), _frames(hypothesis, hyp_names, n)
    scored = np.ones(n, dtype=bool)
    pad = int(round(collar_s / FRAME_S))
    for t in reference:
        for edge in (int(round(t.start_s / FRAME_S)), int(round(t.end_s / FRAME_S))):
            scored[max(0, edge - pad) : edge + pad] = False
    ref, hyp = ref[scored], hyp[scored]
    both = (ref >= 0) & (hyp >= 0)
    overlap = np.zeros((len(hyp_names), len(ref_names)))
    np.add.at(overlap, (hyp[both], ref[both]), 1)
    rows, cols = linear_sum_assignment(-overlap) if overlap.size else (np.zeros(0, int), np.zeros(0, int))
    to_ref = np.full(max(1, len(hyp_names)), -2)  # -2: no reference speaker
    to_ref[rows] = cols
    confused = both & (to_ref[np.maximum(hyp, 0)] != ref)
    hyp_by_index = {i: s for s, i in hyp_names.items()}
    ref_by_index = {i: s for s, i in ref_names.items()}
    return DerScore(
        missed_s=float(np.count_nonzero((ref >= 0) & (hyp < 0))) * FRAME_S,
        false_alarm_s=float(np.count_nonzero((ref < 0) & (hyp >= 0))) * FRAME_S,
        confusion_s=float(np.count_nonzero(confused)) * FRAME_S,
        total_s=float(np.count_nonzero(ref >= 0)) * FRAME_S,
        mapping={hyp_by_index[int(r)]: ref_by_index[int(c)] for r, c in zip(rows, cols) if overlap[r, c] > 0},
    )


def turns_of(
    starts: Sequence[float], ends: Sequence[float], speakers: Sequence[str], bridge_s: float = 1.0
) -> list[Turn]:
    """Labelled stretches (voices, segments) -> turns: a speaker's stretches closer than bridge_s joined."""
    turns: list[Turn] = []
    for start, end, speaker in sorted(zip(starts, ends, speakers)):
        if turns and turns[-1].speaker == speaker and start - turns[-1].end_s < bridge_s:
            turns[-1] = Turn(turns[-1].start_s, max(turns[-1].end_s, end), speaker)
        else:
            turns.append(Turn(start, end, speaker))
    return turns


def diarize_locally(pcm: np.ndarray, smoothing: int = 1600, **bounds: int | None) -> list[Turn]:
    """The model half's pipeline in this process: speech pieces as the micro chunker finds them,
    voices, clustering; the labelled voices as turns (what the words would get)."""
    from longscribe_core import speakers
    from longscribe_core.audio import int16_to_float, smoothed_energy
    from longscribe_core.segmentation.micro import speech_mask

    audio = int16_to_float(pcm)
    voices = speakers.voices_of(audio, speakers.speech_pieces(speech_mask(smoothed_energy(audio, smoothing))))
    if not voices:
        return []
    embeddings = np.array([v.embedding for v in voices], dtype=np.float32)
    durations = np.array([v.end_s - v.start_s for v in voices])
    labels = speakers.cluster_voices(embeddings, durations=durations, **bounds)
    names = [speakers.speaker_name(int(k)) for k in labels]
    return turns_of([v.start_s for v in voices], [v.end_s for v in voices], names, bridge_s=2.0)


@dataclass(frozen=True)
class ReadAloud:
    """A conversation of whole clips: who speaks when, and what they say (the clips' references in order).

    SPEAKER_SETS["mixed"] has a reference for every clip; "readers" has not (the lecture)."""

    turns: list[Turn]
    reference: str
    duration_s: float


def write_read_aloud(
    path: Path,
    speakers: Mapping[str, Sequence[str]],
    duration_s: float,
    encode_args: Sequence[str] = ("-b:a", "48k"),
    seed: int = 0,
    clips_per_turn: tuple[int, int] = (1, 3),
    gap_s: tuple[float, float] = (0.3, 1.0),
) -> ReadAloud:
    """Turns of 1-3 whole referenced clips (pauses of 0.2-0.5 s within a turn), each from a speaker other
    than the last, until `duration_s`, written through one FFmpeg encoder as write_conversation writes.

    A speaker's clips are read in order, again when used up; a turn runs from its first clip's audible
    start to its last clip's audible end (the clips themselves are written whole, so no word is cut)."""
    rng = np.random.default_rng(seed)
    pools = {
        name: [(corpus.decode_pcm(c.path), c.reference) for p in prefixes for c in corpus.clips_under(p)]
        for name, prefixes in speakers.items()
    }
    if not all(pools.values()):
        raise FileNotFoundError(f"no referenced clips for some of {list(speakers)} in {corpus.speech_dir()}")
    cursors = dict.fromkeys(pools, 0)
    names = list(pools)

    def noise(seconds: float) -> np.ndarray:
        return (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 30).astype(np.int16)

    turns: list[Turn] = []
    said: list[str] = []
    written = 0
    with pcm_encoder(path, encode_args) as write:
        while written < duration_s * SAMPLE_RATE:
            previous = turns[-1].speaker if turns else None
            name = (
                names[len(turns)]
                if len(turns) < len(names)
                else str(rng.choice([n for n in names if n != previous] or names))
            )
            start = end = None
            for k in range(int(rng.integers(clips_per_turn[0], clips_per_turn[1] + 1))):
                pause = noise(rng.uniform(*gap_s) if k == 0 else rng.uniform(0.2, 0.5))
                pcm, reference = pools[name][cursors[name] % len(pools[name])]
                cursors[name] += 1
                lo, hi = _trimmed(pcm)
                write(pause)
                written += len(pause)
                start = written + lo if start is None else start
                end = written + hi
                write(pcm)
                written += len(pcm)
                said.append(reference)
            assert start is not None and end is not None
            turns.append(Turn(start / SAMPLE_RATE, end / SAMPLE_RATE, name))
        write(noise(0.5))
        written += int(0.5 * SAMPLE_RATE)
    return ReadAloud(turns, " ".join(said), written / SAMPLE_RATE)
