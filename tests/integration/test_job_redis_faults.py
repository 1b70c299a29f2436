"""A running job against a Redis that fails under it, with the real Triton, FFmpeg and speech: Redis
SIGKILLed and restarted (append-only), its connections killed, a 35 s stall longer than the client's
timeout: the job completes with its whole transcript. Redis losing the job's data (FLUSHALL): GET
answers 404 or `failed`, never 500, and no key of the job is left to live forever."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis

from orchestrator.api.app import create_app
from orchestrator.api.keys import METRICS
from orchestrator.common.net import BIND_ATTEMPTS, free_port, listening_ports, serving
from orchestrator.jobs.records import ACTIVE, QUEUE, QUEUED, WEBHOOKS, events_key
from orchestrator.jobs.redis_server import server_args
from orchestrator.settings import Settings

from ..corpus import Recording, wer
from ..media_servers import LOOPBACK
from ..polling import wait_until
from ..scrape import CHUNKS

pytestmark = pytest.mark.integration
JOB = {"params": {"macro_chunk_size_sec": 30}}  # eight chunks of the 4-minute recording: hit mid-way
WER_BOUND = 0.08  # as for the same recording in test_jobs
STALL_S = 35  # DEBUG SLEEP: longer than the client's 30 s socket timeout
FLEET_KEYS = {QUEUE, QUEUED, ACTIVE, WEBHOOKS}


class RedisProcess:
    """A redis-server of the test's own (append-only, in `directory`), that can be killed and started again."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        settings = Settings(redis_dir=directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.args = [*server_args(settings, self.port), "--enable-debug-command", "yes"]
        self.proc: asyncio.subprocess.Process | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.started = False

    async def start(self) -> None:
        """Start it; the first start moves to a fresh port when another process took the picked one
        (a restart keeps its port: that is what it tests)."""
        for _ in range(BIND_ATTEMPTS):
            self.proc = await asyncio.create_subprocess_exec(
                *self.args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
            )
            if await self._answers(self.proc):
                self.started = True
                return
            if self.proc.returncode is None:  # another server answered there: this one is about to fail
                await self.kill()
            assert not self.started, f"redis-server could not have port {self.port} back"
            self.port = free_port()
            self.args[self.args.index("--port") + 1] = str(self.port)
            self.url = f"redis://127.0.0.1:{self.port}/0"
        raise AssertionError(f"redis-server found its port taken {BIND_ATTEMPTS} times")

    async def _answers(self, proc: asyncio.subprocess.Process) -> bool:
        """True once `proc` itself answers PING on the port; False when another process holds the port."""
        client = redis.Redis.from_url(self.url, socket_timeout=1.0)
        try:
            deadline = time.monotonic() + 30
            while proc.returncode is None:
                with contextlib.suppress(Exception):
                    if await client.ping():
                        return self.port in listening_ports(proc.pid)
                assert time.monotonic() < deadline, "redis-server did not start"
                await asyncio.sleep(0.1)
            return False
        finally:
            await client.aclose()

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()


@contextlib.asynccontextmanager
async def own_redis(directory: Path) -> AsyncIterator[RedisProcess]:
    server = RedisProcess(directory)
    await server.start()
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.returncode is None:
            await server.kill()


@contextlib.asynccontextmanager
async def service(triton_grpc_url: str, redis_url: str) -> AsyncIterator[str]:
    settings = Settings(triton_grpc_urls=[triton_grpc_url], allowed_media_hosts=LOOPBACK, redis_url=redis_url)
    async with serving(create_app(settings)) as base:
        yield base


async def submit(session: aiohttp.ClientSession, api: str, body: dict[str, Any]) -> str:
    async with session.post(f"{api}/v1/jobs", json=body) as response:
        assert response.status == 202, await response.text()
        return str((await response.json())["id"])


async def until(session: aiohttp.ClientSession, api: str, job_id: str, done: Any, timeout_s: float) -> dict[str, Any]:
    """Poll the job until `done(job)`; a 503 (Redis away a moment) is waited out; fail after `timeout_s`."""
    deadline, found = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        async with session.get(f"{api}/v1/jobs/{job_id}") as response:
            assert response.status in (200, 503), await response.text()
            if response.status == 200:
                found = await response.json()
                if done(found):
                    return dict(found)
        await asyncio.sleep(0.5)
    raise AssertionError(f"job {job_id} not there after {timeout_s:g} s: {found}")


def finished(j: dict[str, Any]) -> bool:
    return j["status"] in ("succeeded", "failed", "cancelled")


def chunks_done(n: int) -> Any:
    return lambda j: j["progress"]["chunks_done"] >= n or finished(j)


async def transcript(session: aiohttp.ClientSession, api: str, job_id: str) -> str:
    async with session.get(f"{api}/v1/jobs/{job_id}/transcript", params={"format": "text"}) as response:
        assert response.status == 200, await response.text()
        return await response.text()


async def assert_whole(
    session: aiohttp.ClientSession, api: str, job_id: str, recording: Recording, redis_url: str
) -> None:
    """Succeeded, the whole transcript, and each event once: a write sent again after a lost reply
    (redis-py retries after a timeout or a dropped connection) added nothing twice."""
    done = await until(session, api, job_id, finished, 600)
    assert done["status"] == "succeeded", done
    assert wer(recording.reference, await transcript(session, api, job_id)) <= WER_BOUND
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        log = [(f["event"], json.loads(f["data"])) for _, f in await raw.xrange(events_key(job_id))]
    finally:
        await raw.aclose()
    reported = [data["chunks_done"] for name, data in log if name == "chunk"]
    assert reported == sorted(set(reported)), f"a chunk reported twice: {reported}"
    assert [name for name, _ in log].count("end") == 1


async def test_a_job_completes_whole_when_redis_is_sigkilled_and_restarted_mid_job(
    tmp_path: Path, triton_grpc_url: str, media_url: str, lj_recording: Recording
) -> None:
    async with own_redis(tmp_path / "redis") as server:
        app = create_app(
            Settings(triton_grpc_urls=[triton_grpc_url], allowed_media_hosts=LOOPBACK, redis_url=server.url)
        )
        registry = app[METRICS].registry  # read here: /metrics itself asks Redis, which is away

        def chunks_inferred() -> float:
            return registry.get_sample_value(CHUNKS) or 0.0

        async with serving(app) as api, aiohttp.ClientSession() as session:
            job_id = await submit(session, api, {"media_url": f"{media_url}/lj001.wav", **JOB})
            running = await until(session, api, job_id, chunks_done(2), 300)
            assert running["status"] == "running", "hit mid-way"
            before = chunks_inferred()
            await server.kill()
            await wait_until(lambda: chunks_inferred() > before, 120, "a chunk to finish while Redis is away")
            await server.start()  # same port, same append-only file
            await assert_whole(session, api, job_id, lj_recording, server.url)


async def test_a_job_completes_whole_through_killed_connections_and_a_stall_longer_than_the_timeout(
    tmp_path: Path, triton_grpc_url: str, media_url: str, lj_recording: Recording
) -> None:
    async with (
        own_redis(tmp_path / "redis") as server,
        service(triton_grpc_url, server.url) as api,
        aiohttp.ClientSession() as session,
    ):
        admin = redis.Redis.from_url(server.url, socket_timeout=STALL_S + 30)
        try:
            job_id = await submit(session, api, {"media_url": f"{media_url}/lj001.wav", **JOB})
            await until(session, api, job_id, chunks_done(1), 300)
            killed = await admin.execute_command("CLIENT", "KILL", "TYPE", "normal")
            killed += await admin.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            assert killed >= 1, "the worker's connections were killed"
            running = await until(session, api, job_id, chunks_done(3), 300)
            assert running["status"] == "running", "still mid-way for the stall"
            await admin.execute_command("DEBUG", "SLEEP", STALL_S)
        finally:
            await admin.aclose()
        await assert_whole(session, api, job_id, lj_recording, server.url)


async def test_a_running_job_whose_data_redis_lost_reads_as_404_never_500(
    tmp_path: Path, triton_grpc_url: str, media_url: str
) -> None:
    async with (
        own_redis(tmp_path / "redis") as server,
        service(triton_grpc_url, server.url) as api,
        aiohttp.ClientSession() as session,
    ):
        raw = redis.Redis.from_url(server.url, decode_responses=True)
        try:
            job_id = await submit(session, api, {"media_url": f"{media_url}/lj001.wav", **JOB})
            await until(session, api, job_id, chunks_done(1), 300)
            await raw.flushall()
            deadline = time.monotonic() + 40.0  # over a lease: renewals, progress and checkpoints meanwhile
            while time.monotonic() < deadline:
                async with session.get(f"{api}/v1/jobs/{job_id}") as response:
                    body = await response.json()
                    assert response.status in (200, 404), body
                    if response.status == 200:
                        assert body["status"] == "failed" and body["error"], body
                await asyncio.sleep(0.5)
            for key in await raw.keys("*"):
                assert key in FLEET_KEYS or await raw.ttl(key) >= 0, f"{key} would live forever"
        finally:
            await raw.aclose()
