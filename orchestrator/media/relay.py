"""FFmpeg reads media through this loopback relay, never from the media URL itself.

Three reasons, one component:
- the relay fetches with the guarded client (`media_guard`), so neither a
  redirect nor a DNS change can take FFmpeg where the service refuses to go;
- a connection the media server drops mid-read is resumed from the byte it
  stopped at, and FFmpeg never notices;
- what went wrong is kept per request, so a read that was cut short fails the
  request with its reason instead of yielding a shorter transcript.

The relay listens on loopback only, and each URL is an unguessable token that
lives as long as its request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from orchestrator.common.net import serving
from orchestrator.errors import LongscribeError, MediaConnectionLost, MediaHostNotFound, MediaUnreachable
from orchestrator.media import guard

log = logging.getLogger("longscribe.relay")

READ_BYTES = 64 * 1024
RETRY_BACKOFF_S = 0.2  # doubled after each failed attempt
PASSED_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges")


@dataclass
class Source:
    """One request's media: the real URL (or an uploaded file), its local alias, and the first thing that went wrong."""

    url: str
    local_url: str
    failure: LongscribeError | None = None
    path: Path | None = None  # an upload: served from disk, no fetch

    def check(self) -> None:
        """Raise what went wrong while relaying, if anything did."""
        if self.failure is not None:
            raise self.failure


@dataclass
class MediaRelay:
    client: aiohttp.ClientSession
    policy: guard.AddressPolicy
    max_redirects: int
    retries: int  # resumed reads allowed per FFmpeg request
    timeout_s: float  # connect and per-read limit towards the media server
    base: str = ""
    sources: dict[str, Source] = field(default_factory=dict)

    @contextlib.contextmanager
    def open(self, media: str | Path) -> Iterator[Source]:
        """A local alias for the media at a URL, or for an uploaded file (a Path), while the block runs."""
        token = secrets.token_urlsafe(16)
        local_url = f"{self.base}/media/{token}"
        source = Source(media, local_url) if isinstance(media, str) else Source("", local_url, path=media)
        self.sources[token] = source
        try:
            yield source
        finally:
            del self.sources[token]

    async def fetch(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """One guarded GET (redirects checked); connection failures become named errors."""
        timeout = aiohttp.ClientTimeout(sock_connect=self.timeout_s, sock_read=self.timeout_s)
        try:
            return await guard.get(self.client, url, self.policy, self.max_redirects, headers, timeout)
        except aiohttp.ClientConnectorDNSError as exc:
            raise MediaHostNotFound(f"media_url's host does not resolve: {exc.host}") from exc
        except aiohttp.ClientConnectorError as exc:  # its text holds the address it tried: not the caller's to see
            reason = os.strerror(exc.os_error.errno) if exc.os_error.errno else "the connection failed"
            raise MediaUnreachable(f"media_url's host {exc.host} could not be reached: {reason}") from exc
        except aiohttp.InvalidURL as exc:
            raise MediaUnreachable(f"media_url is not a valid URL: {exc}") from exc
        except TimeoutError as exc:
            raise MediaUnreachable(f"media_url did not answer within {self.timeout_s:g} s") from exc
        except aiohttp.ClientError as exc:
            raise MediaUnreachable(f"media_url could not be fetched: {exc}") from exc

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        source = self.sources.get(request.match_info["token"])
        if source is None:
            raise web.HTTPNotFound()
        if source.path is not None:
            return web.FileResponse(source.path)  # honours Range, as the pipeline needs
        first, last = _byte_range(request.headers.get("Range"))
        try:
            upstream = await self.fetch(source.url, _range_headers(first, last))
        except LongscribeError as exc:
            source.failure = source.failure or exc
            return web.Response(status=502)
        response = web.StreamResponse(status=upstream.status)
        for name in PASSED_HEADERS:
            if name in upstream.headers:
                response.headers[name] = upstream.headers[name]
        if upstream.status >= 300:
            upstream.release()
            return response
        sock = request.transport.get_extra_info("socket") if request.transport else None
        if sock is not None:  # see guard.SOCKET_BUFFER_BYTES
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, guard.SOCKET_BUFFER_BYTES)
        await response.prepare(request)
        current = [upstream]  # the response being read: a resume replaces it
        try:
            await self._pump(source, current, response, first, last)
        except ConnectionError:
            pass  # FFmpeg hung up: it has the time range it wanted
        finally:
            current[0].close()  # not release(): an unread body must not keep flowing in
        return response

    async def _pump(
        self,
        source: Source,
        current: list[aiohttp.ClientResponse],
        response: web.StreamResponse,
        first: int,
        last: int | None,
    ) -> None:
        """Copy the body to FFmpeg, resuming from the byte reached when the media server drops it."""
        expected = current[0].content_length
        resumed_url = str(current[0].url)  # after redirects: resume there
        sent, failures = 0, 0
        while True:
            try:
                data = await current[0].content.read(READ_BYTES)
                if not data and expected is not None and sent < expected:
                    raise aiohttp.ClientPayloadError("the body ended early")
            except (aiohttp.ClientError, TimeoutError) as exc:
                current[0].close()
                failures += 1
                if failures > self.retries:
                    source.failure = source.failure or MediaConnectionLost(
                        f"the media server dropped the connection {failures} times at byte {first + sent}: {exc}"
                    )
                    response.force_close()
                    return
                log.info("media read dropped at byte %d (%s); resuming", first + sent, exc)
                await asyncio.sleep(RETRY_BACKOFF_S * 2 ** (failures - 1))
                again = await self._resume(source, resumed_url, first + sent, last)
                if again is None:
                    response.force_close()
                    return
                current[0] = again
                continue
            if not data:
                return
            await response.write(data)
            sent += len(data)

    async def _resume(self, source: Source, url: str, at: int, last: int | None) -> aiohttp.ClientResponse | None:
        """Ask again from byte `at`; None (and the failure kept) when the server will not."""
        try:
            upstream = await self.fetch(url, _range_headers(at, last))
        except LongscribeError as exc:
            source.failure = source.failure or exc
            return None
        content_range = upstream.headers.get("Content-Range", "")
        if upstream.status != 206 or not content_range.startswith(f"bytes {at}-"):
            upstream.release()
            source.failure = source.failure or MediaConnectionLost(
                f"the media server dropped the connection at byte {at} and did not resume there "
                f"(HTTP {upstream.status} {content_range})"
            )
            return None
        return upstream


def _byte_range(header: str | None) -> tuple[int, int | None]:
    """`bytes=a-b` / `bytes=a-` -> (a, b or None); anything else reads from 0."""
    if not header or not header.startswith("bytes="):
        return 0, None
    first, _, last = header[len("bytes=") :].split(",")[0].partition("-")
    try:
        return int(first or 0), (int(last) if last else None)
    except ValueError:
        return 0, None


def _range_headers(first: int, last: int | None) -> dict[str, str]:
    return {"Range": f"bytes={first}-{'' if last is None else last}", "Accept-Encoding": "identity"}


@contextlib.asynccontextmanager
async def relaying(
    client: aiohttp.ClientSession,
    policy: guard.AddressPolicy,
    max_redirects: int,
    retries: int,
    timeout_s: float,
) -> AsyncIterator[MediaRelay]:
    """A relay on a free loopback port for as long as the block runs."""
    relay = MediaRelay(client, policy, max_redirects, retries, timeout_s)
    app = web.Application()
    app.router.add_get("/media/{token}", relay._handle)
    async with serving(app) as base:
        relay.base = base
        yield relay
