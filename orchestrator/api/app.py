"""The service: its routes, and what lives as long as the app (clients, pool, relay, jobs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

import prometheus_client
from aiohttp import web

from orchestrator.api import (
    auth,
    job_routes,
    job_wiring,
    openai_compat,
    openai_stream,
    openapi,
    readiness,
    transcripts,
)
from orchestrator.api.admission import Admission
from orchestrator.api.edge import (
    MAX_BODY_BYTES,
    auth_middleware,
    error_middleware,
    parse_request,
    request_id_middleware,
    send_request_id,
)
from orchestrator.api.keys import (
    ADMISSION,
    HOST_RESOLVER,
    JOBS,
    KEYS,
    MEDIA_CLIENT,
    METRICS,
    POOL,
    RESOLVE,
    SETTINGS,
    STREAMS,
    TRANSCRIBER,
)
from orchestrator.api.tenancy import StreamLimit
from orchestrator.assemble.final import Assembled
from orchestrator.assemble.progress import OnProgress
from orchestrator.common.observability import Metrics
from orchestrator.errors import RequestTimeout
from orchestrator.infer import capacity, discovery
from orchestrator.infer.catalogue import Catalogue
from orchestrator.infer.pool import TritonPool
from orchestrator.media import guard
from orchestrator.media.relay import relaying
from orchestrator.pipeline import Checkpoints, Pipeline, Transcriber
from orchestrator.schemas import MediaRequest, TranscribeOutput
from orchestrator.settings import Settings

log = logging.getLogger("longscribe.app")

__all__ = ["POOL", "create_app", "run_transcription"]
MODEL_HEADER = "X-Longscribe-Model"  # the model that answered, whatever the format


async def run_transcription(
    app: web.Application,
    parsed: MediaRequest,
    progress: OnProgress | None = None,
    checkpoints: Checkpoints | None = None,
    admitted: bool = False,
) -> TranscribeOutput:
    """One transcription under the service's admission control and per-request deadline.

    `admitted`: a job, already accepted by the fleet's queue, waits for a slot without a room check."""
    return await _governed(app, admitted, lambda: app[TRANSCRIBER](parsed, progress, checkpoints))


async def run_job(
    app: web.Application, parsed: MediaRequest, progress: OnProgress, checkpoints: Checkpoints
) -> TranscribeOutput | Assembled:
    """A job's transcription (admitted by the fleet's queue): with the real pipeline, the answer stays in the
    checkpoints until the job's end writes it to Redis piece by piece (`final.Assembled`)."""
    transcriber = app[TRANSCRIBER]
    if isinstance(transcriber, Pipeline):
        return await _governed(app, True, lambda: transcriber.assemble(parsed, progress, checkpoints))
    return await _governed(app, True, lambda: transcriber(parsed, progress, checkpoints))


class _Figures(Protocol):
    """What the metrics read of an answer, whole or still to be written."""

    @property
    def input_duration_sec(self) -> float: ...

    @property
    def speedup(self) -> float: ...


Answer = TypeVar("Answer", bound=_Figures)


async def _governed(app: web.Application, admitted: bool, run: Callable[[], Awaitable[Answer]]) -> Answer:
    settings, metrics = app[SETTINGS], app[METRICS]
    deadline = asyncio.timeout(settings.request_timeout_sec)  # counts from now: waiting in the queue included
    metrics.in_flight.inc()
    try:
        async with app[ADMISSION].slot(admitted), deadline:
            output = await run()
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


async def transcribe(request: web.Request) -> web.StreamResponse:
    parsed = await parse_request(request, request.app[SETTINGS])
    output = await run_transcription(request.app, parsed)
    headers = {MODEL_HEADER: output.model} if output.model else None  # srt and text have no field for it
    piece_bytes = request.app[SETTINGS].transcript_piece_bytes
    return await transcripts.stream(request, output, parsed.response_format, piece_bytes, headers, parsed.layout)


async def openai_transcriptions(request: web.Request) -> web.StreamResponse:
    """OpenAI's transcription: one answer at the end, or with stream=true its text events as chunks settle."""
    request.app[ADMISSION].check_room()  # before the upload (up to max_upload_bytes) is read: 429 at once
    form, asked = await openai_compat.read(request, request.app[SETTINGS], "transcribe")
    if asked.stream:
        return await openai_stream.stream(request, form, asked)
    return await openai_compat.answer(request, run_transcription, form, asked)


async def openai_translations(request: web.Request) -> web.Response:
    """OpenAI's translation: English text from speech in any language (a multilingual model)."""
    request.app[ADMISSION].check_room()
    form, asked = await openai_compat.read(request, request.app[SETTINGS], "translate")
    return await openai_compat.answer(request, run_transcription, form, asked)


async def models(request: web.Request) -> web.Response:
    return await openai_compat.list_models(request, request.app[SETTINGS])


async def model(request: web.Request) -> web.Response:
    return await openai_compat.get_model(request, request.app[SETTINGS])


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    if JOBS in request.app:
        metrics.jobs_in_flight.set(await request.app[JOBS].in_flight())
    if metrics.count_queued_jobs is not None:
        metrics.jobs_queued.set(await metrics.count_queued_jobs())
    pool = request.app.get(POOL)
    if pool is not None:
        for url, ready in (await pool.readiness()).items():
            metrics.endpoint_up.labels(url).set(1 if ready else 0)
        metrics.observe_triton(await pool.queue_stats())
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


def create_app(
    settings: Settings,
    transcriber: Transcriber | None = None,
    resolve: discovery.Resolve = discovery.resolve_dns,
    host_resolver: guard.ResolverFactory = guard.SYSTEM_RESOLVER,
) -> web.Application:
    """The service; pass `transcriber` to run without Triton (unit tests), `resolve` to play the DNS of
    Triton discovery, `host_resolver` the DNS of media and webhook hosts (the address guard still judges)."""
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, auth_middleware], client_max_size=MAX_BODY_BYTES
    )
    app.on_response_prepare.append(send_request_id)
    app[METRICS] = Metrics()
    app[SETTINGS] = settings
    app[RESOLVE] = resolve
    app[HOST_RESOLVER] = host_resolver
    app[KEYS] = auth.load(settings)  # KeysMisconfigured: a keys source without keys does not start
    _say_who_may_call(app[KEYS], settings)
    app[STREAMS] = StreamLimit(settings.max_event_streams_per_key, settings.retry_after_sec)
    app[ADMISSION] = Admission(settings.max_requests_in_flight, settings.max_queued_requests, settings.retry_after_sec)
    app[METRICS].count_queued_jobs = lambda: _waiting(app)
    app.cleanup_ctx.append(_media_client_ctx)
    app.cleanup_ctx.append(_loop_lag_probe_ctx)
    job_wiring.wire(app, lambda request, progress, checkpoints: run_job(app, request, progress, checkpoints))
    if transcriber is not None:
        app[TRANSCRIBER] = transcriber
    else:
        app.cleanup_ctx.append(_pipeline_ctx)
    app.router.add_get("/", web_page)
    app.router.add_post("/v1/transcribe", transcribe)
    app.router.add_post("/v1/audio/transcriptions", openai_transcriptions)
    app.router.add_post("/v1/audio/translations", openai_translations)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/v1/models/{model:.+}", model)
    app.router.add_post("/v1/jobs", job_routes.start_job)
    app.router.add_get("/v1/jobs/{job_id}", job_routes.get_job)
    app.router.add_delete("/v1/jobs/{job_id}", job_routes.cancel_job)
    app.router.add_get("/v1/jobs/{job_id}/events", job_routes.job_events)
    app.router.add_get("/v1/jobs/{job_id}/transcript", job_routes.job_transcript)
    app.router.add_post("/v1/jobs/{job_id}/webhook", job_routes.redeliver_webhook)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readiness.readyz)
    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/metrics", metrics_endpoint)
    return app


def _say_who_may_call(keyring: auth.Keyring, settings: Settings) -> None:
    """Auth off is said at every start, loudest when nobody chose it."""
    if keyring.on:
        admins = sum(admin for _, admin in keyring.keys)
        log.info("API keys required: %d keys, %d of them admin", len(keyring.keys), admins)
    elif keyring.configured:
        log.warning("auth is off, as configured: every caller of %s:%s sees every job", settings.host, settings.port)
    else:
        log.warning(
            "AUTH IS OFF: no API keys are configured, so anyone who reaches %s:%s may transcribe, read and cancel "
            "every job. Set LONGSCRIBE_API_KEYS or LONGSCRIBE_API_KEYS_FILE, or state it with --no-auth.",
            settings.host,
            settings.port,
        )


async def _waiting(app: web.Application) -> int:
    """What users wait in: this process's admission queue, plus the jobs waiting anywhere in the fleet."""
    store = app.get(JOBS)
    return app[ADMISSION].waiting + (await store.queued() if store is not None else 0)


async def _media_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """The guarded HTTP client for media (webhooks have their own, with their own allow-list: job_wiring)."""
    policy = guard.media_policy(app[SETTINGS].allowed_media_hosts)
    async with guard.session(policy, app[HOST_RESOLVER]) as session:
        app[MEDIA_CLIENT] = (session, policy)
        yield


async def _loop_lag_probe_ctx(app: web.Application) -> AsyncIterator[None]:
    """A timer that measures how long the event loop is blocked, as long as the app runs (on /metrics)."""
    probe = asyncio.create_task(app[METRICS].probe_loop_lag(app[SETTINGS].loop_lag_probe_sec))
    yield
    probe.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await probe


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    """HTTP session and Triton clients live exactly as long as the app."""
    settings = app[SETTINGS]
    catalogue = Catalogue.from_settings(settings)
    pool = TritonPool(
        urls=settings.triton_grpc_urls,
        model=settings.micro_chunk_model,
        whisper_model=catalogue.default.triton_name,
        required_models=[settings.micro_chunk_model, *(m.triton_name for m in catalogue.models)],
        timeout_s=settings.chunk_timeout_sec,
        on_instances=lambda url, instances: capacity.warn_on_mismatch(settings, instances, f"Triton at {url}"),
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
