"""What an operator reads: every log line names its request or job, in text and in JSON; /metrics times
each route by its pattern, counts each job's end once, and shows the process.

The service runs as users run it (API keys on, loopback media refused), on a real Redis; only the
transcriber is a stand-in, one that logs and starts a task of its own that logs too.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.schemas import TranscribeOutput, TranscribeRequest
from orchestrator.settings import Settings

from ..log_capture import Lines, captured_logs
from .test_request_validation import FAKE_OUTPUT, SEED_BODY

KEY = "operator-test-key-4b1e"
AUTH = {"Authorization": f"Bearer {KEY}"}
log = logging.getLogger("longscribe.test")


async def chatty(request: TranscribeRequest, *_: object) -> TranscribeOutput:
    """Logs, and starts a task that logs: a task started for a request or job inherits its ids."""

    async def helper() -> None:
        log.info("the helper task works")

    log.info("transcribing %s", request.media_url)
    await asyncio.create_task(helper())
    return FAKE_OUTPUT


@asynccontextmanager
async def service(**settings: Any) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    app = create_app(Settings(api_keys=[KEY], **settings), transcriber=chatty)
    async with serving(app) as base, aiohttp.ClientSession() as session:
        yield session, base


async def scrape(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/metrics") as response:  # open to the scraper, as probes are
        assert response.status == 200
        return await response.text()


def assert_every_line_names(lines: Lines, words: str, ids: dict[str, str]) -> None:
    """Each line with `words` carries exactly `ids` (request_id, job_id), in JSON and in text."""
    found = lines.containing(words)
    assert found, f"no line says {words!r}"
    for as_json, as_text in found:
        assert {k: as_json.get(k) for k in ("request_id", "job_id") if k in as_json} == ids, as_json
        for name, value in ids.items():
            assert f" {name}={value} " in as_text, as_text


async def test_a_requests_log_lines_and_its_tasks_lines_carry_its_id_in_text_and_json() -> None:
    async with service() as (session, base):
        with captured_logs() as lines:
            headers = {**AUTH, "X-Request-ID": "client-trace-7f3a"}
            async with session.post(f"{base}/v1/transcribe", json=SEED_BODY, headers=headers) as response:
                assert response.status == 200
                assert response.headers["X-Request-ID"] == "client-trace-7f3a"
            refused = {**SEED_BODY, "params": {**SEED_BODY["params"], "macro_chunk_size_sec": -1}}
            headers = {**AUTH, "X-Request-ID": "client-trace-8a0c"}
            async with session.post(f"{base}/v1/transcribe", json=refused, headers=headers) as response:
                assert response.status == 422 and response.headers["X-Request-ID"] == "client-trace-8a0c"
    assert_every_line_names(lines, "transcribing https://example.com", {"request_id": "client-trace-7f3a"})
    assert_every_line_names(lines, "the helper task works", {"request_id": "client-trace-7f3a"})
    assert_every_line_names(lines, "-> 422", {"request_id": "client-trace-8a0c"})


@pytest.mark.parametrize(
    "offered",
    ["x" * 129, "two words", 'quote"d', "new\u2028line", "tab\there", "<script>", ""],
    ids=["too-long", "space", "quote", "unicode-separator", "tab", "markup", "empty"],
)
async def test_a_request_id_that_is_not_sane_is_replaced_by_a_new_one(offered: str) -> None:
    async with service() as (session, base):
        headers = {**AUTH, "X-Request-ID": offered}
        async with session.post(f"{base}/v1/transcribe", json=SEED_BODY, headers=headers) as response:
            assert response.status == 200
            given = response.headers["X-Request-ID"]
    assert given != offered and re.fullmatch(r"[0-9a-f]{32}", given)


async def wait_for_end(session: aiohttp.ClientSession, base: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        async with session.get(f"{base}/v1/jobs/{job_id}", headers=AUTH) as response:
            job: dict[str, Any] = await response.json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end: {job}")


async def test_a_jobs_log_lines_carry_its_id_and_its_end_is_counted_once(redis_url: str) -> None:
    async with service(redis_url=redis_url, job_workers=1) as (session, base):
        with captured_logs() as lines:
            headers = {**AUTH, "X-Request-ID": "submitter-51c2"}
            async with session.post(f"{base}/v1/jobs", json=SEED_BODY, headers=headers) as response:
                assert response.status == 202
                job_id = (await response.json())["id"]
            assert (await wait_for_end(session, base, job_id))["status"] == "succeeded"
        scraped = await scrape(session, base)
    # the job's lines are the job's, not the submitting request's: a worker anywhere in the fleet runs it
    for words in (f"job {job_id} running on", "transcribing https://example.com", "the helper task works"):
        assert_every_line_names(lines, words, {"job_id": job_id})
    assert_every_line_names(lines, f"job {job_id} succeeded", {"job_id": job_id})
    assert_every_line_names(lines, f"job {job_id} queued", {"request_id": "submitter-51c2"})  # the join
    assert 'longscribe_jobs_total{status="succeeded"} 1.0' in scraped
    assert 'longscribe_jobs_total{status="failed"} 0.0' in scraped
    assert job_id not in scraped, "no label holds a job's id: the series stay bounded"


async def test_a_job_cancelled_while_queued_is_counted_once_by_the_process_that_cancelled_it(
    redis_url: str,
) -> None:
    async with service(redis_url=redis_url, job_workers=0) as (session, base):  # no worker: it stays queued
        async with session.post(f"{base}/v1/jobs", json=SEED_BODY, headers=AUTH) as response:
            job_id = (await response.json())["id"]
        for _ in range(2):  # a second cancel finds it ended: not counted again
            async with session.delete(f"{base}/v1/jobs/{job_id}", headers=AUTH) as response:
                assert response.status == 200 and (await response.json())["status"] == "cancelled"
        scraped = await scrape(session, base)
    assert 'longscribe_jobs_total{status="cancelled"} 1.0' in scraped
    assert 'longscribe_jobs_total{status="succeeded"} 0.0' in scraped


def duration_count(scraped: str, route: str, method: str, status: str) -> float:
    labels = f'method="{method}",route="{route}",status="{status}"'
    found = re.search(rf"longscribe_http_request_duration_seconds_count\{{{re.escape(labels)}\}} (\S+)", scraped)
    return float(found.group(1)) if found else 0.0


async def test_metrics_time_each_route_by_its_pattern_and_show_the_process(redis_url: str) -> None:
    async with service(redis_url=redis_url, job_workers=0) as (session, base):
        for _ in range(2):
            async with session.post(f"{base}/v1/transcribe", json=SEED_BODY, headers=AUTH) as response:
                assert response.status == 200
        for job_id in ("no-such-job-1", "no-such-job-2"):
            async with session.get(f"{base}/v1/jobs/{job_id}", headers=AUTH) as response:
                assert response.status == 404
        async with session.post(f"{base}/v1/transcribe", json=SEED_BODY) as response:
            assert response.status == 401  # no key
        for path in ("/no/such/path", "/another/made-up/path"):
            async with session.get(f"{base}{path}", headers=AUTH) as response:
                assert response.status == 404
        async with session.request("PROPFIND", f"{base}/healthz") as response:
            assert response.status == 405
        scraped = await scrape(session, base)
    assert duration_count(scraped, "/v1/transcribe", "POST", "2xx") == 2
    assert duration_count(scraped, "/v1/transcribe", "POST", "4xx") == 1
    assert duration_count(scraped, "/v1/jobs/{job_id}", "GET", "4xx") == 2
    assert duration_count(scraped, "unmatched", "GET", "4xx") == 2
    assert duration_count(scraped, "unmatched", "other", "4xx") == 1
    for raw in ("no-such-job", "/no/such/path", "PROPFIND"):
        assert raw not in scraped, f"{raw}: a label from the URL or method would grow without bound"
    assert 'longscribe_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/v1/transcribe"' in scraped
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds"):
        assert re.search(rf"^{family} \d", scraped, re.MULTILINE), family
    assert "python_gc_collections_total{" in scraped and "python_info{" in scraped


async def test_a_client_that_hangs_up_is_timed_as_cancelled() -> None:
    started, hold = asyncio.Event(), asyncio.Event()

    async def slow(request: TranscribeRequest, *_: object) -> TranscribeOutput:
        started.set()
        await hold.wait()
        return FAKE_OUTPUT

    app = create_app(Settings(api_keys=[KEY]), transcriber=slow)
    async with serving(app) as base, aiohttp.ClientSession() as session:
        post = asyncio.create_task(session.post(f"{base}/v1/transcribe", json=SEED_BODY, headers=AUTH))
        await asyncio.wait_for(started.wait(), 10)
        post.cancel()  # the connection closes; the handler is cancelled
        deadline = time.monotonic() + 10
        while duration_count(scraped := await scrape(session, base), "/v1/transcribe", "POST", "cancelled") == 0:
            assert time.monotonic() < deadline, scraped
            await asyncio.sleep(0.05)
