"""Client and Job: the AsyncClient's calls, blocking, for scripts and notebooks-free code.

    client = longscribe.Client("http://127.0.0.1:8080")
    print(client.transcribe("talk.mp3").text)

Each Client runs its own event loop in the calling thread; every call runs
the AsyncClient's coroutine on it to completion, so the two behave alike.
Ctrl-C during `transcribe` cancels its job on the service; during `wait`
it only stops waiting. Inside async code, use AsyncClient.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx

from longscribe._media import Media
from longscribe.client import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, AsyncClient, AsyncJob
from longscribe.records import EndEvent, JobEvent, JobState, Transcript

T = TypeVar("T")


class Client:
    """A longscribe service at `base_url`, blocking; `api_key` defaults to $LONGSCRIBE_API_KEY.

    The same arguments, methods and errors as AsyncClient."""

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
        self._async = AsyncClient(
            base_url,
            api_key,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            trust_env=trust_env,
            transport=transport,
        )
        self._loop = asyncio.new_event_loop()

    @property
    def base_url(self) -> str:
        return self._async.base_url

    def _run(self, coro: Coroutine[Any, Any, T] | Awaitable[T]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            if isinstance(coro, Coroutine):
                coro.close()
            raise RuntimeError("longscribe.Client blocks: inside async code, use longscribe.AsyncClient")
        task = asyncio.ensure_future(coro, loop=self._loop)
        try:
            return self._loop.run_until_complete(task)
        except KeyboardInterrupt:  # let the coroutine unwind (transcribe cancels its job), then stop
            task.cancel()
            with contextlib.suppress(BaseException):
                self._loop.run_until_complete(task)
            raise

    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._run(self._async.aclose())
        # an events() iteration left early holds an async generator on this loop: close it here, or the
        # loop's end prints "Task was destroyed but it is pending!" to the user
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def submit(self, media: Media, *, webhook_url: str | None = None, **params: Any) -> Job:
        """Start a job for `media` and return it (see AsyncClient.submit)."""
        return Job(self, self._run(self._async.submit(media, webhook_url=webhook_url, **params)))

    def job(self, job_id: str) -> Job:
        """A handle on a job started earlier (by id)."""
        return Job(self, self._async.job(job_id))

    def transcribe(self, media: Media, **params: Any) -> Transcript:
        """Transcribe `media` and return the whole transcript (see AsyncClient.transcribe)."""
        return self._run(self._async.transcribe(media, **params))

    def models(self) -> list[str]:
        return self._run(self._async.models())


class Job:
    """A job on the service, blocking (see AsyncJob)."""

    def __init__(self, client: Client, inner: AsyncJob) -> None:
        self._client = client
        self._async = inner

    @property
    def id(self) -> str:
        return self._async.id

    @property
    def url(self) -> str:
        return self._async.url

    def __repr__(self) -> str:
        return f"Job({self.url!r})"

    def state(self) -> JobState:
        return self._client._run(self._async.state())

    def events(self) -> Iterator[JobEvent]:
        """Every event of the job, once each, until (and with) the EndEvent; resumed if the stream drops."""
        stream: AsyncGenerator[JobEvent, None] = self._async.events()
        try:
            while True:
                try:
                    yield self._client._run(anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            if not self._client._loop.is_closed():
                self._client._run(stream.aclose())

    def wait(self, on_event: Callable[[JobEvent], object] | None = None) -> EndEvent:
        """Follow the job to its end: its EndEvent when it succeeded, else JobFailed; `on_event` sees each event."""
        return self._client._run(self._async.wait(on_event))

    def cancel(self) -> str:
        """Cancel the job and wait for it to wind down; its status after."""
        return self._client._run(self._async.cancel())

    def result(self) -> Transcript:
        """The finished job's transcript as a Transcript."""
        return self._client._run(self._async.result())

    def transcript(
        self, format: str = "text", max_line_width: int | None = None, max_line_count: int | None = None
    ) -> str:
        """The finished transcript rendered by the service: text, json, verbose_json, srt, vtt or tsv."""
        return self._client._run(self._async.transcript(format, max_line_width, max_line_count))

    def download(
        self,
        sink: IO[bytes],
        format: str = "text",
        max_line_width: int | None = None,
        max_line_count: int | None = None,
    ) -> None:
        """Write the rendered transcript into a binary file as it arrives (any size, never held whole)."""
        self._client._run(self._async.download(sink, format, max_line_width, max_line_count))
