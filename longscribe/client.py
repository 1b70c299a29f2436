"""AsyncClient and AsyncJob: the core every other way in (the sync Client, the CLI) is built on.

    async with longscribe.AsyncClient("http://127.0.0.1:8080") as client:
        transcript = await client.transcribe("talk.mp3", language="en")
        job = await client.submit("https://example.com/talk.mp3")
        async for event in job.events():
            ...
        srt = await job.transcript("srt", max_line_width=42)

Every call is one or more requests to the service's /v1/jobs routes; every
failure is a `longscribe.errors` exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType
from typing import IO, Any

import httpx
from httpx_sse import SSEError, aconnect_sse

import longscribe._http as _http
import longscribe._media as _media
from longscribe._media import Media
from longscribe.errors import JobFailed, ServiceUnreachable
from longscribe.records import EndEvent, JobEvent, JobState, Transcript, event_from_sse

API_KEY_ENV = "LONGSCRIBE_API_KEY"
CONNECT_TIMEOUT_S = 10.0
# The service comments on an idle event stream every 15 s at most: four silent intervals mean the link is dead.
READ_TIMEOUT_S = 60.0
RECONNECTS = 5  # tries in a row without an event before the stream counts as lost
RECONNECT_DELAY_S = 1.0
CANCEL_TIMEOUT_S = 30.0  # a cancel waits for the job to wind down (its FFmpeg and inference stop)


class AsyncClient:
    """A longscribe service at `base_url`; `api_key` defaults to $LONGSCRIBE_API_KEY (sent as a Bearer token).

    `trust_env=False` ignores proxy settings from the environment (a local
    service); `transport` is httpx's, for tests or custom networking.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        trust_env: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not _media.is_url(base_url):
            raise ValueError(f"base_url must be an http(s) URL, such as http://127.0.0.1:8080, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # no overall deadline: a job takes as long as its media; reads are bounded by the keep-alive comments
        timeout = httpx.Timeout(connect_timeout_s, read=read_timeout_s)
        self._http = httpx.AsyncClient(timeout=timeout, headers=headers, trust_env=trust_env, transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, media: Media, *, webhook_url: str | None = None, **params: Any) -> AsyncJob:
        """Start a job for `media` (a URL passed through; a path, binary file or bytes uploaded) and return it.

        `params` are the service's transcription params (language, task, prompt, temperature,
        word_timestamps, model, macro_chunk_size_sec, ...); None values are left out.
        `webhook_url` (URLs only) is called when the job ends. Raises FileNotFoundError for a
        missing path, APIError (Overloaded when the queue is full) when the service refuses it."""
        _media.check(media)
        chosen = {k: v for k, v in params.items() if v is not None}
        extra = {"webhook_url": webhook_url} if webhook_url is not None else {}
        opened: list[IO[bytes]] = []
        try:
            kwargs = _media.request_kwargs(media, chosen, extra, opened)
            body = await _http.request(self._http, self.base_url, "POST", "/v1/jobs", **kwargs)
        finally:
            for handle in opened:
                handle.close()
        return AsyncJob(self, str(body["id"]))

    def job(self, job_id: str) -> AsyncJob:
        """A handle on a job started earlier (by id), to follow, fetch or cancel it."""
        return AsyncJob(self, job_id)

    async def transcribe(self, media: Media, **params: Any) -> Transcript:
        """Transcribe `media` as a job and return the whole transcript; cancelled, it cancels the job.

        Raises JobFailed when the job fails (the service's code, message and hint)."""
        job = await self.submit(media, **params)
        try:
            await job.wait()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(job.cancel())
            raise
        return await job.result()

    async def models(self) -> list[str]:
        """The names of the models the service serves (the first is its default)."""
        body = await _http.request(self._http, self.base_url, "GET", "/v1/models")
        return [str(m["id"]) for m in body.get("data", [])]


class AsyncJob:
    """A job on the service: follow its events, wait for it, fetch its transcript, or cancel it."""

    def __init__(self, client: AsyncClient, job_id: str) -> None:
        self.client = client
        self.id = job_id
        self.path = f"/v1/jobs/{job_id}"

    @property
    def url(self) -> str:
        return f"{self.client.base_url}{self.path}"

    def __repr__(self) -> str:
        return f"AsyncJob({self.url!r})"

    async def state(self) -> JobState:
        """The job's status and progress now (GET /v1/jobs/{id})."""
        body = await self._request("GET", self.path)
        return JobState.from_json(body)

    async def events(self) -> AsyncGenerator[JobEvent, None]:
        """Every event of the job, once each, in order, until (and with) the EndEvent.

        Started late, it replays the events so far. A dropped stream is resumed
        with Last-Event-ID, so no event is lost or repeated; ServiceUnreachable
        after RECONNECTS tries in a row without one."""
        last_id: str | None = None
        failures = 0
        http, base = self.client._http, self.client.base_url
        while True:
            headers = {"Last-Event-ID": last_id} if last_id is not None else {}
            try:
                async with aconnect_sse(http, "GET", f"{base}{self.path}/events", headers=headers) as source:
                    response = source.response
                    if response.status_code == 429:  # this key follows as many streams as it may: wait
                        # at least the reconnect delay: a Retry-After of 0 must not turn this into a busy loop
                        await asyncio.sleep(max(RECONNECT_DELAY_S, _http.retry_after(response.headers)))
                        continue
                    if response.status_code >= 400:
                        raise _http.api_error(response.status_code, await response.aread(), response.headers)
                    async for sse in source.aiter_sse():
                        if not sse.data:
                            continue  # httpx-sse dispatches a keep-alive comment as an empty event once ids are seen
                        failures = 0
                        last_id = sse.id or last_id
                        event = event_from_sse(sse.id, sse.event, sse.json())
                        if event is not None:
                            yield event
                        if isinstance(event, EndEvent):
                            return
                reason = "the event stream ended before the job did"
            except (httpx.RequestError, httpx.StreamError, SSEError, ValueError) as exc:  # ValueError: bad JSON
                reason = _http.reason(exc)
            failures += 1
            if failures > RECONNECTS:
                raise ServiceUnreachable(base, f"lost the event stream of job {self.id}: {reason}")
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def wait(self, on_event: Callable[[JobEvent], object] | None = None) -> EndEvent:
        """Follow the job to its end; its EndEvent (with the summary) when it succeeded, else JobFailed.

        `on_event` is called with every event on the way (progress, settled segments)."""
        async for event in self.events():
            if on_event is not None:
                on_event(event)
            if isinstance(event, EndEvent):
                return self._check(event)
        raise ServiceUnreachable(self.client.base_url, f"the events of job {self.id} ended without its end")

    def _check(self, end: EndEvent) -> EndEvent:
        if end.succeeded:
            return end
        error = end.error
        raise JobFailed(
            self.id,
            end.status,
            error.code if error else end.status,
            error.message if error else f"the job {end.status}",
            error.hint if error else None,
        )

    async def cancel(self) -> str:
        """Cancel the job wherever it runs, and wait for it to wind down; its status after (e.g. cancelled)."""
        body = await self._request("DELETE", self.path, timeout=httpx.Timeout(CONNECT_TIMEOUT_S, read=CANCEL_TIMEOUT_S))
        return str(body.get("status"))

    async def result(self) -> Transcript:
        """The finished job's transcript as a Transcript (segments with every score, text, durations, language)."""
        body = await self._request("GET", f"{self.path}/transcript", params={"format": "verbose_json"})
        return Transcript.from_json(body)

    async def transcript(
        self, format: str = "text", max_line_width: int | None = None, max_line_count: int | None = None
    ) -> str:
        """The finished job's transcript rendered by the service: text, json, verbose_json, srt, vtt or tsv.

        `max_line_width` (characters) and `max_line_count` (lines per cue) wrap srt and vtt subtitles."""
        chunks = [piece async for piece in self.stream_transcript(format, max_line_width, max_line_count)]
        return b"".join(chunks).decode("utf-8")

    async def stream_transcript(
        self, format: str = "text", max_line_width: int | None = None, max_line_count: int | None = None
    ) -> AsyncIterator[bytes]:
        """The transcript as `transcript()` renders it, in pieces as they arrive: any size, never held whole."""
        query: dict[str, str | int] = {"format": format}
        if max_line_width is not None:
            query["max_line_width"] = max_line_width
        if max_line_count is not None:
            query["max_line_count"] = max_line_count
        async with _http.stream(
            self.client._http, self.client.base_url, "GET", f"{self.path}/transcript", params=query
        ) as response:
            with _http.transport_errors(self.client.base_url):
                async for piece in response.aiter_bytes():
                    yield piece

    async def download(
        self,
        sink: IO[bytes],
        format: str = "text",
        max_line_width: int | None = None,
        max_line_count: int | None = None,
    ) -> None:
        """Write the rendered transcript into a binary file as it arrives (any size, never held whole)."""
        async for piece in self.stream_transcript(format, max_line_width, max_line_count):
            sink.write(piece)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return await _http.request(self.client._http, self.client.base_url, method, path, **kwargs)
