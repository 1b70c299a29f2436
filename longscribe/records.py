"""What the service answers, as typed, immutable records; times in seconds from the media's start.

Each record is read from the service's JSON by `from_json`, which ignores
fields it does not know: a newer service does not break an older client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None


@dataclass(frozen=True)
class Word:
    """One word, when `word_timestamps=True`."""

    word: str
    start: float
    end: float
    probability: float  # mean probability of its tokens, 0-1
    speaker: str | None = None  # who said it, when diarize=True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Word:
        start, end = float(data["start_time_sec"]), float(data["end_time_sec"])
        return cls(data["word"], start, end, float(data["probability"]), data.get("speaker"))


@dataclass(frozen=True)
class Segment:
    """One timed piece of the transcript."""

    start: float
    end: float
    text: str
    language: str | None = None  # its language's name, e.g. "english"
    language_code: str | None = None  # ISO 639-1, e.g. "en"
    words: tuple[Word, ...] = ()  # only with word_timestamps=True
    avg_logprob: float | None = None  # Whisper's confidence signals for the window it came from
    no_speech_prob: float | None = None
    compression_ratio: float | None = None
    temperature: float | None = None  # the sampling temperature of the decode kept
    confidence: float | None = None  # 0-1
    speaker: str | None = None  # who said it (SPEAKER_00, ... or a known speaker's name), when diarize=True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        return cls(
            start=float(data["start_time_sec"]),
            end=float(data["end_time_sec"]),
            text=str(data["text"]),
            language=data.get("language"),
            language_code=data.get("language_code"),
            words=tuple(Word.from_json(w) for w in data.get("words") or ()),
            avg_logprob=_float(data.get("avg_logprob")),
            no_speech_prob=_float(data.get("no_speech_prob")),
            compression_ratio=_float(data.get("compression_ratio")),
            temperature=_float(data.get("temperature")),
            confidence=_float(data.get("confidence")),
            speaker=data.get("speaker"),
        )


@dataclass(frozen=True)
class Transcript:
    """A finished transcription: the segments in order, the whole text, and how long it took."""

    segments: tuple[Segment, ...]
    text: str
    input_duration_sec: float  # the media's length
    processing_duration_sec: float  # the service's wall time for it
    speedup: float  # input_duration_sec / processing_duration_sec
    model: str | None = None  # the model that transcribed it, as GET /v1/models names it
    language: str | None = None  # the main language, by speech duration
    language_code: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            segments=tuple(Segment.from_json(s) for s in data.get("segments") or ()),
            text=str(data.get("text", "")),
            input_duration_sec=float(data["input_duration_sec"]),
            processing_duration_sec=float(data["processing_duration_sec"]),
            speedup=float(data["speedup"]),
            model=data.get("model"),
            language=data.get("language"),
            language_code=data.get("language_code"),
        )


@dataclass(frozen=True)
class Progress:
    """How far a job is: audio done of total, chunks done of total, speed (x real time) and ETA so far."""

    audio_done_sec: float = 0.0
    audio_total_sec: float | None = None
    chunks_done: int = 0
    chunks_total: int | None = None
    chunks_resumed: int = 0  # done by an earlier run of the job (it survived a restart)
    speed: float | None = None
    eta_sec: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        return cls(
            audio_done_sec=float(data.get("audio_done_sec") or 0.0),
            audio_total_sec=_float(data.get("audio_total_sec")),
            chunks_done=int(data.get("chunks_done") or 0),
            chunks_total=data.get("chunks_total"),
            chunks_resumed=int(data.get("chunks_resumed") or 0),
            speed=_float(data.get("speed")),
            eta_sec=_float(data.get("eta_sec")),
        )


@dataclass(frozen=True)
class Summary:
    """A succeeded job's totals (the transcript itself is fetched: `Job.transcript`)."""

    input_duration_sec: float
    processing_duration_sec: float
    speedup: float
    segments: int
    speakers: int | None = None  # how many speakers were found, when diarize=True

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        return cls(
            float(data["input_duration_sec"]),
            float(data["processing_duration_sec"]),
            float(data["speedup"]),
            int(data.get("segments", 0)),
            int(data["speakers"]) if data.get("speakers") is not None else None,
        )


@dataclass(frozen=True)
class ErrorDetail:
    """Why a job failed: a stable code, a message and what to do."""

    code: str
    message: str
    hint: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> ErrorDetail:
        if not isinstance(data, dict):
            return cls("error", str(data))
        return cls(str(data.get("code", "error")), str(data.get("message", "")), data.get("hint"))


JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True)
class StatusEvent:
    """The job was queued or started running. `id` is the event's id (resume after it with Last-Event-ID)."""

    id: str
    status: str


@dataclass(frozen=True)
class ChunkEvent:
    """A macro chunk finished: the progress, and the segments it settled (in order; none may be new)."""

    id: str
    progress: Progress
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class EndEvent:
    """The job ended: `status` succeeded (with `summary`), failed or cancelled (with `error`)."""

    id: str
    status: str
    summary: Summary | None = None
    error: ErrorDetail | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


JobEvent = StatusEvent | ChunkEvent | EndEvent


def event_from_sse(event_id: str, name: str, data: dict[str, Any]) -> JobEvent | None:
    """A job's server-sent event as a record; None for an event this client does not know."""
    if name == "status":
        return StatusEvent(event_id, str(data.get("status")))
    if name == "chunk":
        segments = tuple(Segment.from_json(s) for s in data.get("segments") or ())
        return ChunkEvent(event_id, Progress.from_json(data), segments)
    if name == "end":
        summary = Summary.from_json(data["summary"]) if data.get("summary") else None
        error = ErrorDetail.from_json(data["error"]) if data.get("error") else None
        return EndEvent(event_id, str(data.get("status")), summary, error)
    return None


@dataclass(frozen=True)
class JobState:
    """A job as GET /v1/jobs/{id} shows it (without its transcript)."""

    id: str
    status: str
    progress: Progress
    error: ErrorDetail | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobState:
        error = ErrorDetail.from_json(data["error"]) if data.get("error") else None
        return cls(str(data["id"]), str(data["status"]), Progress.from_json(data.get("progress") or {}), error)
