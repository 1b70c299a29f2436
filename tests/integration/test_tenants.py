"""Tenants on a real job (real Triton, FFmpeg, redis-server), auth on: the job is its key's, the CLI
sends its key, and `serve` refuses keys it cannot use."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from orchestrator.api.app import create_app
from orchestrator.common.net import free_port, serving, wait_until_ready
from orchestrator.settings import Settings

from ..corpus import Recording, manifest, wer
from ..media_servers import LOOPBACK
from ..redis_fleet import own_database
from ..wer_bounds import JFK_MAX_WER
from .test_cli import LONGSCRIBE

pytestmark = pytest.mark.integration
KEY_A, KEY_B, ADMIN = "tenant-a-71d0", "tenant-b-2a9c", "admin-e45b"
JFK = next(c for c in manifest() if c.path.name == "jfk.flac")


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Api-Key {key}"}


@pytest_asyncio.fixture(scope="module")
async def keyed_api(triton_grpc_url: str, redis_server: str) -> AsyncIterator[str]:
    """Auth on, as a shared service runs; loopback media allowed: the test's media server is local."""
    async with own_database(redis_server) as redis_url:
        settings = Settings(
            triton_grpc_urls=[triton_grpc_url],
            allowed_media_hosts=LOOPBACK,
            redis_url=redis_url,
            api_keys=[KEY_A, KEY_B],
            admin_api_keys=[ADMIN],
        )
        async with serving(create_app(settings)) as base:
            yield base


async def call(session: aiohttp.ClientSession, method: str, url: str, key: str) -> tuple[int, Any]:
    async with session.request(method, url, headers=auth(key)) as response:
        return response.status, await response.json() if response.content_type == "application/json" else None


async def test_a_real_job_is_its_keys_alone_and_an_admins(
    keyed_api: str, media_url: str, lj_recording: Recording
) -> None:
    body = {"media_url": f"{media_url}/lj001.wav", "params": {"macro_chunk_size_sec": 60}}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{keyed_api}/v1/jobs", json=body, headers=auth(KEY_A)) as response:
            assert response.status == 202
            job_id = (await response.json())["id"]
        job = f"{keyed_api}/v1/jobs/{job_id}"
        while (await call(session, "GET", job, KEY_A))[1]["status"] == "queued":
            await asyncio.sleep(0.1)
        for method, tail in [("GET", ""), ("GET", "/events"), ("GET", "/transcript"), ("DELETE", "")]:
            status, refused = await call(session, method, f"{job}{tail}", KEY_B)  # while it runs
            assert status == 404 and refused["error"]["code"] == "job_not_found", (method, tail)
        async with session.get(f"{job}/events", headers=auth(KEY_A)) as events:
            assert events.status == 200
            stream = (await events.text()).splitlines()
        assert "event: end" in stream, "B's DELETE did not stop A's job"
        status, done = await call(session, "GET", job, ADMIN)
        assert status == 200 and done["status"] == "succeeded"
        for key in (KEY_A, ADMIN):
            async with session.get(f"{job}/transcript?format=text", headers=auth(key)) as response:
                assert response.status == 200
                assert wer(lj_recording.reference, await response.text()) <= 0.08
        assert (await call(session, "GET", f"{job}/transcript", KEY_B))[0] == 404


async def transcribe(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE, "transcribe", str(JFK.path), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})},
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 180)
    return proc.returncode or 0, stdout.decode(), stderr.decode()


async def test_the_cli_sends_its_key_to_a_keyed_server(keyed_api: str) -> None:
    code, text, log = await transcribe("--server", keyed_api, "--api-key", KEY_A, "--quiet")
    assert code == 0, log
    assert wer(JFK.reference, text) <= JFK_MAX_WER
    code, text, log = await transcribe("--server", keyed_api, "--quiet", env={"LONGSCRIBE_API_KEY": KEY_B})
    assert code == 0 and wer(JFK.reference, text) <= JFK_MAX_WER, log
    code, _, log = await transcribe("--server", keyed_api, "--quiet", env={"LONGSCRIBE_API_KEY": ""})
    assert code == 3 and "401" in log and "unauthorized" in log  # exit 3: the service refused the key


async def serve(*args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *LONGSCRIBE, "serve", "--no-triton", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **env},
    )  # fmt: skip


async def test_serve_refuses_a_keys_file_of_comments_and_starts_with_no_auth(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# the keys go here, one per line\n\n")
    proc = await serve(env={"LONGSCRIBE_API_KEYS_FILE": str(keys), "LONGSCRIBE_REDIS_DIR": str(tmp_path / "r")})
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and str(keys) in stderr.decode() and "holds no key" in stderr.decode()

    port = free_port()
    proc = await serve("--no-auth", "--port", str(port), env={"LONGSCRIBE_REDIS_DIR": str(tmp_path / "redis")})
    try:
        await wait_until_ready(f"http://127.0.0.1:{port}/healthz", lambda: proc.returncode, 60, "longscribe serve")
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/v1/models") as response:
            assert response.status == 200, "no key asked for"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert "auth is off, as configured" in stderr.decode()


async def test_serve_with_no_keys_configured_refuses_to_start_and_says_how_to_choose(tmp_path: Path) -> None:
    """The default users run: nothing configured is not a silent "auth off" for a service others may reach."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LONGSCRIBE_")}
    env = {**clean, "LONGSCRIBE_REDIS_DIR": str(tmp_path / "r")}
    proc = await asyncio.create_subprocess_exec(
        *LONGSCRIBE, "serve", "--no-triton",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    said = stderr.decode()
    assert proc.returncode == 2, said
    assert "no API keys are configured" in said and "--no-auth" in said and "LONGSCRIBE_API_KEYS" in said
    assert "Traceback" not in said
