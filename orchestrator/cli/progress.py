"""The CLI's view of a job: follow its server-sent events, draw a progress line, cancel on Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO

import aiohttp

BAR_WIDTH = 24


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


async def sse_events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    name = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[len("event: ") :]
        elif line.startswith("data: "):
            yield name, json.loads(line[len("data: ") :])


async def run_job(
    session: aiohttp.ClientSession, server: str, body: dict[str, Any], quiet: bool, out: TextIO = sys.stderr
) -> dict[str, Any]:
    """Start a job, show its progress until it ends, and return the finished job.

    Cancelled (Ctrl-C), it cancels the job on the server before giving up, so
    no FFmpeg or inference keeps running for nobody."""
    async with session.post(f"{server}/v1/jobs", json=body) as response:
        started = await response.json()
        if response.status != 202:
            raise JobRefused(response.status, started)
    job_url = f"{server}/v1/jobs/{started['id']}"
    tty = out.isatty()
    try:
        async with session.get(f"{job_url}/events") as events:
            async for name, data in sse_events(events):
                if name == "chunk" and not quiet:
                    out.write(("\r" if tty else "") + progress_line(data) + ("" if tty else "\n"))
                    out.flush()
                elif name == "end":
                    if tty and not quiet:
                        out.write("\n")
                    return data
    except asyncio.CancelledError:
        async with aiohttp.ClientSession() as cleanup, cleanup.delete(job_url) as response:
            await response.read()
        if not quiet:
            out.write("\ncancelled\n")
        raise
    raise JobRefused(0, {"error": {"message": "the event stream ended before the job did"}})


class JobRefused(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"HTTP {status}: {json.dumps(body)}")
        self.status = status  # 429: the service is full; the batch driver waits and asks again
