"""The edge every request passes: request ids, API keys, bodies parsed, and the one place
named errors become HTTP answers."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import ValidationError
from redis.exceptions import RedisError

from orchestrator.api import auth, bodies, openai_errors
from orchestrator.api.keys import CALLER, KEYS, METRICS, TRANSCRIBER
from orchestrator.common.observability import (
    REQUEST_ID,
    REQUEST_ID_HEADER,
    UNMATCHED_ROUTE,
    method_label,
    new_request_id,
    status_class,
)
from orchestrator.errors import InvalidRequest, JobStoreUnreachable, LongscribeError, Overloaded
from orchestrator.infer.catalogue import Catalogue
from orchestrator.pipeline import Pipeline
from orchestrator.schemas import TranscribeParams, TranscribeRequest
from orchestrator.settings import Settings

log = logging.getLogger("longscribe.app")

MAX_BODY_BYTES = 1 << 20  # a transcribe body is a URL and a few numbers
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID_KEY = web.RequestKey("request_id", str)  # where the middleware leaves the id for send_request_id


OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/openapi.json", "/metrics"})  # probes, the API's description


STORE_RETRY_AFTER_S = 5  # Redis restarts, or a replica is promoted, in seconds


def _error(exc: LongscribeError, request: web.Request) -> web.Response:
    """The error's answer: OpenAI's shape and statuses on OpenAI's routes (`openai_errors`), ours elsewhere."""
    if openai_errors.is_openai_path(request.path):
        status, body = openai_errors.answer(exc)
        response = web.json_response(body, status=status)
    else:
        response = web.json_response(exc.to_json(), status=exc.status)
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    elif isinstance(exc, JobStoreUnreachable):
        response.headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
    return response


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's id in every log line, in the answer, and in each Triton call; /v1 outcomes counted,
    every request timed by its route's pattern (bounded labels, whatever the URL)."""
    request[REQUEST_ID_KEY] = new_request_id(request.headers.get(REQUEST_ID_HEADER))
    token = REQUEST_ID.set(request[REQUEST_ID_KEY])
    metrics, started = request.app[METRICS], time.monotonic()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else UNMATCHED_ROUTE
    outcome = "cancelled"  # stays so when the client hangs up (the handler is cancelled) before the end
    try:
        response = await handler(request)
        outcome = status_class(response.status)
        if request.path.startswith("/v1/"):
            metrics.requests.labels(route, str(response.status)).inc()
        return response
    except web.HTTPException as exc:  # a redirect, passed on by error_middleware
        outcome = status_class(exc.status)
        raise
    finally:
        metrics.request_seconds.labels(route, method_label(request.method), outcome).observe(time.monotonic() - started)
        REQUEST_ID.reset(token)


async def send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """The request's id in the answer's headers, set as they are sent: a streamed answer sends them
    before its handler returns."""
    if REQUEST_ID_KEY in request:
        response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID_KEY]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Named errors -> their status and JSON; anything else -> a bare 500, logged."""
    try:
        return await handler(request)
    except LongscribeError as exc:
        log.info("%s %s -> %s %s", request.method, request.path, exc.status, exc.message)
        return _error(exc, request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = {"code": "http_error", "message": exc.reason, "hint": "Check the method and path."}
        if openai_errors.is_openai_path(request.path):
            return web.json_response(openai_errors.body(exc.status, detail, None), status=exc.status)
        return web.json_response({"error": detail}, status=exc.status)
    except RedisError as exc:  # the job store is down: a retry later will do, not an internal error
        log.warning("%s %s: Redis failed: %s", request.method, request.path, exc)
        return _error(JobStoreUnreachable(f"the job store does not answer ({type(exc).__name__})"), request)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(LongscribeError("internal error"), request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who calls, on the request (CALLER) for the routes to decide what it may see; 401 without a valid key."""
    if request.path not in OPEN_PATHS:
        request[CALLER] = auth.check(request.headers.get("Authorization"), request.app[KEYS])
    return await handler(request)


# body fields a POST /v1/transcribe may also give in its query (?response_format=srt&max_line_width=42)
QUERY_FIELDS = frozenset({"response_format", "max_line_width", "max_line_count"})


async def parse_request(
    request: web.Request, settings: Settings, model: type[TranscribeRequest] = TranscribeRequest
) -> TranscribeRequest:
    body = await bodies.read_json(request, request.client_max_size)
    overrides = {k: v for k, v in request.query.items() if k in QUERY_FIELDS}
    if overrides and isinstance(body, dict):
        body = {**body, **overrides}  # the query wins
    try:
        parsed = model.model_validate(body)
        parsed.params.check_limits(settings.max_macro_chunk_size_sec)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(f"invalid request: {problems}") from exc
    except ValueError as exc:
        raise InvalidRequest(f"invalid request: {exc}") from exc
    # 404 (no such model) or 422 (translate on an English-only one) now, not a job failing later
    Catalogue.from_settings(settings).pick(parsed.params.model, parsed.params.task)
    return parsed


async def check_runnable(app: web.Application, params: TranscribeParams) -> None:
    """What only this service's Triton can refuse, refused before a job is queued rather than by the worker
    that takes it: diarize without a speaker encoder (DiarizationUnsupported), a known speaker's reference clip
    that cannot be used (SpeakerReferenceInvalid). A stand-in transcriber (unit tests) is not asked."""
    transcriber = app[TRANSCRIBER]
    if isinstance(transcriber, Pipeline):
        await transcriber.check_diarization(params)
