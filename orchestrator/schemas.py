"""The REST API's shapes, compatible with Baseten's audio-transcription chain.

Its users switch by changing the URL: the same `media_url` + `params` body and
the same answer fields (`segments`, `input_duration_sec`,
`processing_duration_sec`, `speedup`), plus `text` and per-segment language.
"""

from __future__ import annotations

import math
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from longscribe_core.audio import MAX_WINDOW_S, SAMPLE_RATE

MIN_MICRO_CHUNK_S = 1.0  # shorter pieces only multiply Whisper calls; Whisper needs context


class TranscribeParams(BaseModel):
    """How to cut the media; every field is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wav_sampling_rate_hz: Literal[16000] = Field(16000, description="Whisper's input rate; the only value accepted")
    macro_chunk_size_sec: float = Field(
        300, gt=0, description="target length of the macro chunks processed in parallel; cuts move to pauses"
    )
    macro_chunk_overlap_sec: float = Field(
        0, ge=0, description="audio read past each macro cut; duplicated words are dropped on merge"
    )
    micro_chunk_size_sec: float = Field(
        30,
        ge=MIN_MICRO_CHUNK_S,
        le=MAX_WINDOW_S,
        description="longest piece sent to Whisper; cut at the quietest point of its second half",
    )
    silence_detection_smoothing_num_samples: int = Field(
        1600, ge=1, le=10 * SAMPLE_RATE, description="box-filter width of the energy envelope (1600 = 0.1 s)"
    )

    @field_validator("macro_chunk_size_sec", "macro_chunk_overlap_sec", "micro_chunk_size_sec")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _sizes_agree(self) -> TranscribeParams:
        if self.macro_chunk_size_sec < self.micro_chunk_size_sec:
            raise ValueError("macro_chunk_size_sec must be at least micro_chunk_size_sec")
        if self.macro_chunk_overlap_sec >= self.macro_chunk_size_sec / 2:
            raise ValueError("macro_chunk_overlap_sec must be under half of macro_chunk_size_sec")
        return self

    def check_limits(self, max_macro_chunk_size_sec: float) -> None:
        """The deployment's cap on macro chunk size (a setting, so not a field bound)."""
        if self.macro_chunk_size_sec > max_macro_chunk_size_sec:
            raise ValueError(
                f"params.macro_chunk_size_sec must be at most {max_macro_chunk_size_sec:g} on this service"
            )


class TranscribeRequest(BaseModel):
    """POST /v1/transcribe body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    media_url: str = Field(description="http(s) URL of audio or video; the server must honour Range requests")
    params: TranscribeParams = Field(default_factory=TranscribeParams)

    @field_validator("media_url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("media_url must be an http:// or https:// URL")
        return url


class Segment(BaseModel):
    """One timed piece of the transcript; times in seconds from the media start."""

    start_time_sec: float
    end_time_sec: float
    text: str
    language: str | None = Field(None, description="language name, e.g. 'english'")
    language_code: str | None = Field(None, description="ISO 639-1 code, e.g. 'en'")


class TranscribeOutput(BaseModel):
    """POST /v1/transcribe answer."""

    segments: list[Segment]
    input_duration_sec: float = Field(description="length of the media")
    processing_duration_sec: float = Field(description="wall time of this request")
    speedup: float = Field(description="input_duration_sec / processing_duration_sec")
    text: str = Field(description="the whole transcript")
