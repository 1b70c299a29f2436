"""The REST edge: routes, and the one place errors become HTTP answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import prometheus_client
from aiohttp import web
from pydantic import ValidationError
from yarl import URL

from orchestrator import formats
from orchestrator.api import auth, openai_compat, openapi
from orchestrator.api.admission import Admission
from orchestrator.assemble.progress import OnProgress
from orchestrator.common.observability import REQUEST_ID, REQUEST_ID_HEADER, Metrics, new_request_id
from orchestrator.errors import InvalidRequest, JobNotFound, LongscribeError, Overloaded, RequestTimeout
from orchestrator.infer import discovery
from orchestrator.infer.pool import TritonPool
from orchestrator.jobs import store as jobs
from orchestrator.media import guard
from orchestrator.media.relay import relaying
from orchestrator.pipeline import Pipeline, Transcriber
from orchestrator.schemas import TranscribeOutput, TranscribeParams, TranscribeRequest
from orchestrator.settings import Settings

log = logging.getLogger("longscribe.app")

SETTINGS = web.AppKey("settings", Settings)
TRANSCRIBER: web.AppKey[Transcriber] = web.AppKey("transcriber")
POOL = web.AppKey("pool", TritonPool)
ADMISSION = web.AppKey("admission", Admission)
RESOLVE: web.AppKey[discovery.Resolve] = web.AppKey("resolve")
METRICS = web.AppKey("metrics", Metrics)
JOBS = web.AppKey("jobs", jobs.JobStore)
MEDIA_CLIENT: web.AppKey[tuple[aiohttp.ClientSession, guard.MediaPolicy]] = web.AppKey("media_client")
KEYS: web.AppKey[list[bytes]] = web.AppKey("api_key_digests")
OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/openapi.json", "/metrics"})  # probes, the API's description

MAX_BODY_BYTES = 1 << 20  # a transcribe body is a URL and a few numbers
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(exc: LongscribeError) -> web.Response:
    response = web.json_response(exc.to_json(), status=exc.status)
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    return response


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's id in every log line, in the answer, and in each Triton call; /v1 outcomes counted."""
    token = REQUEST_ID.set(new_request_id(request.headers.get(REQUEST_ID_HEADER)))
    try:
        response = await handler(request)
        response.headers[REQUEST_ID_HEADER] = REQUEST_ID.get()
        if request.path.startswith("/v1/"):
            route = request.match_info.route.resource.canonical if request.match_info.route.resource else "?"
            request.app[METRICS].requests.labels(route, str(response.status)).inc()
        return response
    finally:
        REQUEST_ID.reset(token)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Named errors -> their status and JSON; anything else -> a bare 500, logged."""
    try:
        return await handler(request)
    except LongscribeError as exc:
        log.info("%s %s -> %s %s", request.method, request.path, exc.status, exc.message)
        return _error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = {"error": {"code": "http_error", "message": exc.reason, "hint": "Check the method and path."}}
        return web.json_response(body, status=exc.status)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return _error(LongscribeError("internal error"))


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in OPEN_PATHS:
        auth.check(request.headers.get("Authorization"), request.app[KEYS])
    return await handler(request)


async def _parse(
    request: web.Request, settings: Settings, model: type[TranscribeRequest] = TranscribeRequest
) -> TranscribeRequest:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc
    if "response_format" in request.query and isinstance(body, dict):
        body = {**body, "response_format": request.query["response_format"]}  # the query wins
    try:
        parsed = model.model_validate(body)
        parsed.params.check_limits(settings.max_macro_chunk_size_sec)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
        raise InvalidRequest(f"invalid request: {problems}") from exc
    except ValueError as exc:
        raise InvalidRequest(f"invalid request: {exc}") from exc
    return parsed


async def run_transcription(
    app: web.Application, parsed: TranscribeRequest, upload: Path | None = None, progress: OnProgress | None = None
) -> TranscribeOutput:
    """One transcription under the service's admission control and per-request deadline."""
    settings, metrics = app[SETTINGS], app[METRICS]
    deadline = asyncio.timeout(settings.request_timeout_sec)  # counts from now: waiting in the queue included
    metrics.in_flight.inc()
    try:
        async with app[ADMISSION].slot(), deadline:
            if upload or progress:
                output = await app[TRANSCRIBER](parsed, upload, progress)
            else:  # the plain call: stand-in transcribers in the unit tests take only the request
                output = await app[TRANSCRIBER](parsed)
    except TimeoutError as exc:
        if not deadline.expired():
            raise
        raise RequestTimeout(
            f"the request took longer than {settings.request_timeout_sec:g} s and was cancelled"
        ) from exc
    finally:
        metrics.in_flight.dec()
    metrics.audio_seconds.inc(output.input_duration_sec)
    metrics.speedup.observe(output.speedup)
    return output


async def transcribe(request: web.Request) -> web.Response:
    parsed = await _parse(request, request.app[SETTINGS])
    output = await run_transcription(request.app, parsed)
    fmt = parsed.response_format
    return web.Response(text=formats.render(output, fmt), content_type=formats.CONTENT_TYPES[fmt], charset="utf-8")


async def openai_transcriptions(request: web.Request) -> web.Response:
    return await openai_compat.transcriptions(request, request.app[SETTINGS], run_transcription)


async def start_job(request: web.Request) -> web.Response:
    """JSON (the /v1/transcribe body, plus webhook_url), or multipart: `file` and optional `params` JSON."""
    settings = request.app[SETTINGS]
    request.app[ADMISSION].check_room()
    if request.content_type == "multipart/form-data":
        form = await openai_compat.read_form(request, settings.upload_dir, settings.max_upload_bytes)
        try:
            if form.upload is None:
                raise InvalidRequest("a multipart job needs a `file`; for a URL send JSON")
            params = TranscribeParams.model_validate_json(form.one("params") or "{}")
            params.check_limits(settings.max_macro_chunk_size_sec)
        except (ValidationError, ValueError) as exc:
            if form.upload is not None:
                form.upload.unlink(missing_ok=True)
            raise InvalidRequest(f"invalid params: {exc}") from exc
        # an upload has no URL: the job is handed the file itself
        job_request = jobs.JobRequest.model_construct(media_url="upload:", params=params, webhook_url=None)
        job = request.app[JOBS].start(job_request, upload=form.upload)
    else:
        parsed = await _parse(request, settings, jobs.JobRequest)
        job = request.app[JOBS].start(jobs.JobRequest.model_validate(parsed.model_dump()))
    request.app[METRICS].jobs_in_flight.set(request.app[JOBS].in_flight())
    body = {**job.to_json(), "links": {"self": f"/v1/jobs/{job.id}", "events": f"/v1/jobs/{job.id}/events"}}
    return web.json_response(body, status=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _job(request: web.Request) -> jobs.Job:
    job = request.app[JOBS].get(request.match_info["job_id"])
    if job is None:
        raise JobNotFound(f"no job {request.match_info['job_id']!r}")
    return job


async def get_job(request: web.Request) -> web.Response:
    return web.json_response(_job(request).to_json())


async def job_transcript(request: web.Request) -> web.Response:
    """The finished transcript as a download: ?format=srt|vtt|text|json|verbose_json."""
    job = _job(request)
    fmt = request.query.get("format", "json")
    if fmt not in formats.FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(formats.FORMATS)}")
    if job.result is None:
        raise InvalidRequest(f"the job is {job.status}: the transcript exists once it has succeeded")
    extension = {"text": "txt", "verbose_json": "json"}.get(fmt, fmt)
    return web.Response(
        text=formats.render(job.result, fmt),
        content_type=formats.CONTENT_TYPES[fmt],
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="transcript-{job.id}.{extension}"'},
    )


async def cancel_job(request: web.Request) -> web.Response:
    """Cancel and wait for the job to wind down (its FFmpeg and inference stop)."""
    job = _job(request)
    request.app[JOBS].cancel(job)
    if job.task is not None:
        await asyncio.wait({job.task})
    return web.json_response(job.to_json())


async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `status`, one `chunk` per finished macro chunk, then `end` with the job."""
    job = _job(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    async for event in jobs.events(job):
        await response.write(f"event: {event['event']}\ndata: {json.dumps(event['data'])}\n\n".encode())
    return response


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    metrics.jobs_in_flight.set(request.app[JOBS].in_flight())
    pool = request.app.get(POOL)
    if pool is not None:
        for url, ready in (await pool.readiness()).items():
            metrics.endpoint_up.labels(url).set(1 if ready else 0)
    body = prometheus_client.generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST})


WEB_PAGE = Path(__file__).resolve().parent / "web" / "index.html"


async def web_page(request: web.Request) -> web.FileResponse:
    """One static page: paste a URL or drop a file, watch it move, read and play the transcript."""
    return web.FileResponse(WEB_PAGE, headers={"Cache-Control": "no-cache"})


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document())


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    pool = request.app.get(POOL)
    endpoints = await pool.readiness() if pool is not None else {}
    ready = all(endpoints.values())
    return web.json_response({"ready": ready, "endpoints": endpoints}, status=200 if ready else 503)


def create_app(
    settings: Settings, transcriber: Transcriber | None = None, resolve: discovery.Resolve = discovery.resolve_dns
) -> web.Application:
    """The service; pass `transcriber` to run without Triton (unit tests), `resolve` to play the DNS."""
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app[METRICS] = Metrics()
    app[SETTINGS] = settings
    app[RESOLVE] = resolve
    app[KEYS] = auth.load_keys(settings.api_keys, settings.api_keys_file)
    app[ADMISSION] = Admission(settings.max_requests_in_flight, settings.max_queued_requests, settings.retry_after_sec)
    app[JOBS] = jobs.JobStore(
        run=lambda request, progress, upload: run_transcription(app, request, upload, progress),
        ttl_s=settings.job_ttl_sec,
        webhook_secret=settings.webhook_secret,
        post_webhook=lambda url, body, headers: _post_webhook(app, url, body, headers),
    )
    app.cleanup_ctx.append(_media_client_ctx)
    app.on_shutdown.append(_stop_jobs)
    if transcriber is not None:
        app[TRANSCRIBER] = transcriber
    else:
        app.cleanup_ctx.append(_pipeline_ctx)
    app.router.add_get("/", web_page)
    app.router.add_post("/v1/transcribe", transcribe)
    app.router.add_post("/v1/audio/transcriptions", openai_transcriptions)
    app.router.add_post("/v1/jobs", start_job)
    app.router.add_get("/v1/jobs/{job_id}", get_job)
    app.router.add_delete("/v1/jobs/{job_id}", cancel_job)
    app.router.add_get("/v1/jobs/{job_id}/events", job_events)
    app.router.add_get("/v1/jobs/{job_id}/transcript", job_transcript)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/metrics", metrics_endpoint)
    return app


async def _media_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """The one guarded HTTP client, for media and webhooks alike (a stranger names both URLs)."""
    policy = guard.MediaPolicy.from_list(app[SETTINGS].allowed_media_hosts)
    async with guard.session(policy) as session:
        app[MEDIA_CLIENT] = (session, policy)
        yield


async def _stop_jobs(app: web.Application) -> None:
    """On shutdown, before any client closes: a job cancelled later would find its relay and pool gone."""
    await app[JOBS].close()


async def _post_webhook(app: web.Application, url: str, body: bytes, headers: dict[str, str]) -> None:
    session, policy = app[MEDIA_CLIENT]
    guard.check_literal(URL(url), policy)
    timeout = aiohttp.ClientTimeout(total=jobs.WEBHOOK_TIMEOUT_S)
    async with session.post(url, data=body, headers=headers, allow_redirects=False, timeout=timeout) as response:
        if response.status >= 300:
            log.warning("webhook %s answered %d", url, response.status)


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    """HTTP session and Triton clients live exactly as long as the app."""
    settings = app[SETTINGS]
    pool = TritonPool(
        urls=settings.triton_grpc_urls,
        model=settings.micro_chunk_model,
        whisper_model=settings.whisper_model,
        required_models=[settings.micro_chunk_model, settings.whisper_model],
        timeout_s=settings.chunk_timeout_sec,
    )
    session, policy = app[MEDIA_CLIENT]  # opened by _media_client_ctx, which runs first
    app[POOL] = pool
    try:
        async with contextlib.AsyncExitStack() as stack:
            if settings.triton_discovery_dns:
                await stack.enter_async_context(
                    discovery.discovering(
                        pool, settings.triton_discovery_dns, settings.triton_discovery_interval_sec, app[RESOLVE]
                    )
                )
            relay = await stack.enter_async_context(
                relaying(
                    session, policy, settings.max_redirects, settings.media_read_retries, settings.media_timeout_sec
                )
            )
            transcriber: Transcriber = Pipeline(settings, relay, pool, observe_chunk=app[METRICS].chunk_seconds.observe)
            app[TRANSCRIBER] = transcriber
            yield
    finally:
        await pool.close()
