"""/v1/jobs: start, read, cancel, stream events, download the transcript."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web
from aiohttp_sse import sse_response
from pydantic import ValidationError

from orchestrator import formats
from orchestrator.api import openai_compat, transcripts
from orchestrator.api.edge import parse_request
from orchestrator.api.keys import ADMISSION, JOBS, METRICS, SETTINGS
from orchestrator.errors import InvalidRequest, JobNotFound
from orchestrator.jobs import events as event_log
from orchestrator.jobs import store as jobs
from orchestrator.jobs.links import links
from orchestrator.schemas import TranscribeParams


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
        parsed = await parse_request(request, settings, jobs.JobRequest)
        job = request.app[JOBS].start(jobs.JobRequest.model_validate(parsed.model_dump()))
    request.app[METRICS].jobs_in_flight.set(request.app[JOBS].in_flight())
    body = {**job.to_json(), "links": links(job.id)}
    return web.json_response(body, status=202, headers={"Location": f"/v1/jobs/{job.id}"})


def _job(request: web.Request) -> jobs.Job:
    job = request.app[JOBS].get(request.match_info["job_id"])
    if job is None:
        raise JobNotFound(f"no job {request.match_info['job_id']!r}")
    return job


async def get_job(request: web.Request) -> web.Response:
    return web.json_response(_job(request).to_json())


async def job_transcript(request: web.Request) -> web.StreamResponse:
    """The finished transcript as a download, ?format=srt|vtt|text|json|verbose_json, streamed in pieces
    so neither its size nor its rendering holds up the loop."""
    job = _job(request)
    fmt = request.query.get("format", "json")
    if fmt not in formats.FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(formats.FORMATS)}")
    output = await event_log.result(request.app[JOBS], job.id)
    if output is None:
        raise InvalidRequest(f"the job is {job.status}: the transcript exists once it has succeeded")
    extension = {"text": "txt", "verbose_json": "json"}.get(fmt, fmt)
    disposition = {"Content-Disposition": f'attachment; filename="transcript-{job.id}.{extension}"'}
    return await transcripts.stream(request, output, fmt, request.app[SETTINGS].transcript_piece_bytes, disposition)


async def cancel_job(request: web.Request) -> web.Response:
    """Cancel and wait for the job to wind down (its FFmpeg and inference stop)."""
    job = _job(request)
    request.app[JOBS].cancel(job)
    if job.task is not None:
        await asyncio.wait({job.task})
    return web.json_response(job.to_json())


async def job_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: `status`, one `chunk` per finished macro chunk, then `end` with status and links.

    Each event has an `id:`; a client that reconnects with `Last-Event-ID` gets
    the events after it. An idle stream gets a comment every
    `sse_keepalive_sec`, so proxies do not close it."""
    job = _job(request)
    last_event_id = request.headers.get("Last-Event-ID")
    event_log.first_after(last_event_id)  # a bad id is a 400, before the stream starts
    keepalive_s = request.app[SETTINGS].sse_keepalive_sec
    async with sse_response(request, ping_interval=keepalive_s, sep="\n") as stream:
        try:
            async for event in event_log.events(request.app[JOBS], job.id, last_event_id):
                await stream.send(json.dumps(event.data), id=event.id, event=event.event)
        except ConnectionResetError:
            pass  # the client left; it may come back with Last-Event-ID
    return stream
