"""POST /v1/audio/transcriptions and /v1/audio/translations in OpenAI's shape: the official client works unchanged.

A multipart `file` is streamed to a temporary file under `max_upload_bytes`
(413 beyond; the form's limits are in `bodies`), transcribed through the same pipeline (served to FFmpeg by the
relay, with Range), and deleted afterwards, on error and on cancel too. As
an extension, a `url` field instead of `file` transcribes media at a URL.
`model` picks one of the models the service was started with (`whisper-1`
or none: the first; GET /v1/models lists them, and an unknown one is a 404);
`prompt` guides every window, as params.prompt; `temperature` (0-1) is where
decoding starts: 0 greedy with the fallback ladder above it, more samples
from there. A translation is the same request with params.task="translate".
`stream=true` on a transcription answers OpenAI's server-sent events
(`openai_stream`), with diarized_json the speakers' segments among them.
Errors take OpenAI's shape (`openai_errors`, at the edge).
`response_format=diarized_json` (or `model=gpt-4o-transcribe-diarize`: the default model, diarizing) tells
who spoke when, in the shape of OpenAI's gpt-4o-transcribe-diarize: segments of type
`transcript.text.segment` with `speaker` A, B, ... or the name of a known speaker whose reference clip
(`known_speaker_references[]`, data URLs of 2-10 s, in the order of `known_speaker_names[]`) matches.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import ValidationError

from orchestrator import formats
from orchestrator.api.bodies import Form, read_form
from orchestrator.errors import DiarizationUnsupported, InvalidRequest, MediaError
from orchestrator.infer.catalogue import OPENAI_DEFAULT, Catalogue
from orchestrator.schemas import (
    MediaRequest,
    Segment,
    TranscribeOutput,
    TranscribeParams,
    TranscribeRequest,
    UploadRequest,
)
from orchestrator.settings import Settings

RunTranscription = Callable[[web.Application, MediaRequest], Awaitable[TranscribeOutput]]
Task = Literal["transcribe", "translate"]  # as TranscribeParams.task
FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")
DIARIZE_MODEL = "gpt-4o-transcribe-diarize"  # OpenAI's diarizing model: here the default model, diarizing
# a stream carries text events, whatever was asked of its end; diarized_json adds the speakers' segments at it
STREAM_FORMATS = ("json", "text", "diarized_json")
SEGMENT_TYPE = "transcript.text.segment"  # a diarized segment, in the answer and as a stream's event
GRANULARITIES = ("segment", "word")
FLAGS = {"true": True, "1": True, "false": False, "0": False, "": False}  # how form fields say a boolean
# extensions: how to cut the media, as in the native params (a stream of a short file wants small chunks)
EXTENSIONS = ("macro_chunk_size_sec", "macro_chunk_overlap_sec", "micro_chunk_size_sec")
FIELDS = {"media_url": "url"}  # a TranscribeRequest field -> the form field that set it, where they differ
STARTED = int(time.time())  # /v1/models' `created`: the weights were loaded at start


@dataclass(frozen=True)
class Asked:
    """One OpenAI form, read: the media request and how the answer is wanted."""

    request: MediaRequest
    response_format: str
    stream: bool

    @property
    def words(self) -> bool:
        return self.request.params.word_timestamps

    @property
    def diarize_field(self) -> str:
        """The form field that asked for speakers: what a refusal of diarization names as its `param`."""
        return "response_format" if self.response_format == "diarized_json" else "model"


def parse(form: Form, settings: Settings, task: Task) -> Asked:
    """The form as a media request, every field checked; InvalidRequest naming the field (`param`) at fault."""
    fmt = form.one("response_format") or "json"
    if fmt not in FORMATS:
        raise InvalidRequest(f"response_format must be one of {', '.join(FORMATS)}", param="response_format")
    stream = _flag(form, "stream")
    if stream and task != "transcribe":
        raise InvalidRequest("translations do not stream; leave `stream` out", param="stream")
    if stream and fmt not in STREAM_FORMATS:
        raise InvalidRequest(
            f"stream=true answers text events: response_format must be one of {', '.join(STREAM_FORMATS)}",
            param="response_format",
        )
    url = form.one("url")
    if form.upload is None and not url:
        raise InvalidRequest("send the audio as a multipart `file`, or its address as `url`", param="file")
    model = form.one("model") or None
    diarize = fmt == "diarized_json" or model == DIARIZE_MODEL
    if model == DIARIZE_MODEL:
        model = None
    if diarize and task != "transcribe":
        raise InvalidRequest("translations are not diarized; use the transcriptions endpoint", param="response_format")
    names = form.all("known_speaker_names[]", "known_speaker_names")
    references = form.all("known_speaker_references[]", "known_speaker_references")
    if (names or references) and not diarize:
        raise InvalidRequest(
            "known speakers name the speakers of a diarized transcript: ask response_format=diarized_json",
            param="known_speaker_names",
        )
    granularities = form.all("timestamp_granularities[]", "timestamp_granularities")
    unknown = set(granularities) - set(GRANULARITIES)
    if unknown:
        raise InvalidRequest(
            f"timestamp_granularities: unknown {sorted(unknown)}; use segment and/or word",
            param="timestamp_granularities",
        )
    try:
        params = TranscribeParams(
            language=form.one("language") or None,
            word_timestamps="word" in granularities,
            prompt=form.one("prompt") or None,
            model=model,
            task=task,
            temperature=_temperature(form),
            diarize=diarize,
            known_speaker_names=names or None,
            known_speaker_references=references or None,
            **{name: value for name in EXTENSIONS if (value := form.one(name))},
        )
        params.check_limits(settings.max_macro_chunk_size_sec)
        request: MediaRequest
        if form.upload is None:
            request = TranscribeRequest(media_url=str(url), params=params, response_format="verbose_json")
        else:
            request = UploadRequest(upload=form.upload, params=params, response_format="verbose_json")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(f"invalid request: {problems}", param=_field(exc)) from exc
    except ValueError as exc:  # over the service's cap on macro chunks
        raise InvalidRequest(f"invalid request: {exc}", param="macro_chunk_size_sec") from exc
    # 404 naming those served; translate on an English-only model: 400 naming a multilingual one (param `model`)
    Catalogue.from_settings(settings).pick(params.model, params.task)
    return Asked(request, fmt, stream)


def _flag(form: Form, name: str) -> bool:
    value = (form.one(name) or "").strip().lower()
    if value not in FLAGS:
        raise InvalidRequest(f"{name} must be true or false, not {value!r}", param=name)
    return FLAGS[value]


def _temperature(form: Form) -> float:
    raw = form.one("temperature")
    try:
        value = float(raw) if raw not in (None, "") else 0.0
        if not 0.0 <= value <= 1.0:  # NaN fails this too
            raise ValueError
    except ValueError as exc:
        raise InvalidRequest("temperature must be a number from 0 to 1", param="temperature") from exc
    return value


def _field(exc: ValidationError) -> str | None:
    """The form field a validation error is about: the last name in its location (params.prompt -> prompt)."""
    for error in exc.errors():
        names = [str(p) for p in error["loc"] if isinstance(p, str)]
        if names:
            return FIELDS.get(names[-1], names[-1])
    return None


def _verbose(output: TranscribeOutput, task: Task, words: bool) -> dict[str, Any]:
    spoken = output.language or next((s.language for s in output.segments if s.language), None) or "english"
    body: dict[str, Any] = {
        "task": task,
        "model": output.model,
        "language": "english" if task == "translate" else spoken,  # a translation's language: its output's
        "duration": output.input_duration_sec,
        "text": output.text,
        "segments": [
            {
                "id": i,
                "seek": 0,
                "start": s.start_time_sec,
                "end": s.end_time_sec,
                "text": s.text,
                "tokens": [],
                "temperature": s.temperature or 0.0,
                "avg_logprob": s.avg_logprob or 0.0,
                "compression_ratio": s.compression_ratio or 0.0,
                "no_speech_prob": s.no_speech_prob or 0.0,
            }
            for i, s in enumerate(output.segments)
        ],
    }
    if words:
        body["words"] = [
            {"word": w.word, "start": w.start_time_sec, "end": w.end_time_sec}
            for s in output.segments
            for w in s.words or []
        ]
    return body


def letter(index: int) -> str:
    """OpenAI's anonymous speaker labels: A, B, ... Z, then AA, AB, ..."""
    return (letter(index // 26 - 1) if index >= 26 else "") + chr(ord("A") + index % 26)


class Letters:
    """Our speakers as OpenAI names them, in the order they are first met: SPEAKER_00 -> A, ... (a known
    speaker keeps the name it was given). At most MAX_SPEAKERS entries, however long the transcript."""

    def __init__(self) -> None:
        self.given: dict[str, str] = {}

    def __call__(self, speaker: str | None) -> str:
        if speaker is None:
            return "A"  # a segment no voice was heard near (none in the recording): one speaker
        if not speaker.startswith("SPEAKER_"):
            return speaker
        if speaker not in self.given:
            self.given[speaker] = letter(len(self.given))
        return self.given[speaker]


def segment_event(index: int, segment: Segment, letters: Letters) -> dict[str, Any]:
    """One segment of OpenAI's diarized transcript (TranscriptionDiarizedSegment): in diarized_json's
    `segments`, and the `transcript.text.segment` event of a diarized stream."""
    return {
        "type": SEGMENT_TYPE,
        "id": f"seg_{index}",
        "start": segment.start_time_sec,
        "end": segment.end_time_sec,
        "text": segment.text,
        "speaker": letters(segment.speaker),
    }


def _diarized(output: TranscribeOutput) -> dict[str, Any]:
    """OpenAI's diarized_json (TranscriptionDiarized): segments of type transcript.text.segment, ids seg_0..,
    speakers A, B, ... by first appearance or a known speaker's name, and usage by duration."""
    letters = Letters()
    return {
        "task": "transcribe",
        "duration": output.input_duration_sec,
        "text": output.text,
        "segments": [segment_event(i, s, letters) for i, s in enumerate(output.segments)],
        "usage": {"type": "duration", "seconds": math.ceil(output.input_duration_sec)},
    }


def render(output: TranscribeOutput, asked: Asked) -> web.Response:
    fmt, task = asked.response_format, asked.request.params.task
    if fmt == "diarized_json":
        return web.json_response(_diarized(output), dumps=json.dumps)
    if fmt == "json":
        return web.json_response({"text": output.text, "model": output.model})
    if fmt == "verbose_json":
        return web.json_response(_verbose(output, task, asked.words), dumps=json.dumps)
    return web.Response(text=formats.render(output, fmt), content_type=formats.CONTENT_TYPES[fmt], charset="utf-8")


async def read(request: web.Request, settings: Settings, task: Task) -> tuple[Form, Asked]:
    """The form and what it asks; on a refusal nothing is left behind (the upload is deleted)."""
    form = await read_form(request, settings)
    try:
        return form, parse(form, settings, task)
    except BaseException:
        form.discard()
        raise


async def answer(request: web.Request, run: RunTranscription, form: Form, asked: Asked) -> web.Response:
    """Transcribe (or translate) now and answer in the format asked; the upload is deleted however it ends."""
    try:
        output = await run(request.app, asked.request)
    except MediaError as exc:  # the field that brought the media is the one at fault
        exc.param = "file" if form.upload is not None else "url"
        raise
    except DiarizationUnsupported as exc:  # `diarize` is no field of OpenAI's form
        exc.param = asked.diarize_field
        raise
    finally:
        form.discard()
    return render(output, asked)


def _model_card(name: str, alias_of: str | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {"id": name, "object": "model", "created": STARTED, "owned_by": "longscribe"}
    if alias_of is not None:
        card["parent"] = alias_of  # as vLLM names it: what the alias means (OpenAI's clients ignore it)
    return card


async def list_models(request: web.Request, settings: Settings) -> web.Response:
    """GET /v1/models as OpenAI answers it: the models served, the default first, then `whisper-1` (its alias)."""
    catalogue = Catalogue.from_settings(settings)
    cards = [*(_model_card(name) for name in catalogue.names()), _model_card(OPENAI_DEFAULT, catalogue.default.name)]
    return web.json_response({"object": "list", "data": cards})


async def get_model(request: web.Request, settings: Settings) -> web.Response:
    """GET /v1/models/{model}: one card (`whisper-1` too: the default's alias), or 404 naming those there are."""
    asked = request.match_info["model"]
    model = Catalogue.from_settings(settings).pick(asked)
    return web.json_response(_model_card(asked, model.name) if asked == OPENAI_DEFAULT else _model_card(model.name))
