"""The REST API's shapes, compatible with Baseten's audio-transcription chain.

Its users switch by changing the URL: the same `media_url` + `params` body and
the same answer fields (`segments`, `input_duration_sec`,
`processing_duration_sec`, `speedup`), plus `text` and per-segment language.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from longscribe_core.audio import MAX_WINDOW_S, SAMPLE_RATE
from longscribe_core.speakers.cluster import MAX_SPEAKERS, check_bounds
from orchestrator.languages import LANGUAGE_NAMES

MAX_PROMPT_CHARS = 2000  # far past the 200 tokens used: a longer one is a mistake, not a hint
MAX_MODEL_NAME_CHARS = 256  # a Hub id or a path; longer is a mistake
MIN_MICRO_CHUNK_S = 1.0  # shorter pieces only multiply Whisper calls; Whisper needs context
ResponseFormat = Literal["json", "text", "srt", "vtt", "verbose_json", "tsv"]
RESPONSE_FORMATS: tuple[ResponseFormat, ...] = ("json", "text", "srt", "vtt", "verbose_json", "tsv")
MAX_LINE_WIDTH = 1000  # characters: openai/whisper's own stand-in for "no limit"
MAX_LINE_COUNT = 100  # lines per subtitle cue: far past any screen; more is a mistake
MAX_KNOWN_SPEAKERS = 4  # OpenAI's limit on known_speaker_names[]
MAX_SPEAKER_NAME_CHARS = 64  # a name shown before every line of a transcript; longer is a mistake
# A reference clip as a data URL: 10 s of 16 kHz 16-bit mono WAV is 320 KB, 427 KB in base64; room for a header
MAX_REFERENCE_CHARS = 480_000


def _not_a_bool(value: object) -> object:
    """pydantic reads true as 1; a line limit of `true` is a mistake, not one character."""
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    return value


SpeakerCount = Annotated[Annotated[int, Field(ge=1, le=MAX_SPEAKERS)] | None, BeforeValidator(_not_a_bool)]
LineWidth = Annotated[
    Annotated[int, Field(ge=1, le=MAX_LINE_WIDTH)] | None,
    BeforeValidator(_not_a_bool),
    Field(
        description="srt and vtt: wrap cue text into lines of at most this many characters (a longer word "
        "keeps a line of its own); other formats ignore it",
    ),
]
LineCount = Annotated[
    Annotated[int, Field(ge=1, le=MAX_LINE_COUNT)] | None,
    BeforeValidator(_not_a_bool),
    Field(
        description="srt and vtt, with max_line_width: at most this many lines per cue; the words flow on into "
        "the next cue, across segments, as openai/whisper does",
    ),
]


def check_line_limits(max_line_width: int | None, max_line_count: int | None) -> None:
    """Lines are only cut at a width: a line count alone would change nothing, so it is refused."""
    if max_line_count is not None and max_line_width is None:
        raise ValueError("max_line_count needs max_line_width: lines are only cut at a width")


class SubtitleLayout(BaseModel):
    """How srt and vtt cut their cues into lines: openai/whisper's --max_line_width / --max_line_count."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_line_width: LineWidth = None
    max_line_count: LineCount = None

    @model_validator(mode="after")
    def _count_needs_width(self) -> SubtitleLayout:
        check_line_limits(self.max_line_width, self.max_line_count)
        return self


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
    language: str | None = Field(
        None,
        description="ISO 639-1 code of the spoken language; omitted: English on an English-only model, "
        "else detected and reported per segment",
    )
    word_timestamps: bool = Field(False, description="add each word with its start, end and probability")
    model: str | None = Field(
        None,
        max_length=MAX_MODEL_NAME_CHARS,
        description="a model this service serves, by the name GET /v1/models lists; omitted or whisper-1: the first",
    )
    task: Literal["transcribe", "translate"] = Field(
        "transcribe",
        description="transcribe (text in the spoken language) or translate (English text from any language; "
        "needs a multilingual model)",
    )
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="0: greedy, falling back hotter (0.2 ... 1.0) where a decode fails Whisper's checks; "
        "above 0: sampling starts at this temperature and falls back hotter from there",
    )
    prompt: str | None = Field(
        None,
        max_length=MAX_PROMPT_CHARS,
        description="text that guides spelling and style (names, jargon), given to every window as Whisper's "
        "initial prompt; its last 200 tokens are used",
    )
    diarize: bool = Field(
        False,
        description="who spoke when: each segment (and word) gets `speaker` (SPEAKER_00, SPEAKER_01, ... by first "
        "appearance, or a known speaker's name); needs the speaker_encoder model on the service",
    )
    num_speakers: SpeakerCount = Field(
        None, description=f"with diarize: exactly this many speakers (1-{MAX_SPEAKERS}); omitted: found"
    )
    min_speakers: SpeakerCount = Field(
        None, description=f"with diarize: at least this many speakers (1-{MAX_SPEAKERS})"
    )
    max_speakers: SpeakerCount = Field(None, description=f"with diarize: at most this many speakers (1-{MAX_SPEAKERS})")
    known_speaker_names: list[Annotated[str, Field(min_length=1, max_length=MAX_SPEAKER_NAME_CHARS)]] | None = Field(
        None,
        max_length=MAX_KNOWN_SPEAKERS,
        description="with diarize: names of enrolled speakers; a speaker whose voice matches the reference at the "
        "same position is labelled with the name (OpenAI's known_speaker_names[])",
    )
    known_speaker_references: list[Annotated[str, Field(max_length=MAX_REFERENCE_CHARS)]] | None = Field(
        None,
        max_length=MAX_KNOWN_SPEAKERS,
        description="one audio clip of 2-10 s per known speaker name, as a data URL (data:audio/wav;base64,...)",
    )

    @field_validator("language")
    @classmethod
    def _known_language(cls, code: str | None) -> str | None:
        if code is None:
            return None
        code = code.strip().lower()
        if code not in LANGUAGE_NAMES:
            raise ValueError(f"unknown language code {code!r}; use an ISO 639-1 code Whisper knows, such as 'en'")
        return code

    @field_validator("macro_chunk_size_sec", "macro_chunk_overlap_sec", "micro_chunk_size_sec", "temperature")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @model_validator(mode="after")
    def _speakers_agree(self) -> TranscribeParams:
        check_bounds(self.num_speakers, self.min_speakers, self.max_speakers)  # ValueError says which and why
        asked = self.num_speakers, self.min_speakers, self.max_speakers, self.known_speaker_names
        if not self.diarize and any(v is not None for v in asked):
            raise ValueError("speaker counts and known speakers need diarize: true")
        names, references = self.known_speaker_names or [], self.known_speaker_references or []
        if len(names) != len(references):
            raise ValueError(
                f"known_speaker_names has {len(names)} names and known_speaker_references {len(references)} "
                "clips: give one reference clip per name, in the same order"
            )
        if len(set(names)) != len(names):
            raise ValueError("known_speaker_names names a speaker twice")
        for clip in references:
            if not clip.startswith("data:") or ";base64," not in clip[:100]:
                raise ValueError("each known_speaker_references entry must be a data URL: data:audio/wav;base64,...")
        return self

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

    media_url: str = Field(
        description="http(s) URL of audio or video; the server must honour Range requests",
        json_schema_extra={"format": "uri", "pattern": "^https?://"},
    )
    params: TranscribeParams = Field(default_factory=TranscribeParams)
    response_format: ResponseFormat = Field(
        "json",
        description="json (default), text, srt, vtt, verbose_json with per-segment scores, or tsv "
        "(start<TAB>end<TAB>text in milliseconds, as openai/whisper writes it)",
    )
    max_line_width: LineWidth = None
    max_line_count: LineCount = None

    @field_validator("media_url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError("media_url must be an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _count_needs_width(self) -> TranscribeRequest:
        check_line_limits(self.max_line_width, self.max_line_count)
        return self

    @property
    def layout(self) -> SubtitleLayout:
        return SubtitleLayout(max_line_width=self.max_line_width, max_line_count=self.max_line_count)


class UploadedMedia(BaseModel):
    """A file a client uploaded, waiting on a disk every orchestrator that may run it can read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(description="where the file waits (under upload_dir); deleted when its work ends")
    filename: str = Field("", description="the name the client gave it (logs and messages only)")


class UploadRequest(BaseModel):
    """An uploaded file to transcribe: the same params as a URL request, the media on disk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upload: UploadedMedia
    params: TranscribeParams = Field(default_factory=TranscribeParams)
    response_format: ResponseFormat = "json"


MediaRequest = TranscribeRequest | UploadRequest  # what the pipeline transcribes: media at a URL, or an upload


class WordOut(BaseModel):
    """One word, when `word_timestamps` is on; times in seconds from the media start."""

    word: str
    start_time_sec: float
    end_time_sec: float
    probability: float = Field(description="mean probability of the word's tokens, 0-1")
    speaker: str | None = Field(None, description="who said it (params.diarize)")


class Segment(BaseModel):
    """One timed piece of the transcript; times in seconds from the media start."""

    start_time_sec: float
    end_time_sec: float
    text: str
    language: str | None = Field(None, description="language name, e.g. 'english'")
    language_code: str | None = Field(None, description="ISO 639-1 code, e.g. 'en'")
    speaker: str | None = Field(
        None, description="who said it (params.diarize): SPEAKER_00, SPEAKER_01, ... or a known speaker's name"
    )
    words: list[WordOut] | None = Field(None, description="only when params.word_timestamps is true")
    # verbose_json only: Whisper's own confidence signals for the window the segment came from
    avg_logprob: float | None = Field(None, description="mean token log-probability (verbose_json)")
    no_speech_prob: float | None = Field(None, description="the decoder's belief it heard no speech (verbose_json)")
    compression_ratio: float | None = Field(None, description="text bytes / zlib bytes; high means a loop")
    temperature: float | None = Field(None, description="sampling temperature of the decode kept (verbose_json)")
    confidence: float | None = Field(None, description="0-1: mean word probability, else exp(avg_logprob)")


class Timings(BaseModel):
    """Where a request's time went, in seconds (verbose_json).

    Chunks are read and transcribed concurrently: `decode_sec` and
    `inference_sec` are sums over chunks and can exceed the wall time.
    """

    probe_sec: float = Field(0.0, description="range check and ffprobe")
    silence_search_sec: float = Field(0.0, description="reading around each macro cut and moving it into a pause")
    decode_sec: float = Field(0.0, description="FFmpeg range reads of the macro chunks, summed")
    inference_sec: float = Field(0.0, description="Triton calls (queueing and compute), summed over chunks")
    merge_sec: float = Field(0.0, description="joining the chunks' segments in media time")
    # inside the whisper model, summed over every window (a batch's time shared among its items)
    whisper_windows: int = Field(0, description="decode windows run (one 30 s encoder pass each), re-decodes included")
    whisper_aligned: int = Field(
        0, description="windows whose words were aligned: every window with text, as segment times come from words"
    )
    mel_sec: float = Field(0.0, description="log-mel spectrograms")
    encoder_sec: float = Field(0.0, description="Whisper's encoder")
    decoder_sec: float = Field(
        0.0, description="Whisper's decoder: the text, and timestamp tokens where words do not time it"
    )
    alignment_sec: float = Field(0.0, description="word times by cross-attention alignment")


class TranscribeOutput(BaseModel):
    """POST /v1/transcribe answer; fields that are None are left out of the JSON."""

    segments: list[Segment]
    input_duration_sec: float = Field(description="length of the media")
    processing_duration_sec: float = Field(description="wall time of this request")
    speedup: float = Field(description="input_duration_sec / processing_duration_sec")
    text: str = Field(description="the whole transcript")
    model: str | None = Field(None, description="the model that transcribed it, by its name in GET /v1/models")
    # verbose_json only
    language: str | None = Field(None, description="the media's main language, by speech duration (verbose_json)")
    language_code: str | None = Field(None, description="its ISO 639-1 code (verbose_json)")
    timings: Timings | None = Field(None, description="where the time went (verbose_json)")

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)
