"""Jobs on a fleet: two orchestrator processes on one Triton and one Redis. Any of them answers for
any job; a job survives its orchestrator being killed or stopped, resuming from its finished chunks;
a restarted `longscribe serve` keeps its jobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import longscribe
from orchestrator.common.net import free_port, wait_until_ready

from ..corpus import Recording, wer
from ..media_servers import LOOPBACK
from ..polling import steady, wait_until
from ..processes import ffmpegs
from ..scrape import STOPPED_WINDOW_S

pytestmark = pytest.mark.integration
LONGSCRIBE = [sys.executable, "-m", "orchestrator.cli", "serve", "--no-triton", "--no-auth"]
SHORT_LEASE_S = 4.0  # a killed worker's job moves on after this
GRACE_S = 10.0  # what a SIGTERMed orchestrator may take to stop
# several macro chunks, one at a time: a job is killed with work both done and left
JOB = {"params": {"macro_chunk_size_sec": 30}}
WER_BOUND = 0.08  # as for the same recording in test_jobs


@dataclass
class Orchestrator:
    proc: asyncio.subprocess.Process
    base: str

    @property
    def worker(self) -> str:
        return f"{socket.gethostname()}:{self.proc.pid}"


@contextlib.asynccontextmanager
async def orchestrator(
    log: Path, triton_grpc_url: str, redis_url: str | None = None, **settings: object
) -> AsyncIterator[Orchestrator]:
    """`longscribe serve --no-triton` as its own process, on a free port; SIGKILLed at the end if still up."""
    port = free_port()
    env = {
        **os.environ,
        "LONGSCRIBE_TRITON_GRPC_URLS": json.dumps([triton_grpc_url]),
        "LONGSCRIBE_ALLOWED_MEDIA_HOSTS": json.dumps(LOOPBACK),
        "LONGSCRIBE_CHUNKS_IN_FLIGHT_PER_ENDPOINT": "1",
        "LONGSCRIBE_SHUTDOWN_GRACE_SEC": str(GRACE_S),
        **({"LONGSCRIBE_REDIS_URL": redis_url} if redis_url else {}),
        **{f"LONGSCRIBE_{k.upper()}": str(v) for k, v in settings.items()},
    }
    with open(log, "ab") as out:
        proc = await asyncio.create_subprocess_exec(
            *LONGSCRIBE, "--port", str(port), env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_until_ready(f"{base}/healthz", lambda: proc.returncode, 60, f"orchestrator (log: {log})")
        yield Orchestrator(proc, base)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def submit(session: aiohttp.ClientSession, api: str, body: dict[str, Any]) -> str:
    async with session.post(f"{api}/v1/jobs", json=body) as response:
        assert response.status == 202, await response.text()
        return str((await response.json())["id"])


async def job(session: aiohttp.ClientSession, api: str, job_id: str) -> dict[str, Any]:
    async with session.get(f"{api}/v1/jobs/{job_id}") as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def until(session: aiohttp.ClientSession, api: str, job_id: str, done: Any, timeout_s: float) -> dict[str, Any]:
    """Poll the job through `api` until `done(job)`; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await job(session, api, job_id)
        if done(found):
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} not there after {timeout_s:g} s: {found}")


def finished(j: dict[str, Any]) -> bool:
    return j["status"] in ("succeeded", "failed", "cancelled")


async def transcript(session: aiohttp.ClientSession, api: str, job_id: str) -> str:
    async with session.get(f"{api}/v1/jobs/{job_id}/transcript", params={"format": "text"}) as response:
        assert response.status == 200, await response.text()
        return await response.text()


async def test_a_job_sent_to_one_orchestrator_is_read_streamed_and_fetched_through_the_other(
    tmp_path: Path, triton_grpc_url: str, redis_url: str, media_url: str, lj_recording: Recording
) -> None:
    async with (
        orchestrator(tmp_path / "a.log", triton_grpc_url, redis_url, job_workers=0) as api_only,
        orchestrator(tmp_path / "b.log", triton_grpc_url, redis_url, job_workers=1) as runner,
        aiohttp.ClientSession() as session,
    ):
        job_id = await submit(session, api_only.base, {"media_url": f"{media_url}/lj001.wav", **JOB})
        async with longscribe.AsyncClient(runner.base) as client:  # the Python client's (and CLI's) SSE reader
            kinds = [type(event).__name__ async for event in client.job(job_id).events()]
        assert kinds[-1] == "EndEvent" and kinds.count("ChunkEvent") >= 3
        seen = await job(session, api_only.base, job_id)
        assert seen["status"] == "succeeded" and seen["worker"] == runner.worker
        text = await transcript(session, api_only.base, job_id)
    assert wer(lj_recording.reference, text) <= WER_BOUND


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_a_job_outlives_the_orchestrator_running_it_and_resumes_from_its_chunks(
    stop: signal.Signals, tmp_path: Path, triton_grpc_url: str, redis_url: str, media_url: str, lj_recording: Recording
) -> None:
    # a long lease for SIGTERM: the job must come back at once, not when the lease runs out
    lease_s = SHORT_LEASE_S if stop == signal.SIGKILL else 120.0
    async with (
        orchestrator(tmp_path / "first.log", triton_grpc_url, redis_url, job_workers=1, job_lease_sec=lease_s) as one,
        aiohttp.ClientSession() as session,
    ):
        job_id = await submit(session, one.base, {"media_url": f"{media_url}/lj001.wav", **JOB})
        running = await until(
            session, one.base, job_id, lambda j: j["progress"]["chunks_done"] >= 2 or finished(j), 240
        )
        assert running["status"] == "running" and running["worker"] == one.worker
        total = running["progress"]["chunks_total"]
        assert running["progress"]["chunks_done"] < total, "the job must still have chunks left"
        async with orchestrator(
            tmp_path / "second.log", triton_grpc_url, redis_url, job_workers=1, job_lease_sec=lease_s
        ) as two:
            stopped_at = time.monotonic()
            one.proc.send_signal(stop)
            await asyncio.wait_for(one.proc.wait(), GRACE_S + 5)
            if stop == signal.SIGTERM:
                assert time.monotonic() - stopped_at <= GRACE_S + 5
            moved = await until(session, two.base, job_id, lambda j: j["worker"] == two.worker or finished(j), 60)
            assert time.monotonic() - stopped_at < 60, "taken over within a minute"
            if stop == signal.SIGTERM:
                assert time.monotonic() - stopped_at < lease_s / 2, "handed back at once, not by lease expiry"
            done = await until(session, two.base, job_id, finished, 240)
            text = await transcript(session, two.base, job_id)
    assert moved["worker"] == two.worker
    assert done["status"] == "succeeded", done
    assert done["progress"]["chunks_resumed"] >= 1
    assert wer(lj_recording.reference, text) <= WER_BOUND


async def test_serve_restarted_keeps_a_finished_job_and_runs_the_queued_one(
    tmp_path: Path, triton_grpc_url: str, media_url: str, lj_recording: Recording
) -> None:
    """`longscribe serve` with its own Redis (no LONGSCRIBE_REDIS_URL), stopped with SIGTERM and started again."""
    redis_dir = tmp_path / "redis"
    short = {"media_url": f"{media_url}/speech/jfk.flac"}
    async with aiohttp.ClientSession() as session:
        async with orchestrator(tmp_path / "before.log", triton_grpc_url, job_workers=1, redis_dir=redis_dir) as before:
            finished_id = await submit(session, before.base, short)
            await until(session, before.base, finished_id, finished, 120)
            running_id = await submit(session, before.base, {"media_url": f"{media_url}/lj001.wav", **JOB})
            await until(session, before.base, running_id, lambda j: j["status"] == "running", 60)
            queued_id = await submit(session, before.base, short)
            assert (await job(session, before.base, queued_id))["status"] == "queued"
            before.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(before.proc.wait(), GRACE_S + 20) == 0
        async with orchestrator(tmp_path / "after.log", triton_grpc_url, job_workers=1, redis_dir=redis_dir) as after:
            kept = await job(session, after.base, finished_id)
            assert kept["status"] == "succeeded" and await transcript(session, after.base, finished_id)
            for job_id in (queued_id, running_id):
                assert (await until(session, after.base, job_id, finished, 240))["status"] == "succeeded"
            text = await transcript(session, after.base, running_id)
    assert wer(lj_recording.reference, text) <= WER_BOUND


async def test_a_job_cancelled_through_another_orchestrator_stops_its_ffmpeg_where_it_runs(
    tmp_path: Path, triton_grpc_url: str, redis_url: str, media_url: str, media_root: Path, long_recording: Recording
) -> None:
    media = long_recording.path.relative_to(media_root).as_posix()
    async with (
        orchestrator(tmp_path / "api.log", triton_grpc_url, redis_url, job_workers=0) as api_only,
        orchestrator(tmp_path / "runner.log", triton_grpc_url, redis_url, job_workers=1) as runner,
        aiohttp.ClientSession() as session,
    ):
        job_id = await submit(session, api_only.base, {"media_url": f"{media_url}/{media}", **JOB})
        await until(session, api_only.base, job_id, lambda j: j["progress"]["chunks_done"] >= 1 or finished(j), 240)
        # before the cancel: FFmpeg reads the media where the job runs, and the job has chunks left
        await wait_until(lambda: ffmpegs(runner.proc.pid), 30, "FFmpeg to read the job's media in the runner")
        running = await job(session, api_only.base, job_id)
        assert running["status"] == "running" and running["worker"] == runner.worker, running
        assert running["progress"]["chunks_done"] < running["progress"]["chunks_total"], running
        async with session.delete(f"{api_only.base}/v1/jobs/{job_id}") as response:
            cancelled = await response.json()
            assert response.status == 200 and cancelled["status"] == "cancelled", json.dumps(cancelled)
        await wait_until(lambda: not ffmpegs(runner.proc.pid), 10, "FFmpeg to stop where the job ran")
        assert (await job(session, runner.base, job_id))["status"] == "cancelled"
        # after: no chunk finishes any more, read through either orchestrator
        before, after = await steady(lambda: job(session, runner.base, job_id), STOPPED_WINDOW_S)
        through_api = await job(session, api_only.base, job_id)
    assert before["progress"]["chunks_done"] == after["progress"]["chunks_done"], "chunks kept finishing"
    assert after["status"] == through_api["status"] == "cancelled", after
    assert after["progress"]["chunks_done"] < after["progress"]["chunks_total"], after


async def test_the_queue_limit_holds_across_the_fleet_before_202(
    tmp_path: Path, triton_grpc_url: str, redis_url: str, media_url: str
) -> None:
    body = {"media_url": f"{media_url}/speech/jfk.flac"}
    async with (
        orchestrator(tmp_path / "a.log", triton_grpc_url, redis_url, job_workers=0, max_queued_jobs=1) as a,
        orchestrator(tmp_path / "b.log", triton_grpc_url, redis_url, job_workers=0, max_queued_jobs=1) as b,
        aiohttp.ClientSession() as session,
    ):
        waiting = await submit(session, a.base, body)
        async with session.post(f"{b.base}/v1/jobs", json=body) as response:
            assert response.status == 429 and "Retry-After" in response.headers
            assert (await response.json())["error"]["code"] == "overloaded"
        async with session.delete(f"{b.base}/v1/jobs/{waiting}") as response:  # a waiting job cancels at once
            assert (await response.json())["status"] == "cancelled"
