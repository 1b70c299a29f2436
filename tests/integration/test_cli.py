"""The `longscribe` command: serve starts and stops Triton cleanly; transcribe uploads local paths to a
service with keys that refuses loopback media (production's defaults)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.common.net import free_port, wait_until_ready

from ..corpus import Recording, manifest, wer
from ..keyed_service import SERVICE_KEY
from ..log_capture import captured_logs
from ..media_servers import LOOPBACK
from ..polling import steady, wait_until
from ..processes import alive, children_of, ffmpegs
from ..scrape import IN_FLIGHT, JOBS_ENDED, STOPPED_WINDOW_S, metric
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration
LONGSCRIBE = [sys.executable, "-m", "orchestrator.cli"]


async def test_sigterm_stops_accepting_finishes_the_request_in_flight_then_stops_triton(
    media_url: str, lj_recording: Recording, tmp_path: Path
) -> None:
    port, ports = free_port(), ["0", "0", "0"]  # Triton's: free ones, picked as it starts
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE,
        "serve",
        "--no-auth",
        "--port",
        str(port),
        "--triton-http-port",
        ports[0],
        "--triton-grpc-port",
        ports[1],
        "--triton-metrics-port",
        ports[2],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={
            **os.environ,
            "LONGSCRIBE_ALLOWED_MEDIA_HOSTS": json.dumps(LOOPBACK),
            "LONGSCRIBE_REDIS_DIR": str(tmp_path / "redis"),  # its own Redis data, not the environment's
        },
    )
    try:
        # raises NotReady when serve exits early or never becomes ready
        await wait_until_ready(f"http://127.0.0.1:{port}/readyz", lambda: proc.returncode, 240, "longscribe serve")
        assert children_of(proc.pid), "Triton should run as a child of serve"
        descendants = children_of(proc.pid)
        async with aiohttp.ClientSession() as session:
            in_flight = asyncio.create_task(post_json(session, port, {"media_url": f"{media_url}/lj001.wav"}))
            base = f"http://127.0.0.1:{port}"
            await wait_until(lambda: metric(session, base, IN_FLIGHT), 60, "the request to be transcribed")
            proc.send_signal(signal.SIGTERM)
            await wait_until(lambda: refuses(port), 10, "serve to close its port")
            with pytest.raises(aiohttp.ClientConnectionError):  # no longer accepting
                await post_json(session, port, {"media_url": f"{media_url}/lj001.wav"})
            status, out = await in_flight
        assert status == 200, out
        assert wer(lj_recording.reference, out["text"]) <= 0.08  # finished, not cut short
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await wait_until(lambda: not alive(descendants), 0.5, "Triton and its stubs to go with serve")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def refuses(port: int) -> bool:
    """Whether a new connection to `port` on loopback is refused now."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def post_json(session: aiohttp.ClientSession, port: int, body: dict[str, Any]) -> tuple[int, Any]:
    async with session.post(f"http://127.0.0.1:{port}/v1/transcribe", json=body) as response:
        return response.status, await response.json()


async def test_a_local_file_is_uploaded_to_a_keyed_server_that_refuses_loopback_media(
    keyed_service_url: str,
) -> None:
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE,
        "transcribe",
        str(jfk.path),
        "--server",
        keyed_service_url,
        "--format",
        "srt",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LONGSCRIBE_API_KEY": SERVICE_KEY},
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, stderr.decode()
    srt = stdout.decode()
    assert srt.startswith("1\n00:00:")
    text = " ".join(line for line in srt.splitlines() if line and "-->" not in line and not line.isdigit())
    assert wer(jfk.reference, text) <= JFK_MAX_WER
    assert "speedup=" in stderr.decode()


async def test_transcribe_reports_a_missing_file() -> None:
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE,
        "transcribe",
        "/no/such/file.wav",
        "--server",
        "http://127.0.0.1:9",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == 2
    assert b"no such file" in stderr


async def test_transcribe_shows_progress_per_chunk_and_quiet_shows_nothing(
    keyed_service_url: str, media_root: Path, lj_recording: Recording
) -> None:
    async def run(*extra: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            *LONGSCRIBE, "transcribe", str(media_root / "lj001.wav"), "--server", keyed_service_url,
            "--macro-chunk-size-sec", "60", "--api-key", SERVICE_KEY, *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 180)
        return proc.returncode or 0, stdout.decode(), stderr.decode()

    code, text, log = await run()
    assert code == 0, log
    lines = [line for line in log.splitlines() if line.startswith("[")]
    assert len(lines) >= 3 and "audio" in lines[-1] and "x" in lines[-1]
    assert lines[-1].startswith("[" + "#" * 24 + "]")
    assert wer(lj_recording.reference, text) <= 0.08
    code, text, log = await run("--quiet")
    assert code == 0 and log == "" and text.strip()


async def test_ctrl_c_cancels_the_job_on_the_server(
    keyed_service_url: str, media_root: Path, long_recording: Recording
) -> None:
    auth = {"Authorization": f"Bearer {SERVICE_KEY}"}
    with captured_logs() as lines:
        proc = await asyncio.create_subprocess_exec(
            *LONGSCRIBE, "transcribe", str(long_recording.path), "--server", keyed_service_url,
            "--macro-chunk-size-sec", "30",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LONGSCRIBE_API_KEY": SERVICE_KEY},
        )  # fmt: skip
        assert proc.stderr is not None
        while not (await proc.stderr.readline()).startswith(b"["):  # the first chunk is done
            pass
        started = lines.containing(" running on ")
    assert len(started) == 1, started
    job_url = f"{keyed_service_url}/v1/jobs/{started[0][0]['message'].split()[1]}"
    async with aiohttp.ClientSession(headers=auth) as session:

        async def job() -> dict[str, Any]:
            async with session.get(job_url) as response:
                assert response.status == 200, await response.text()
                return dict(await response.json())

        # before Ctrl-C: FFmpeg reads the upload on the server, and the job has chunks left
        await wait_until(lambda: ffmpegs(os.getpid()), 30, "FFmpeg to read the upload")
        running = await job()
        assert running["status"] == "running", running
        assert running["progress"]["chunks_done"] < running["progress"]["chunks_total"], running
        cancelled_before = await metric(session, keyed_service_url, JOBS_ENDED, status="cancelled")
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 130

        async def no_job_left() -> bool:
            return await metric(session, keyed_service_url, "longscribe_jobs_in_flight") == 0.0

        await wait_until(no_job_left, 5, "the job to stop after Ctrl-C")
        await wait_until(lambda: not ffmpegs(os.getpid()), 10, "FFmpeg to stop with the job")
        assert await metric(session, keyed_service_url, JOBS_ENDED, status="cancelled") == cancelled_before + 1
        before, after = await steady(job, STOPPED_WINDOW_S)
    assert before["status"] == after["status"] == "cancelled", after
    assert before["progress"]["chunks_done"] == after["progress"]["chunks_done"], "chunks kept finishing"
    assert after["progress"]["chunks_done"] < after["progress"]["chunks_total"], after
