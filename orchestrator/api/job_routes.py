"""/v1/jobs: start, read, cancel, stream events, download the transcript, resend the webhook; any replica.

A job is its key's: every route on one job looks it up through
`tenancy.owned`, which answers 404 to any other key (admins aside)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp_sse import sse_response
from pydantic import ValidationError
from redis.exceptions import RedisError

from orchestrator import formats
from orchestrator.api import bodies, tenancy, transcripts
from orchestrator.api.edge import check_runnable, parse_request
from orchestrator.api.keys import CALLER, EVENT_HUB, HOST_RESOLVER, JOBS, METRICS, SETTINGS, STREAMS, WEBHOOKS
from orchestrator.assemble.final import PartMissing
from orchestrator.errors import InvalidRequest, JobNotFound, JobsUnavailable
from orchestrator.infer.catalogue import Catalogue
from orchestrator.jobs import events as job_events_log
from orchestrator.jobs.records import JobRequest, JobSpec
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.stored import stored, with_partial, with_result, with_result_size
from orchestrator.media import guard
from orchestrator.schemas import TranscribeParams, TranscribeRequest, UploadRequest

log = logging.getLogger("longscribe.jobs")
EVENT_ID = re.compile(r"\d+(-\d+)?")  # a Redis stream entry id, as the events carry them


def _store(request: web.Request) -> JobStore:
    store = request.app.get(JOBS)
    if store is None:
        raise JobsUnavailable("this service runs without Redis, so it keeps no jobs")
    return store


async def start_job(request: web.Request) -> web.Response:
    """JSON (the /v1/transcribe body, plus webhook_url), or multipart: `file` and optional `params` JSON."""
    owner = request[CALLER].key_id
    if request.content_type == "multipart/form-data":
        store = _store(request)
        await store.check_room(owner)  # before an upload is read: a full queue refuses at once
        spec = await _upload_spec(request, owner)
    else:
        parsed = await parse_request(request, request.app[SETTINGS], JobRequest)
        assert isinstance(parsed, JobRequest)
        media = TranscribeRequest(
            media_url=parsed.media_url, params=parsed.params, response_format=parsed.response_format
        )
        spec, store = JobSpec(request=media, webhook_url=parsed.webhook_url, owner=owner), _store(request)
        await store.check_room(owner)  # a full queue refuses before reference clips are read (FFmpeg runs)
        if parsed.webhook_url is not None:  # a bad one is a 422 now, not a delivery retried until the job expires
            policy = guard.webhook_policy(request.app[SETTINGS].allowed_webhook_hosts)
            await guard.check_url(parsed.webhook_url, policy, request.app[HOST_RESOLVER])
        await check_runnable(request.app, parsed.params)  # last: it may run FFmpeg on reference clips
    try:
        job_id = await store.submit(spec)
    except BaseException:
        if isinstance(spec.request, UploadRequest):
            spec.request.upload.path.unlink(missing_ok=True)
        raise
    request.app[METRICS].jobs_in_flight.set(await store.in_flight())
    body = await store.to_json(job_id)  # just queued: no transcript yet
    return web.json_response(body, status=202, headers={"Location": f"/v1/jobs/{job_id}"})


async def _upload_spec(request: web.Request, owner: str) -> JobSpec:
    """A multipart job: the `file` saved under upload_dir (which every worker must reach), and its params."""
    settings = request.app[SETTINGS]
    form = await bodies.read_form(request, settings)
    try:
        if form.upload is None:
            raise InvalidRequest("a multipart job needs a `file`; for a URL send JSON")
        params = TranscribeParams.model_validate(bodies.loads(form.one("params") or "{}", "params"))
        params.check_limits(settings.max_macro_chunk_size_sec)
        Catalogue.from_settings(settings).pick(params.model, params.task)
        await check_runnable(request.app, params)  # the file is read by now: refused, it is deleted below
        return JobSpec(request=UploadRequest(upload=form.upload, params=params), owner=owner)
    except (ValidationError, ValueError) as exc:
        form.discard()
        raise InvalidRequest(f"invalid params: {exc}") from exc
    except BaseException:
        form.discard()
        raise


async def _owned(request: web.Request) -> tuple[JobStore, str]:
    """The store and the job's id, once the caller may see the job (404 for any other key, as for no job)."""
    store, job_id = _store(request), request.match_info["job_id"]
    await tenancy.owned(store, job_id, request[CALLER])
    return store, job_id


async def get_job(request: web.Request) -> web.StreamResponse:
    """The job; a finished one with its transcript as "result", streamed from Redis in pieces (hours of
    transcript are megabytes, which this process never holds whole); a running one with the transcript of
    its finished chunks so far as "partial", assembled from their checkpoints one chunk at a time."""
    store, job_id = await _owned(request)
    return await _answer(request, store, job_id)


async def _answer(request: web.Request, store: JobStore, job_id: str) -> web.StreamResponse:
    head = await store.to_json(job_id)
    if head["status"] == "running":
        partial = await store.partial(job_id)
        if partial is not None:
            return await _stream(request, with_partial(head, partial))
        return web.json_response(head)
    found = await stored(store.client, job_id) if head["status"] == "succeeded" else None
    if found is None:
        return web.json_response(head)
    return await _stream(request, with_result(head, found), with_result_size(head, found))


async def _stream(request: web.Request, pieces: AsyncIterator[bytes], size: int | None = None) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json; charset=utf-8"})
    response.content_length = size
    await response.prepare(request)
    try:
        async for piece in pieces:
            await response.write(piece)
    except (PartMissing, RedisError) as exc:
        # past the head no status can be sent: a partial whose checkpoints went (the job ended and its client
        # was slower than their grace) or a Redis fault ends the answer short, as one line here, not a traceback
        log.warning("job answer cut short after its head: %s", exc or type(exc).__name__)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def job_transcript(request: web.Request) -> web.StreamResponse:
    """The finished transcript as a download, ?format=srt|vtt|tsv|text|json|verbose_json (srt and vtt
    wrapped by ?max_line_width=N&max_line_count=M; a diarized one's speakers renamed by
    ?speaker_names={"SPEAKER_00": "Ada"}), read from Redis and streamed in pieces, so neither its size nor
    its rendering holds up the loop, nor is it ever whole in memory."""
    store, job_id = await _owned(request)
    fmt, layout = transcripts.format_of(request.query), transcripts.layout(request.query)  # before it is read
    names = transcripts.speaker_names(request.query)
    found = await stored(store.client, job_id)
    if found is None:
        status = (await store.fields(job_id))["status"]
        raise InvalidRequest(f"the job is {status}: the transcript exists once it has succeeded")
    extension = formats.EXTENSIONS.get(fmt, fmt)
    disposition = {"Content-Disposition": f'attachment; filename="transcript-{job_id}.{extension}"'}
    piece_bytes = request.app[SETTINGS].transcript_piece_bytes
    return await transcripts.stream_stored(request, found, fmt, piece_bytes, disposition, layout, names)


async def cancel_job(request: web.Request) -> web.StreamResponse:
    """Cancel, wherever the job runs, and wait for it to wind down (its FFmpeg and inference stop); answered
    as GET answers (a job that had already succeeded keeps its transcript, streamed, never held whole)."""
    store, job_id = await _owned(request)
    await store.cancel(job_id)
    return await _answer(request, store, job_id)


async def redeliver_webhook(request: web.Request) -> web.Response:
    """Send a finished job's webhook again (a new round of attempts, the same delivery id); 202 with its state.

    409 when the job has no webhook_url or has not finished yet."""
    _, job_id = await _owned(request)
    webhooks = request.app.get(WEBHOOKS)
    if webhooks is None:
        raise JobsUnavailable("this service runs without Redis, so it keeps no jobs")
    return web.json_response({"id": job_id, "webhook": await webhooks.redeliver(job_id)}, status=202)


async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `status`, one `chunk` per finished macro chunk, then `end` with status, summary
    and links (never the transcript: it is at links.transcript).

    Each event has an `id:`; a client that reconnects, to any replica, with
    `Last-Event-ID` gets the events after it. An idle stream gets a comment
    every `sse_keepalive_sec`, so proxies do not close it. One key holds at most
    `max_event_streams_per_key` streams open on this process (429 beyond)."""
    store, job_id = await _owned(request)
    last_event_id = request.headers.get("Last-Event-ID")
    if last_event_id is not None and not EVENT_ID.fullmatch(last_event_id):
        raise InvalidRequest(f"Last-Event-ID {last_event_id!r} is not an event id of this service")
    with request.app[STREAMS].hold(request[CALLER]):  # freed however the stream ends
        events = job_events_log.events(store, request.app[EVENT_HUB], job_id, last_event_id)
        keepalive_s = request.app[SETTINGS].sse_keepalive_sec
        try:
            # headers at once, before the first event: a client resuming at the newest id would otherwise
            # get nothing, not even keep-alives, until the job's next event, and time out reading headers
            async with sse_response(request, ping_interval=keepalive_s, sep="\n") as stream:
                # ConnectionResetError: the client left, it may come back with Last-Event-ID;
                # JobNotFound: the job is gone since the ownership check (expired, lost by Redis): the stream ends
                with contextlib.suppress(ConnectionResetError, JobNotFound):
                    async for event in events:
                        await stream.send(json.dumps(event.data), id=event.id, event=event.event)
        finally:
            await events.aclose()  # it leaves the hub now, not when collected
    return stream
