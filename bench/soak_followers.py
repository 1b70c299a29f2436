"""The soak's followers phase: 150 SSE followers and a stream of submits against a 20-minute job.

`longscribe serve` runs as a child on a Redis of this phase's own, so its
connections can be counted from INFO. One long job (the long-form recording
repeated to `--minutes`) runs while `--followers` real SSE clients follow it
from the start (reconnecting with Last-Event-ID as EventSource does, should a
stream drop) and one client posts a short job every `--submit-every` seconds.
Done means: every answer is 2xx or 429, the job succeeds, every follower gets
`end`, and Redis connections stay within the pool.

    .venv/bin/python -m bench.soak --followers-only [--followers 150 --minutes 20 --submit-every 2]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import redis.asyncio as redis
from httpx_sse import aconnect_sse

from orchestrator.common.fileserver import file_app
from orchestrator.common.net import free_port, serving, wait_until_ready
from orchestrator.jobs.redis_server import running_redis
from orchestrator.settings import Settings
from tests.corpus import speech_dir, wer

from .harness import BENCH_AUTH, keyed_env, repeated_mp3, serve_command

SAMPLE_S = 0.5  # INFO clients, this often
RECONNECT_S = 1.0  # a dropped follower's wait before it comes back with Last-Event-ID
LONG_JOB = {"macro_chunk_size_sec": 60}  # a chunk event a minute of audio: twenty for the followers to share
FOLLOW_DEADLINE_S = 300.0  # past the audio's own length: a follower still without `end` has missed it


@dataclass
class Tally:
    """What the clients saw: answers by status (or error), and per follower, events and whether `end` came."""

    answers: collections.Counter[str] = field(default_factory=collections.Counter)
    events: list[int] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)
    reconnects: int = 0


def pool_bound() -> int:
    """The service's Redis pool size (redis_max_connections); the one reader of events is on top of it."""
    return Settings().redis_max_connections


async def follow(http: httpx.AsyncClient, url: str, tally: Tally) -> None:
    """One real SSE client, from the first event to `end`, coming back with Last-Event-ID if dropped."""
    last_id: str | None = None
    count = 0
    while True:
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with aconnect_sse(http, "GET", url, headers=headers) as source:
                tally.answers[f"{source.response.status_code} (events)"] += 1
                if source.response.status_code != 200:
                    tally.ends.append(f"refused {source.response.status_code}")
                    return
                async for event in source.aiter_sse():
                    if not event.data:
                        continue  # a keep-alive comment
                    last_id, count = event.id, count + 1
                    if event.event == "end":
                        tally.events.append(count)
                        tally.ends.append(event.json()["status"])
                        return
        except (httpx.HTTPError, OSError) as exc:
            tally.answers[f"{type(exc).__name__} (events)"] += 1
        tally.reconnects += 1
        await asyncio.sleep(RECONNECT_S)


async def submits(
    session: aiohttp.ClientSession, api: str, body: dict[str, Any], every_s: float, stop: asyncio.Event, tally: Tally
) -> None:
    """POST /v1/jobs every `every_s` until `stop`; one answer each."""
    while not stop.is_set():
        try:
            async with session.post(f"{api}/v1/jobs", json=body) as response:
                await response.read()
                tally.answers[f"{response.status} (submit)"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.answers[f"{type(exc).__name__} (submit)"] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)


async def sample_clients(monitor: redis.Redis, stop: asyncio.Event, peaks: dict[str, int]) -> None:
    """Peak connected_clients (less this monitor's own connection) while the phase runs."""
    while not stop.is_set():
        info = await monitor.info("clients")
        peaks["connected_clients"] = max(peaks["connected_clients"], int(info["connected_clients"]) - 1)
        peaks["blocked_clients"] = max(peaks["blocked_clients"], int(info["blocked_clients"]))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SAMPLE_S)


async def run(followers: int, minutes: float, submit_every_s: float, work: Path) -> dict[str, Any]:
    shutil.copy(speech_dir() / "jfk.flac", work / "short.flac")
    recording = repeated_mp3(work, minutes)
    port = free_port()
    tally, peaks = Tally(), {"connected_clients": 0, "blocked_clients": 0}
    async with running_redis(Settings(redis_dir=work / "redis")) as redis_url:
        # keyed, as a shared service runs; one key follows with every stream, so its stream limit is raised to
        # the followers' count: this phase measures Redis, and the limit's 429 is tested in tests/unit/test_tenants.py
        env = keyed_env(LONGSCRIBE_REDIS_URL=redis_url, LONGSCRIBE_MAX_EVENT_STREAMS_PER_KEY=str(followers))
        proc = subprocess.Popen(
            serve_command(port, keyed=True), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        api = f"http://127.0.0.1:{port}"
        monitor = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            await wait_until_ready(f"{api}/readyz", proc.poll, 300.0, "longscribe serve")
            async with serving(file_app(work)) as media, aiohttp.ClientSession(headers=BENCH_AUTH) as session:
                stop = asyncio.Event()
                sampler = asyncio.create_task(sample_clients(monitor, stop, peaks))
                started = time.monotonic()
                async with session.post(
                    f"{api}/v1/jobs", json={"media_url": f"{media}/{recording.path.name}", "params": LONG_JOB}
                ) as response:
                    tally.answers[f"{response.status} (submit)"] += 1
                    assert response.status == 202, await response.text()
                    job_id = (await response.json())["id"]
                limits = httpx.Limits(max_connections=followers + 10, max_keepalive_connections=0)
                async with httpx.AsyncClient(
                    timeout=httpx.Timeout(10.0, read=300.0), limits=limits, trust_env=False, headers=BENCH_AUTH
                ) as http:
                    url = f"{api}/v1/jobs/{job_id}/events"
                    submitter = asyncio.create_task(
                        submits(session, api, {"media_url": f"{media}/short.flac"}, submit_every_s, stop, tally)
                    )
                    tasks = [asyncio.create_task(follow(http, url, tally)) for _ in range(followers)]
                    _, hung = await asyncio.wait(tasks, timeout=FOLLOW_DEADLINE_S + minutes * 60)
                    for task in hung:  # never `end`: counted as missing it, not waited for
                        task.cancel()
                    await asyncio.gather(*hung, return_exceptions=True)
                    stop.set()
                    await submitter
                    await sampler
                async with session.get(f"{api}/v1/jobs/{job_id}") as response:
                    job = (
                        await response.json()
                        if response.status == 200
                        else {"status": f"unreadable ({response.status})"}
                    )
                wall_s = time.monotonic() - started
                async with session.get(f"{api}/v1/jobs/{job_id}/transcript?format=text") as response:
                    text = await response.text() if response.status == 200 else ""
        finally:
            await monitor.aclose()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
    return {
        "followers": followers,
        "minutes": minutes,
        "submit_every_s": submit_every_s,
        "answers": dict(tally.answers),
        "follower_ends": dict(collections.Counter(tally.ends)),
        "followers_with_end": sum(1 for end in tally.ends if end in ("succeeded", "failed", "cancelled")),
        "events_per_follower": sorted(set(tally.events)),
        "reconnects": tally.reconnects,
        "redis_peak_connected_clients": peaks["connected_clients"],
        "redis_peak_blocked_clients": peaks["blocked_clients"],
        "redis_pool_max": pool_bound(),
        "job_status": job["status"],
        "audio_s": recording.duration_s,
        "wall_s": wall_s,
        "speedup": recording.duration_s / wall_s,
        "wer": wer(recording.reference, text) if text else None,
    }


def failures(result: dict[str, Any]) -> list[str]:
    """What breaks the phase's promise; empty when it held."""
    bad = [k for k in result["answers"] if k.split()[0] not in ("200", "202", "429")]
    out = [f"answers other than 2xx/429: {bad}"] if bad else []
    if result["job_status"] != "succeeded":
        out.append(f"the job ended {result['job_status']}")
    if result["followers_with_end"] != result["followers"]:
        out.append(f"{result['followers_with_end']}/{result['followers']} followers got `end`")
    if result["redis_peak_connected_clients"] > result["redis_pool_max"] + 2:  # + the one event reader, this monitor
        out.append("Redis connections went past the pool")
    return out


def report(result: dict[str, Any]) -> str:
    wer_text = "n/a" if result["wer"] is None else f"{100 * result['wer']:.1f} %"
    rows = [
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(result["answers"].items()))),
        ("followers that got `end`", f"{result['followers_with_end']}/{result['followers']} "
         f"({result['follower_ends']}; events each {result['events_per_follower']}; "
         f"reconnects {result['reconnects']})"),
        ("Redis connections (peak connected_clients)", f"{result['redis_peak_connected_clients']} "
         f"(pool max {result['redis_pool_max']}; peak blocked {result['redis_peak_blocked_clients']})"),
        ("job", f"{result['job_status']}, {result['audio_s'] / 60:.1f} min of audio in {result['wall_s']:.0f} s "
         f"({result['speedup']:.1f}x), WER {wer_text}"),
    ]  # fmt: skip
    lines = [
        f"\n{result['followers']} followers of a {result['minutes']:g}-minute job, "
        f"a short job posted every {result['submit_every_s']:g} s:",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
    ]
    problems = failures(result)
    if problems:
        lines.append(f"  <-- FAILURES {problems}")
    return "\n".join(lines)
