"""stream=true on /v1/audio/transcriptions: OpenAI's server-sent events, built on a job.

    data: {"type": "transcript.text.delta", "delta": " And so my fellow Americans"}
    ...
    data: {"type": "transcript.text.done", "text": "<the whole transcript>"}

With response_format=diarized_json, the speakers' segments come between the
last delta and `done`, one `transcript.text.segment` event each, as in
diarized_json's `segments` (ids seg_0.., speakers A, B, ... or a known name):

    data: {"type": "transcript.text.segment", "id": "seg_0", "start": 0.7, "end": 4.1, "text": "...", "speaker": "A"}

Speakers are known only once the whole recording's voices are clustered (at
the job's end), so the deltas go out live, without `segment_id` (the final
segments are cut where the speaker changes, which the live text cannot know),
and every segment with its final speaker follows at the end. (OpenAI sends
each segment as it completes; a label given before the end could change.)

The request becomes a job of the caller's key, as POST /v1/jobs makes one
(an upload included: the job owns the file from then on), and the job's
events are followed (`jobs.events`). Each `chunk` event carries the segments
that chunk settled: their text is one delta. A chunk settles once the one
after it is done, so the last one's segments come with the end: they are the
last delta, read from the finished transcript, and `transcript.text.done`
carries that transcript's text (case and punctuation at the joins
reconciled, so it can differ from the deltas joined there). A job that fails
ends the stream with `{"error": {...}}` in OpenAI's shape, which its client
raises as an APIError.

Memory does not grow with the media: the stream keeps where the text it
sent ends and the last segment's language, never the text; the segment
events are read from the stored transcript one at a time. A client that
hangs up has its handler cancelled (the server runs with
handler_cancellation), and the job is cancelled with it, so no FFmpeg or
inference runs for nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response
from redis.exceptions import RedisError

from longscribe_core.assembly import written_with_spaces
from orchestrator.api import openai_errors
from orchestrator.api.bodies import Form
from orchestrator.api.edge import check_runnable
from orchestrator.api.keys import CALLER, EVENT_HUB, JOBS, SETTINGS, STREAMS
from orchestrator.api.openai_compat import Asked, Letters, segment_event
from orchestrator.errors import (
    DiarizationUnsupported,
    InvalidRequest,
    JobNotFound,
    JobStoreUnreachable,
    LongscribeError,
    ShuttingDown,
)
from orchestrator.jobs import events as job_events
from orchestrator.jobs.records import JobSpec
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.stored import SegmentReader, Stored, stored
from orchestrator.schemas import Segment

log = logging.getLogger("longscribe.app")

DELTA, DONE = "transcript.text.delta", "transcript.text.done"
JOB_HEADER = "X-Longscribe-Job"  # the job behind the stream: GET /v1/jobs/{id} shows it, for logs and support
NO_JOBS_HINT = (
    "Leave `stream` out for one answer at the end, or run the service with Redis (LONGSCRIBE_REDIS_URL, or "
    "`longscribe serve`, which starts one)."
)
_CANCELLING: set[asyncio.Task[Any]] = set()  # cancels under way after their stream ended: held until done


class Told:
    """What a stream has told its client: segments as deltas that join as the transcript does (one space
    apart, none between two in a language written without spaces: longscribe_core.assembly.join_text)."""

    def __init__(self) -> None:
        self.until_s: float | None = None  # where the last segment sent ends (media time); None: none yet
        self.last_spaced: bool | None = None  # whether the last one sent is in a spaced language; None: none yet
        self.finished = False  # the job ended and the stream said how

    def delta(self, segments: list[dict[str, Any]]) -> str:
        """The text of `segments` (chunk events' form: Segment as JSON), following what was sent."""
        out: list[str] = []
        for segment in segments:
            if self.until_s is not None and float(segment.get("end_time_sec", 0.0)) <= self.until_s:
                continue  # told already: a resumed job's new worker reports the chunks it kept once more
            spaced = written_with_spaces(segment.get("language_code"))
            if self.last_spaced is not None and (self.last_spaced or spaced):
                out.append(" ")
            out.append(str(segment.get("text", "")))
            self.last_spaced = spaced
            self.until_s = float(segment.get("end_time_sec", 0.0))
        return "".join(out)

    def unsent(self, segment: Segment) -> bool:
        """Whether a segment of the finished transcript is past what the deltas told. By time, not by count: a
        diarized transcript cuts a told segment where its speaker changes, into parts that end no later than
        it did, while the next one ends later (segments are kept in order, apart, at least 20 ms long:
        `longscribe_core.assembly.append_chunk`)."""
        return self.until_s is None or segment.end_time_sec > self.until_s


async def stream(request: web.Request, form: Form, asked: Asked) -> web.StreamResponse:
    """Submit the job, then answer its text as OpenAI's events; refusals before the first byte are HTTP errors."""
    caller = request[CALLER]
    submitting: asyncio.Future[str] | None = None
    with contextlib.ExitStack() as held:
        try:
            store = request.app.get(JOBS)
            if store is None:
                raise InvalidRequest(
                    "stream=true follows a job, and this service runs without Redis, so it keeps no jobs",
                    hint=NO_JOBS_HINT,
                    param="stream",
                )
            held.enter_context(request.app[STREAMS].hold(caller))  # 429 past max_event_streams_per_key
            await store.check_room(caller.key_id)  # a full queue too refuses before reference clips are read
            try:  # a 400 now, not an error event in the stream; after the 429s, which cost no FFmpeg run
                await check_runnable(request.app, asked.request.params)
            except DiarizationUnsupported as exc:  # `diarize` is no field of OpenAI's form
                exc.param = asked.diarize_field
                raise
            submitting = asyncio.ensure_future(store.submit(JobSpec(request=asked.request, owner=caller.key_id)))
            job_id = await asyncio.shield(submitting)
        except asyncio.CancelledError:
            if submitting is None:  # the client left before the job was sent: the file is still the request's
                form.discard()
                raise
            # the client left while Redis took the job: once made, the job owns the file; cancel it, keep its media
            jobs = request.app[JOBS]
            submitting.add_done_callback(lambda done: _cancel_submitted(jobs, done, form))
            raise
        except BaseException:
            form.discard()  # not submitted: the file is still the request's
            raise
        told = Told()
        try:
            return await _follow(request, store, job_id, told, asked.response_format == "diarized_json")
        finally:
            if not told.finished:  # the client left, or this service is stopping: nobody reads the rest
                _cancel(store, job_id)


async def _follow(request: web.Request, store: JobStore, job_id: str, told: Told, speakers: bool) -> web.StreamResponse:
    """Send the job's text as it settles, until it ends (`told.finished`), the client leaves or the service stops;
    with `speakers`, its segments with their speakers at the end."""
    events = job_events.events(store, request.app[EVENT_HUB], job_id, None)
    try:
        keepalive_s, headers = request.app[SETTINGS].sse_keepalive_sec, {JOB_HEADER: job_id}
        async with sse_response(  # OpenAI streams the answer to a POST
            request, ping_interval=keepalive_s, sep="\n", headers=headers, allow_all_methods=True
        ) as sse:
            with contextlib.suppress(ConnectionResetError):  # the client left between two writes
                try:
                    async for event in events:
                        if event.event == "chunk":
                            await _send(sse, {"type": DELTA, "delta": told.delta(event.data.get("segments", []))})
                        elif event.event == "end":
                            await _end(sse, store, job_id, event.data, told, speakers)
                            told.finished = True
                            break
                    else:  # the events stopped before the job's end: this replica stops, or the job's data is gone
                        stopped = ShuttingDown("the stream stopped before the job ended; send the request again")
                        await _send(sse, openai_errors.answer(stopped)[1])
                # the answer has begun: a failure now is said in the stream, in OpenAI's shape
                except LongscribeError as exc:  # JobNotFound: gone since it was made (expired, lost by Redis)
                    told.finished = isinstance(exc, JobNotFound)
                    await _send(sse, openai_errors.answer(exc)[1])
                except RedisError as exc:
                    unreachable = JobStoreUnreachable(f"the job store stopped answering ({type(exc).__name__})")
                    await _send(sse, openai_errors.answer(unreachable)[1])
    finally:
        await events.aclose()  # it leaves the hub now, not when collected
    return sse


async def _end(
    sse: EventSourceResponse, store: JobStore, job_id: str, end: dict[str, Any], told: Told, speakers: bool
) -> None:
    """The last delta, the speakers' segments (`speakers`) and the done event, or the job's error."""
    status = end.get("status")
    found = await stored(store.client, job_id) if status == "succeeded" else None
    if found is None:
        error = end.get("error") or {}
        code = str(error.get("code") or "job_" + str(status))
        message = str(error.get("message") or f"the job ended {status}")
        await _send(sse, _error_event(code, message, error.get("hint")))
        return
    # the stored transcript read in pieces: only the segments not yet told are kept, never the whole answer
    reader = SegmentReader()
    rest = [segment.model_dump(mode="json") async for segment in _segments(found, reader) if told.unsent(segment)]
    if rest:
        await _send(sse, {"type": DELTA, "delta": told.delta(rest)})
    if speakers:  # read again: each sent as it is read
        letters = Letters()
        index = 0
        async for segment in _segments(found, SegmentReader()):
            await _send(sse, segment_event(index, segment, letters))
            index += 1
    await _send(sse, {"type": DONE, "text": reader.rest().text})


async def _segments(found: Stored, reader: SegmentReader) -> AsyncIterator[Segment]:
    """The stored transcript's segments, in order, its pieces fed to `reader` (whose `rest` then has the others)."""
    pieces = found.raw()
    while not reader.done:
        data = await anext(pieces, None)
        reader.feed(data or b"", final=data is None)
        for segment in reader.segments_parsed():
            yield segment


async def _send(sse: EventSourceResponse, data: dict[str, Any]) -> None:
    if data.get("delta") == "":  # a chunk that settled no speech: nothing to say
        return
    await sse.send(json.dumps(data, ensure_ascii=False))


def _error_event(code: str, message: str, hint: str | None = None) -> dict[str, Any]:
    """A failure after the answer began, in OpenAI's error shape: its client raises APIError with it."""
    status = openai_errors.status_of(openai_errors.status_for_code(code))
    detail = {"code": code, "message": message, "hint": hint or LongscribeError.hint}
    return openai_errors.body(status, detail, None)


def _cancel(store: JobStore, job_id: str) -> None:
    """Cancel the job nobody follows any more, in the background: a cancel may wait up to 30 s for a running job
    to wind down, and the handler must not hold its stream slot (or the answer's end) that long."""
    task = asyncio.create_task(store.cancel(job_id))
    _CANCELLING.add(task)
    task.add_done_callback(lambda done: _cancel_done(done, job_id))


def _cancel_done(task: asyncio.Task[Any], job_id: str) -> None:
    _CANCELLING.discard(task)
    if task.cancelled():
        return
    if (exc := task.exception()) is not None:
        log.warning("stream of job %s ended early, and its cancel failed: %s", job_id, exc)
    else:
        log.info("stream of job %s ended early: the job is cancelled", job_id)


def _cancel_submitted(store: JobStore, submitting: asyncio.Future[str], form: Form) -> None:
    """A submission the client left during: cancel the job it made, or delete the file if it made none."""
    if submitting.cancelled() or submitting.exception() is not None:
        form.discard()
    else:
        _cancel(store, submitting.result())
