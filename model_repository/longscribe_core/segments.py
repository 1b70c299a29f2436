"""The records that flow from the model to the transcript, and their wire form."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np

# What lies before a segment: nothing ("start"), the same decode window ("segment": Whisper's own
# break or a split at a pause), another micro piece's window ("piece"), another macro chunk ("chunk")
JoinKind = Literal["start", "segment", "piece", "chunk"]


@dataclass(frozen=True)
class Word:
    """One word with its aligned times, in seconds from the owner's start."""

    start_s: float
    end_s: float
    text: str  # as Whisper wrote it, with its leading space and punctuation
    probability: float  # mean probability of the word's tokens
    speaker: str | None = None  # "SPEAKER_00", an enrolled name, or None: not diarized

    def shifted(self, offset_s: float) -> Word:
        return replace(self, start_s=self.start_s + offset_s, end_s=self.end_s + offset_s)

    @property
    def mid_s(self) -> float:
        return (self.start_s + self.end_s) / 2


@dataclass(frozen=True)
class Join:
    """The cut before a segment, as assembly (`longscribe_core.assembly`) records it.

    Decoded pieces do not hear each other: their text meets only here, so
    what is known about each join travels with the segment after it.
    """

    kind: JoinKind = "start"
    piece: int = 0  # the decode window the segment came from, numbered in time order within its chunk
    chunk: int = 0  # the macro chunk it came from (0 inside the micro chunker)
    in_speech: bool = False  # the cut fell in speech (both sides decoded with overlap), not in a pause
    gap_s: float = 0.0  # from the previous segment's end to this one's start; 0 at the start


@dataclass(frozen=True)
class Segment:
    """One stretch of recognised speech; times in seconds from the owner's start."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float = 0.0  # mean token log-probability of the decoded text
    no_speech_prob: float = 0.0  # the decoder's belief that the window held no speech
    compression_ratio: float = 1.0  # UTF-8 bytes / zlib bytes of the window's text: loops compress well
    temperature: float = 0.0  # sampling temperature of the decode that was kept
    words: tuple[Word, ...] = ()  # empty when the engine did not align words
    join: Join = field(default=Join(), compare=False)  # set by assembly; how it meets the segment before
    speaker: str | None = None  # who said it (`speakers.label_segments`); None: not diarized

    def owned_part(self, lo_s: float, hi_s: float) -> Segment | None:
        """What of this segment lies in [lo_s, hi_s): its words by their middle, else itself by its own.

        The one rule that keeps a word heard by two overlapping pieces or
        chunks exactly once. None when nothing lies there.
        """
        if not self.words:
            return self if lo_s <= (self.start_s + self.end_s) / 2 < hi_s else None
        words = tuple(w for w in self.words if lo_s <= w.mid_s < hi_s)
        if not words:
            return None
        if len(words) == len(self.words):
            return self
        text = "".join(w.text for w in words).strip()
        return replace(self, start_s=max(self.start_s, words[0].start_s), end_s=words[-1].end_s, text=text, words=words)

    def shifted(self, offset_s: float) -> Segment:
        """The same segment with every time moved by `offset_s`."""
        return replace(
            self,
            start_s=self.start_s + offset_s,
            end_s=self.end_s + offset_s,
            words=tuple(w.shifted(offset_s) for w in self.words),
        )


@dataclass(frozen=True)
class Voice:
    """What one stretch of speech sounds like: a speaker embedding and where it was heard.

    Times in seconds from the owner's start, like a Segment's; `embedding` is
    L2-normalised (256 values for the GE2E encoder, `longscribe_core.speakers`).
    """

    start_s: float
    end_s: float
    embedding: tuple[float, ...]

    def shifted(self, offset_s: float) -> Voice:
        return replace(self, start_s=self.start_s + offset_s, end_s=self.end_s + offset_s)


@dataclass(frozen=True)
class Work:
    """What decoding cost: windows run and where the whisper model's time went.

    A batch's seconds are shared evenly among its items, so sums over items
    add up to the model's busy time. The benchmark's time split and the
    align-only-where-it-pays rule are checked against these counts.
    """

    windows: int = 0  # decode windows run, each one full 30 s encoder pass; fallbacks and second looks included
    aligned: int = 0  # windows whose words were aligned by cross-attention
    mel_s: float = 0.0
    encoder_s: float = 0.0
    decoder_s: float = 0.0
    alignment_s: float = 0.0

    def __add__(self, other: Work) -> Work:
        return Work(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Work)))


@dataclass(frozen=True)
class ChunkResult:
    """What a model returns for one piece of audio."""

    segments: tuple[Segment, ...]
    language: str | None
    # the decoder hit its token limit: the audio after the last segment's end was not transcribed
    truncated: bool = False
    language_probability: float | None = None  # set by language detection
    work: Work = Work()  # what it cost; a chunk's is the sum of its windows'
    voices: tuple[Voice, ...] = ()  # speaker embeddings of the speech, when diarization was asked for


def encode_result(result: ChunkResult) -> bytes:
    """ChunkResult -> UTF-8 JSON, the BYTES tensor element the models exchange."""
    payload = {
        "language": result.language,
        "truncated": result.truncated,
        "language_probability": result.language_probability,
        "segments": [_segment_json(s) for s in result.segments],
        "work": asdict(result.work),
    }
    if result.voices:
        payload["voices"] = encode_voices(result.voices)
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def _segment_json(segment: Segment) -> dict[str, Any]:
    """A segment as JSON; a speaker that is not set is left out (most transcripts are not diarized)."""
    raw = asdict(segment)
    if segment.speaker is None:
        del raw["speaker"]
    for word in raw["words"]:
        if word["speaker"] is None:
            del word["speaker"]
    return raw


_SEGMENT_FIELDS = {f.name for f in fields(Segment)}
_WORK_FIELDS = {f.name for f in fields(Work)}


def _segment(raw: dict[str, Any]) -> Segment:
    """One segment from JSON; fields a payload lacks (older senders) take their defaults."""
    words = tuple(Word(**w) for w in raw.pop("words", ()))
    join = Join(**raw.pop("join")) if raw.get("join") else Join()
    known = {k: v for k, v in raw.items() if k in _SEGMENT_FIELDS}  # and newer senders' extras are ignored
    return Segment(**known, words=words, join=join)


def decode_result(raw: bytes | str) -> ChunkResult:
    """Inverse of `encode_result`."""
    payload = json.loads(raw)
    segments = tuple(_segment(s) for s in payload["segments"])
    return ChunkResult(
        segments=segments,
        language=payload.get("language"),
        truncated=payload.get("truncated", False),
        language_probability=payload.get("language_probability"),
        work=Work(**{k: v for k, v in (payload.get("work") or {}).items() if k in _WORK_FIELDS}),
        voices=decode_voices(payload["voices"]) if payload.get("voices") else (),
    )


def encode_voices(voices: tuple[Voice, ...]) -> dict[str, Any]:
    """Voices -> JSON: times to the millisecond, embeddings as one base64 float16 block.

    float16 keeps a cosine similarity to about 1e-3, far below what tells two
    speakers apart, at a quarter of JSON floats' size (5 minutes of speech:
    about 190 voices, 130 KB as float JSON, 130 / 4 as base64 float16).
    """
    matrix = np.asarray([v.embedding for v in voices], dtype="<f2")
    return {
        "times": [[round(v.start_s, 3), round(v.end_s, 3)] for v in voices],
        "dim": int(matrix.shape[1]),
        "embeddings": base64.b64encode(matrix.tobytes()).decode("ascii"),
    }


def decode_voices(raw: dict[str, Any]) -> tuple[Voice, ...]:
    """Inverse of `encode_voices` (embeddings back as float32 values)."""
    times = raw["times"]
    matrix = np.frombuffer(base64.b64decode(raw["embeddings"]), dtype="<f2").astype(np.float32)
    matrix = matrix.reshape(len(times), int(raw["dim"])) if len(times) else matrix.reshape(0, int(raw["dim"]))
    return tuple(Voice(float(s), float(e), tuple(float(x) for x in row)) for (s, e), row in zip(times, matrix))
