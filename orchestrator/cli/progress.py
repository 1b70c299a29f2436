"""The CLI's view of a job: follow its server-sent events, draw a progress line, cancel on Ctrl-C,
then download the transcript in pieces."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, TextIO

import httpx
from httpx_sse import SSEError, aconnect_sse

BAR_WIDTH = 24
# The server comments on an idle stream every 15 s at most: four silent intervals mean the link is dead.
READ_TIMEOUT_S = 60.0
RECONNECTS = 5  # in a row without an event, before giving up
RECONNECT_DELAY_S = 1.0


def client(api_key: str | None = None) -> httpx.AsyncClient:
    """HTTP for the CLI: no overall deadline (a job takes as long as its media), a read timeout that the
    server's keep-alive comments satisfy, no proxies from the environment (the server is usually local),
    and the API key, when given, on every request."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=READ_TIMEOUT_S), trust_env=False, headers=headers)


def credentials(http: httpx.AsyncClient) -> dict[str, str]:
    """The Authorization header `http` sends, for a request made through another client."""
    return {name: value for name, value in http.headers.items() if name.lower() == "authorization"}


def clock(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def progress_line(progress: dict[str, Any]) -> str:
    """`[######......]  1:02 / 4:01 audio  38.2x  ETA 0:05` from a job's progress."""
    done, total = progress.get("audio_done_sec") or 0.0, progress.get("audio_total_sec")
    share = min(1.0, done / total) if total else 0.0
    filled = round(share * BAR_WIDTH)
    parts = [f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}]", f"{clock(done)} / {clock(total or 0)} audio"]
    if progress.get("speed"):
        parts.append(f"{progress['speed']:.1f}x")
    if progress.get("eta_sec") is not None:
        parts.append(f"ETA {clock(progress['eta_sec'])}")
    return "  ".join(parts)


async def job_events(http: httpx.AsyncClient, events_url: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(event, data) for every event of the job, once each, until `end`.

    A dropped stream is resumed with Last-Event-ID, so no event is lost or
    repeated; the parser (httpx-sse) has no limit on an event's size."""
    last_id: str | None = None
    failures = 0
    while True:
        headers = {"Last-Event-ID": last_id} if last_id is not None else {}
        try:
            async with aconnect_sse(http, "GET", events_url, headers=headers) as source:
                if source.response.status_code == 429:  # this key follows as many streams as it may: wait
                    await asyncio.sleep(float(source.response.headers.get("Retry-After", RECONNECT_DELAY_S)))
                    continue
                if source.response.status_code != 200:
                    body = json.loads(await source.response.aread() or b"{}")
                    raise JobRefused(source.response.status_code, body)
                async for sse in source.aiter_sse():
                    if not sse.data:
                        continue  # httpx-sse dispatches a keep-alive comment as an empty event once ids are seen
                    failures = 0
                    if sse.id:
                        last_id = sse.id
                    yield sse.event, sse.json()
                    if sse.event == "end":
                        return
        except (httpx.TransportError, SSEError) as exc:
            reason: Exception = exc
        else:
            reason = ConnectionError("the event stream ended before the job did")
        failures += 1
        if failures > RECONNECTS:
            raise JobRefused(0, {"error": {"message": f"lost the job's event stream: {reason}"}})
        await asyncio.sleep(RECONNECT_DELAY_S)


async def run_job(
    http: httpx.AsyncClient, server: str, body: dict[str, Any], quiet: bool, out: TextIO = sys.stderr
) -> dict[str, Any]:
    """Start a job, show its progress until it ends, and return its `end` event (status, summary, links).

    Cancelled (Ctrl-C), it cancels the job on the server before giving up, so
    no FFmpeg or inference keeps running for nobody."""
    response = await http.post(f"{server}/v1/jobs", json=body)
    started = response.json()
    if response.status_code != 202:
        raise JobRefused(response.status_code, started)
    job_url = f"{server}/v1/jobs/{started['id']}"
    tty = out.isatty()
    if not quiet:  # its id, to look it up, follow or cancel it from elsewhere
        out.write(f"job {started['id']}: {job_url}\n")
        out.flush()
    try:
        async for name, data in job_events(http, f"{job_url}/events"):
            if name == "chunk" and not quiet:
                out.write(("\r" if tty else "") + progress_line(data) + ("" if tty else "\n"))
                out.flush()
            elif name == "end":
                if tty and not quiet:
                    out.write("\n")
                return data
    except asyncio.CancelledError:
        async with client() as cleanup:
            await cleanup.delete(job_url, headers=credentials(http))
        if not quiet:
            out.write("\ncancelled\n")
        raise
    raise JobRefused(0, {"error": {"message": "the event stream ended before the job did"}})


async def download(http: httpx.AsyncClient, url: str, sink: BinaryIO) -> None:
    """GET `url` into `sink` as it arrives: a transcript of any size, never held whole."""
    async with http.stream("GET", url) as response:
        if response.status_code != 200:
            raise JobRefused(response.status_code, json.loads(await response.aread() or b"{}"))
        async for piece in response.aiter_bytes():
            sink.write(piece)


class JobRefused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {json.dumps(body)}")
        self.status = status  # 429: the service is full; the batch driver waits and asks again
