"""Faults caused for real: a replica SIGKILLed mid-job, all replicas down and one back,
a media server that drops connections, a client that hangs up."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import tritonclient.grpc.aio as grpcclient

from orchestrator.api.app import POOL, create_app
from orchestrator.common.net import free_port, serving
from orchestrator.infer import triton_server
from orchestrator.infer.triton_server import FREE_PORTS, running_triton
from orchestrator.settings import Settings

from ..corpus import Recording, wer
from ..media_servers import LOOPBACK, Drops, misbehaving_app
from ..polling import steady, wait_until
from ..processes import ffmpegs
from ..scrape import AUDIO_SECONDS, CHUNKS, IN_FLIGHT, REQUEST_SECONDS, STOPPED_WINDOW_S, metric

pytestmark = pytest.mark.integration


async def post(service: str, body: dict[str, Any], timeout_s: float = 300) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{service}/v1/transcribe", json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as response:
            return response.status, await response.json()


def kill_replica(grpc_port: int) -> None:
    """SIGKILL the tritonserver on `grpc_port` and its stubs, as when a machine dies."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args[0].endswith(b"tritonserver") and str(grpc_port).encode() in args:
            os.killpg(int(entry.name), signal.SIGKILL)  # its own session: the stubs go too
            return
    raise AssertionError(f"no tritonserver on gRPC port {grpc_port}")


@pytest_asyncio.fixture(scope="session")
async def dropping_url(media_root: Path) -> AsyncIterator[tuple[str, Drops]]:
    drops = Drops(after_bytes=256 * 1024, budget=3)
    async with serving(misbehaving_app(media_root, drops)) as base:
        yield base, drops


async def test_a_replica_killed_mid_job_hands_its_chunks_to_the_other_and_one_back_is_used_again(
    triton_grpc_url: str, media_url: str, lj_recording: Recording
) -> None:
    body = {"media_url": f"{media_url}/lj001.wav", "params": {"macro_chunk_size_sec": 60}}
    async with running_triton(Settings(**FREE_PORTS)) as doomed:
        same_address = {**FREE_PORTS, "triton_grpc_port": int(doomed.rsplit(":", 1)[1])}
        app = create_app(Settings(triton_grpc_urls=[doomed, triton_grpc_url], allowed_media_hosts=LOOPBACK))
        async with serving(app) as service:
            job = asyncio.create_task(post(service, body))
            victim = next(e for e in app[POOL].endpoints if e.url == doomed)
            await wait_until(lambda: victim.in_flight > 0, 60, "a chunk on the doomed replica")
            kill_replica(same_address["triton_grpc_port"])
            status, out = await job
        assert status == 200, out
        assert wer(lj_recording.reference, out["text"]) <= 0.08  # nothing lost with the replica

        # the same replica alone, dead: a clear 503 within seconds
        alone = create_app(Settings(triton_grpc_urls=[doomed], allowed_media_hosts=LOOPBACK))
        async with serving(alone) as service:
            started = time.monotonic()
            status, out = await post(service, body)
            assert status == 503 and out["error"]["code"] == "inference_unavailable", out
            assert time.monotonic() - started < 15
            async with running_triton(Settings(**same_address)):  # back, on the same (gRPC) address
                status, out = await post(service, body)  # no restart of the orchestrator
            assert status == 200, out


async def test_a_connection_dropped_mid_read_is_resumed_where_it_stopped(
    service_url: str, dropping_url: tuple[str, Drops], lj_recording: Recording
) -> None:
    base, drops = dropping_url
    body = {"media_url": f"{base}/drop-some/lj001.wav", "params": {"macro_chunk_size_sec": 60}}
    status, out = await post(service_url, body)
    assert status == 200, out
    assert drops.dropped, "the server should have dropped some reads"
    assert wer(lj_recording.reference, out["text"]) <= 0.08
    assert out["input_duration_sec"] == pytest.approx(lj_recording.duration_s, abs=0.1)


async def test_a_client_that_hangs_up_leaves_no_ffmpeg_behind(
    service_url: str, media_url: str, media_root: Path, long_recording: Recording
) -> None:
    chunk_s = 30
    media = long_recording.path.relative_to(media_root).as_posix()
    body = {"media_url": f"{media_url}/{media}", "params": {"macro_chunk_size_sec": chunk_s}}
    planned = math.ceil(long_recording.duration_s / chunk_s)
    hung_up = {"route": "/v1/transcribe", "method": "POST", "status": "cancelled"}
    async with aiohttp.ClientSession() as session:

        async def seen(name: str, **labels: str) -> float:
            return await metric(session, service_url, name, **labels)

        chunks_before = await seen(CHUNKS)
        hung_up_before = await seen(REQUEST_SECONDS, **hung_up)
        audio_before = await seen(AUDIO_SECONDS)
        request = asyncio.create_task(post(service_url, body))
        # before the hang-up: the request runs, FFmpeg reads its media, and chunks are left
        await wait_until(lambda: ffmpegs(os.getpid()), 60, "FFmpeg to read the media")
        assert await seen(IN_FLIGHT) == 1
        assert await seen(CHUNKS) - chunks_before < planned, "the request must have chunks left"
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(request, 0)  # the client gives up now and closes its connection
        await wait_until(lambda: not ffmpegs(os.getpid()), 10, "FFmpeg processes to be killed")

        # the service saw a hang-up, not an answer: counted as cancelled, no audio counted as done
        async def counted() -> bool:
            return await seen(REQUEST_SECONDS, **hung_up) == hung_up_before + 1

        await wait_until(counted, 10, "the request counted as cancelled")
        assert await seen(IN_FLIGHT) == 0
        assert await seen(AUDIO_SECONDS) == audio_before, "a cancelled request transcribed nothing to the end"
        done, again = await steady(lambda: seen(CHUNKS), STOPPED_WINDOW_S)
        assert done == again, "chunks kept finishing after the hang-up"
        assert done - chunks_before < planned


async def test_a_triton_whose_free_ports_another_process_took_first_starts_on_others(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as holder:  # another process's server, on the ports Triton is handed first
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        picks = [taken] * len(triton_server.PORTS)  # the race, caused: the picker is the only seam
        monkeypatch.setattr(triton_server, "free_port", lambda: picks.pop() if picks else free_port())
        with caplog.at_level(logging.WARNING, logger="longscribe.triton"):
            async with running_triton(Settings(**FREE_PORTS)) as url:
                client = grpcclient.InferenceServerClient(url)
                try:
                    assert await client.is_server_ready()
                finally:
                    await client.close()
    assert int(url.rsplit(":", 1)[1]) != taken
    assert "starting Triton again on other ports" in caplog.text
