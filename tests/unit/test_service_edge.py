"""The service's edge with a stand-in transcriber: API keys, backpressure, time limits, cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.schemas import TranscribeOutput, TranscribeRequest
from orchestrator.settings import Settings

from ..polling import wait_until
from ..scrape import IN_FLIGHT, metric, metric_where
from .test_request_validation import FAKE_OUTPUT, SEED_BODY


class Gate:
    """A transcriber that waits until released, and notes whether it was cancelled."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.cancelled = 0

    async def __call__(self, request: TranscribeRequest, *_: object) -> TranscribeOutput:
        self.started += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return FAKE_OUTPUT


@asynccontextmanager
async def service(settings: Settings, transcriber: Any) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with serving(create_app(settings, transcriber=transcriber)) as base, aiohttp.ClientSession() as session:
        yield session, base


async def post(session: aiohttp.ClientSession, base: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with session.post(f"{base}/v1/transcribe", json=SEED_BODY, headers=headers or {}) as response:
        return response.status, await response.json()


async def instant(request: TranscribeRequest, *_: object) -> TranscribeOutput:
    return FAKE_OUTPUT


async def test_without_keys_anyone_may_call() -> None:
    async with service(Settings(), instant) as (session, base):
        assert (await post(session, base))[0] == 200


async def test_api_keys_from_the_environment_and_a_file_in_either_header_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys_file = tmp_path / "keys"
    keys_file.write_text("# one per line\nfile-key-7f3a\n")
    monkeypatch.setenv("LONGSCRIBE_API_KEYS", '["env-key-91c2"]')
    monkeypatch.setenv("LONGSCRIBE_API_KEYS_FILE", str(keys_file))
    async with service(Settings(), instant) as (session, base):
        assert (await post(session, base, {"Authorization": "Api-Key env-key-91c2"}))[0] == 200
        assert (await post(session, base, {"Authorization": "Bearer file-key-7f3a"}))[0] == 200
        for header in ({}, {"Authorization": "Api-Key wrong"}, {"Authorization": "Basic env-key-91c2"}):
            status, body = await post(session, base, header)
            assert status == 401 and body["error"]["code"] == "unauthorized"
            assert "Api-Key" in body["error"]["hint"]
        for open_path in ("/healthz", "/openapi.json"):
            async with session.get(f"{base}{open_path}") as response:
                assert response.status == 200
    assert "env-key-91c2" not in caplog.text and "file-key-7f3a" not in caplog.text


async def test_beyond_the_queue_requests_get_429_with_retry_after_and_the_rest_finish() -> None:
    gate = Gate()
    settings = Settings(max_requests_in_flight=1, max_queued_requests=1, retry_after_sec=7)
    async with service(settings, gate) as (session, base):
        first = asyncio.create_task(post(session, base))
        second = asyncio.create_task(post(session, base))
        await wait_until(lambda: gate.started == 1, 10, "the first request to run")
        await wait_until(
            metric_where(session, base, IN_FLIGHT, lambda n: n == 2), 10, "the second to wait for its slot"
        )
        async with session.post(f"{base}/v1/transcribe", json=SEED_BODY) as response:
            assert response.status == 429
            assert response.headers["Retry-After"] == "7"
            assert (await response.json())["error"]["code"] == "overloaded"
        gate.release.set()
        assert [(await first)[0], (await second)[0]] == [200, 200]


async def test_a_request_over_its_time_limit_is_cancelled_with_504() -> None:
    gate = Gate()
    async with service(Settings(request_timeout_sec=0.3), gate) as (session, base):
        status, body = await post(session, base)
    assert status == 504 and body["error"]["code"] == "request_timeout"
    assert gate.cancelled == 1


async def test_a_client_that_hangs_up_cancels_its_work() -> None:
    gate = Gate()
    async with service(Settings(), gate) as (session, base):
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(
                f"{base}/v1/transcribe", json=SEED_BODY, timeout=aiohttp.ClientTimeout(total=0.3)
            ) as response:
                await response.read()
        for _ in range(100):
            if gate.cancelled:
                break
            await asyncio.sleep(0.02)
    assert gate.cancelled == 1


async def test_the_openapi_document_describes_the_transcribe_endpoint() -> None:
    async with service(Settings(), instant) as (session, base), session.get(f"{base}/openapi.json") as response:
        document = await response.json()
    post_op = document["paths"]["/v1/transcribe"]["post"]
    assert post_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TranscribeRequest")
    assert {"200", "401", "422", "429", "503", "504"} <= set(post_op["responses"])
    assert "TranscribeParams" in document["components"]["schemas"]


async def test_metrics_count_outcomes_audio_and_speed_and_request_ids_travel() -> None:
    async with service(Settings(), instant) as (session, base):
        async with session.post(
            f"{base}/v1/transcribe", json=SEED_BODY, headers={"X-Request-Id": "caller-42"}
        ) as response:
            assert response.headers["X-Request-Id"] == "caller-42"
        async with session.post(f"{base}/v1/transcribe", data="{not json") as response:
            assert response.status == 422 and len(response.headers["X-Request-Id"]) == 32  # one made up
        async with session.get(f"{base}/metrics") as response:
            assert response.status == 200
            scraped = await response.text()
    assert 'longscribe_requests_total{route="/v1/transcribe",status="200"} 1.0' in scraped
    assert 'longscribe_requests_total{route="/v1/transcribe",status="422"} 1.0' in scraped
    assert "longscribe_audio_seconds_total 1.5" in scraped
    assert "longscribe_speedup_count 1.0" in scraped
    assert "longscribe_requests_in_flight 0.0" in scraped


def test_json_logs_carry_the_request_id() -> None:
    import json as json_module

    from orchestrator.common.observability import REQUEST_ID, JsonFormatter

    token = REQUEST_ID.set("abc123")
    try:
        record = logging.LogRecord("longscribe.app", logging.INFO, __file__, 1, "chunk %d done", (3,), None)
        line = json_module.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["request_id"] == "abc123" and line["message"] == "chunk 3 done" and line["level"] == "info"


async def test_metrics_report_the_worst_event_loop_block() -> None:
    import time

    ticks = "longscribe_event_loop_lag_seconds_count"  # one per probe wake-up
    async with service(Settings(loop_lag_probe_sec=0.02), instant) as (session, base):
        await wait_until(lambda: metric(session, base, ticks), 10, "the lag probe to tick")
        before = await metric(session, base, ticks)
        time.sleep(0.3)  # blocks the loop the service runs on, as a slow callback would
        await wait_until(
            metric_where(session, base, ticks, lambda n: n > before), 10, "the probe to wake after the block"
        )
        async with session.get(f"{base}/metrics") as response:
            text = await response.text()
    worst = next(line for line in text.splitlines() if line.startswith("longscribe_event_loop_lag_max_seconds "))
    assert 0.25 <= float(worst.split()[1]) < 2.0
