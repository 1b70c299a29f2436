"""Following one transcription from the edge to the model, on real parts: a job's id in its log lines,
in Triton's (as the request id of every inference it makes, the micro chunker's calls to whisper
included), and its end counted on /metrics; a request's id likewise.

The service runs as users run it: API keys on, loopback media refused (the media is uploaded). Triton
runs with --log-verbose=1, which writes each inference's request id in its log; that log reaches this
process through the service's own forwarding (logger longscribe.triton).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import tritonclient.grpc.aio as grpcclient

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.infer import triton_server
from orchestrator.settings import Settings

from ..log_capture import Lines, captured_logs
from ..polling import wait_until
from ..redis_fleet import own_database

pytestmark = pytest.mark.integration
KEY = "observability-key-77d0"
AUTH = {"Authorization": f"Bearer {KEY}"}
JFK = Path(__file__).resolve().parents[1] / "data" / "jfk.flac"  # 11 s of speech
PREPARED = re.compile(r"prepared: \S+ request id: ([^,]*), model: (\w+)")  # one line per inference request


@pytest_asyncio.fixture(scope="module")
async def verbose_triton() -> AsyncIterator[str]:
    """A Triton of its own, started as the service starts it, plus --log-verbose=1."""
    with pytest.MonkeyPatch.context() as patch:
        plain = triton_server.server_args
        patch.setattr(triton_server, "server_args", lambda *args, **kw: [*plain(*args, **kw), "--log-verbose=1"])
        async with triton_server.running_triton(Settings(**triton_server.FREE_PORTS)) as url:
            yield url


@pytest_asyncio.fixture(scope="module")
async def api(verbose_triton: str, redis_server: str) -> AsyncIterator[str]:
    async with own_database(redis_server) as redis_url:
        settings = Settings(triton_grpc_urls=[verbose_triton], redis_url=redis_url, api_keys=[KEY])
        async with serving(create_app(settings)) as base:
            yield base


def inferences(lines: Lines) -> list[tuple[str, str]]:
    """(request id, model) of each inference request Triton prepared while `lines` captured."""
    return [
        m.groups() for j in lines.json if j["logger"] == "longscribe.triton" for m in PREPARED.finditer(j["message"])
    ]


async def triton_requests(url: str) -> int:
    """Inference requests Triton has executed, all models together: one `prepared` line each."""
    async with grpcclient.InferenceServerClient(url) as client:
        stats = await client.get_inference_statistics(as_json=True)
    return sum(int(m["inference_stats"]["success"].get("count", 0)) for m in stats.get("model_stats", []))


async def every_line_of(triton_url: str, since: int, lines: Lines) -> None:
    """Wait until the forwarder has passed on a `prepared` line for each request Triton ran since `since`."""

    async def all_there() -> bool:
        return len(inferences(lines)) >= await triton_requests(triton_url) - since

    await wait_until(all_there, 10, "Triton's last lines to reach the forwarder")


async def test_a_jobs_id_is_in_its_log_lines_in_every_triton_call_it_makes_and_its_end_is_counted(
    api: str, verbose_triton: str
) -> None:
    async with aiohttp.ClientSession() as session:
        since = await triton_requests(verbose_triton)
        with captured_logs() as lines:
            form = aiohttp.FormData()
            form.add_field("file", JFK.read_bytes(), filename="jfk.flac", content_type="audio/flac")
            async with session.post(f"{api}/v1/jobs", data=form, headers=AUTH) as response:
                assert response.status == 202, await response.text()
                job_id = (await response.json())["id"]
            job = await wait_for_end(session, f"{api}/v1/jobs/{job_id}")
            await every_line_of(verbose_triton, since, lines)
        async with session.get(f"{api}/metrics") as response:
            scraped = await response.text()
    assert job["status"] == "succeeded", job
    for words in (f"job {job_id} running on", f"job {job_id} succeeded"):
        found = lines.containing(words)
        assert found and all(j["job_id"] == job_id and f" job_id={job_id} " in t for j, t in found), words
    calls = inferences(lines)
    assert {model for _, model in calls} >= {"micro_chunker", "whisper"}, calls
    assert all(request_id == job_id for request_id, _ in calls), f"an inference without the job's id: {calls}"
    assert 'longscribe_jobs_total{status="succeeded"} 1.0' in scraped
    assert 'longscribe_http_request_duration_seconds_count{method="POST",route="/v1/jobs",status="2xx"} 1.0' in scraped
    assert re.search(r'_count\{method="GET",route="/v1/jobs/\{job_id\}",status="2xx"\} [1-9]', scraped)
    assert re.search(r"^process_resident_memory_bytes \d", scraped, re.MULTILINE)


async def test_a_requests_id_is_the_request_id_of_its_triton_calls(api: str, verbose_triton: str) -> None:
    async with aiohttp.ClientSession() as session:
        since = await triton_requests(verbose_triton)
        with captured_logs() as lines:
            form = aiohttp.FormData()
            form.add_field("model", "whisper-1")
            form.add_field("file", JFK.read_bytes(), filename="jfk.flac", content_type="audio/flac")
            headers = {**AUTH, "X-Request-ID": "caller-trace-0c9e"}
            async with session.post(f"{api}/v1/audio/transcriptions", data=form, headers=headers) as response:
                assert response.status == 200, await response.text()
                assert response.headers["X-Request-ID"] == "caller-trace-0c9e"
                assert "ask not what your country" in (await response.json())["text"]
            await every_line_of(verbose_triton, since, lines)
    calls = inferences(lines)
    assert {model for _, model in calls} >= {"micro_chunker", "whisper"}, calls
    assert all(request_id == "caller-trace-0c9e" for request_id, _ in calls), calls


async def wait_for_end(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 300  # generous: the machine is shared
    while True:
        async with session.get(url, headers=AUTH) as response:
            job: dict[str, Any] = await response.json()
        if job["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.2)
