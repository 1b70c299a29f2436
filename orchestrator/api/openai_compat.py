"""POST /v1/audio/transcriptions in OpenAI's shape: the official client works unchanged.

A multipart `file` is streamed to a temporary file under `max_upload_bytes`
(413 beyond; the form's limits are in `bodies`), transcribed through the same pipeline (served to FFmpeg by the
relay, with Range), and deleted afterwards, on error and on cancel too. As
an extension, a `url` field instead of `file` transcribes media at a URL.
`model` picks one of the models the service was started with (`whisper-1`
or none: the first; GET /v1/models lists them, and an unknown one is a 404);
`prompt` guides every window, as params.prompt; `temperature` is validated,
and decoding starts greedy and falls back hotter as always.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from orchestrator import formats
from orchestrator.api.bodies import Form, read_form
from orchestrator.errors import InvalidRequest
from orchestrator.infer.catalogue import Catalogue
from orchestrator.schemas import (
    MediaRequest,
    TranscribeOutput,
    TranscribeParams,
    TranscribeRequest,
    UploadRequest,
)
from orchestrator.settings import Settings

RunTranscription = Callable[[web.Application, MediaRequest], Awaitable[TranscribeOutput]]
FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")
STARTED = int(time.time())  # /v1/models' `created`: the weights were loaded at start


def _request(form: Form) -> MediaRequest:
    url = form.one("url")
    if form.upload is None and not url:
        raise InvalidRequest("send the audio as a multipart `file`, or its address as `url`")
    granularities = form.all("timestamp_granularities[]", "timestamp_granularities")
    unknown = set(granularities) - set(GRANULARITIES)
    if unknown:
        raise InvalidRequest(f"timestamp_granularities: unknown {sorted(unknown)}; use segment and/or word")
    temperature = form.one("temperature")
    try:
        if temperature is not None and not 0.0 <= float(temperature) <= 1.0:
            raise ValueError
    except ValueError as exc:
        raise InvalidRequest("temperature must be a number from 0 to 1") from exc
    try:
        params = TranscribeParams(
            language=form.one("language") or None,
            word_timestamps="word" in granularities,
            prompt=form.one("prompt") or None,
            model=form.one("model") or None,
        )
        if form.upload is None:
            return TranscribeRequest(media_url=str(url), params=params, response_format="verbose_json")
        return UploadRequest(upload=form.upload, params=params, response_format="verbose_json")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(f"invalid request: {problems}") from exc


def _verbose(output: TranscribeOutput, words: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "model": output.model,
        "language": output.language or next((s.language for s in output.segments if s.language), None) or "english",
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


def render(output: TranscribeOutput, fmt: str, words: bool) -> web.Response:
    if fmt == "json":
        return web.json_response({"text": output.text, "model": output.model})
    if fmt == "verbose_json":
        return web.json_response(_verbose(output, words), dumps=json.dumps)
    return web.Response(text=formats.render(output, fmt), content_type=formats.CONTENT_TYPES[fmt], charset="utf-8")


async def transcriptions(request: web.Request, settings: Settings, run: RunTranscription) -> web.Response:
    form = await read_form(request, settings)
    try:
        fmt = form.one("response_format") or "json"
        if fmt not in FORMATS:
            raise InvalidRequest(f"response_format must be one of {', '.join(FORMATS)}")
        parsed = _request(form)
        Catalogue.from_settings(settings).pick(parsed.params.model)
        output = await run(request.app, parsed)
    finally:
        form.discard()
    return render(output, fmt, words=parsed.params.word_timestamps)


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": STARTED, "owned_by": "longscribe"}


async def list_models(request: web.Request, settings: Settings) -> web.Response:
    """GET /v1/models as OpenAI answers it; the first is the default (and what `whisper-1` means)."""
    names = Catalogue.from_settings(settings).names()
    return web.json_response({"object": "list", "data": [_model_card(name) for name in names]})


async def get_model(request: web.Request, settings: Settings) -> web.Response:
    """GET /v1/models/{model}: one card, or 404 naming those there are."""
    model = Catalogue.from_settings(settings).pick(request.match_info["model"])
    return web.json_response(_model_card(model.name))
