"""Tenants, with a stand-in transcriber and the session's real redis-server, auth on: a job is its key's,
admins see every job, each key has its own queue and stream limits, and keys that cannot be used
refuse to start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio
from aiohttp import web

from orchestrator.api.app import create_app
from orchestrator.api.auth import KeysMisconfigured
from orchestrator.common.net import serving
from orchestrator.jobs.records import QUEUED, owner_queued_key
from orchestrator.jobs.webhooks import DELIVERY_HEADER
from orchestrator.schemas import TranscribeOutput, TranscribeRequest
from orchestrator.settings import Settings

from ..media_servers import LOOPBACK
from ..polling import wait_until
from .test_request_validation import FAKE_OUTPUT, SEED_BODY

KEY_A, KEY_B, ADMIN = "tenant-a-5c1f", "tenant-b-9e07", "admin-3d2b"
UNKNOWN = "no-such-job-000"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keyed(redis_url: str, **more: Any) -> Settings:
    """Auth on: two tenants and an admin; no worker unless asked, so jobs stay queued."""
    return Settings(
        **{"redis_url": redis_url, "api_keys": [KEY_A, KEY_B], "admin_api_keys": [ADMIN], "job_workers": 0, **more}
    )


async def instant(request: TranscribeRequest, *_: object) -> TranscribeOutput:
    return FAKE_OUTPUT


@asynccontextmanager
async def service(settings: Settings) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with serving(create_app(settings, transcriber=instant)) as base, aiohttp.ClientSession() as session:
        yield session, base


async def call(session: aiohttp.ClientSession, method: str, url: str, key: str) -> tuple[int, Any]:
    async with session.request(method, url, headers=auth(key)) as response:
        return response.status, await response.json()


async def submit(session: aiohttp.ClientSession, base: str, key: str, **extra: Any) -> tuple[int, Any]:
    async with session.post(f"{base}/v1/jobs", json={**SEED_BODY, **extra}, headers=auth(key)) as response:
        return response.status, await response.json()


ROUTES = [("GET", ""), ("DELETE", ""), ("GET", "/events"), ("GET", "/transcript"), ("POST", "/webhook")]


async def test_another_key_gets_404_on_every_route_of_a_job_exactly_as_for_an_unknown_id(redis_url: str) -> None:
    async with service(keyed(redis_url, allowed_webhook_hosts=LOOPBACK)) as (session, base):
        # a receiver on loopback, allowed for webhooks only: nothing listens there, and no worker runs the job
        status, job = await submit(session, base, KEY_A, webhook_url="http://127.0.0.1:9/hook")
        assert status == 202
        job_id = job["id"]
        for method, tail in ROUTES:
            unknown = await call(session, method, f"{base}/v1/jobs/{UNKNOWN}{tail}", KEY_B)
            theirs = await call(session, method, f"{base}/v1/jobs/{job_id}{tail}", KEY_B)
            assert unknown[0] == theirs[0] == 404, (method, tail)
            assert json.dumps(theirs[1]) == json.dumps(unknown[1]).replace(UNKNOWN, job_id), "the same body"
            assert UNKNOWN in unknown[1]["error"]["message"]
        status, seen = await call(session, "GET", f"{base}/v1/jobs/{job_id}", KEY_A)
        assert status == 200 and seen["status"] == "queued", "B's DELETE left A's job alone"
        status, body = await call(session, "POST", f"{base}/v1/jobs/{job_id}/webhook", KEY_A)
        assert status == 409 and "finished" in body["error"]["message"]


async def test_an_admin_key_sees_and_cancels_any_job(redis_url: str) -> None:
    async with service(keyed(redis_url)) as (session, base):
        job_id = (await submit(session, base, KEY_A))[1]["id"]
        assert (await call(session, "GET", f"{base}/v1/jobs/{job_id}", ADMIN))[0] == 200
        status, cancelled = await call(session, "DELETE", f"{base}/v1/jobs/{job_id}", ADMIN)
        assert status == 200 and cancelled["status"] == "cancelled"
        assert (await call(session, "GET", f"{base}/v1/jobs/{job_id}", KEY_A))[1]["status"] == "cancelled"


async def test_a_job_without_a_key_is_refused_and_the_job_records_no_key(redis_url: str) -> None:
    async with service(keyed(redis_url)) as (session, base):
        async with session.post(f"{base}/v1/jobs", json=SEED_BODY) as response:
            assert response.status == 401
        job_id = (await submit(session, base, KEY_A))[1]["id"]
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        spec = await client.hget(f"longscribe:job:{job_id}", "spec")
    finally:
        await client.aclose()
    assert KEY_A not in str(spec) and '"owner":"' in str(spec)


async def test_the_queue_limit_per_key_holds_under_concurrent_submits_on_two_orchestrators(redis_url: str) -> None:
    settings = keyed(redis_url, max_queued_jobs_per_key=3)
    async with service(settings) as (session, one), service(settings) as (_, two):
        answers = await asyncio.gather(*(submit(session, (one, two)[n % 2], KEY_A) for n in range(20)))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [202] * 3 + [429] * 17
        refused = next(body for status, body in answers if status == 429)
        assert "max_queued_jobs_per_key" in refused["error"]["message"]
        assert (await submit(session, two, KEY_B))[0] == 202, "another key has its own queue"


async def test_the_fleet_queue_limit_holds_under_concurrent_submits(redis_url: str) -> None:
    settings = keyed(redis_url, max_queued_jobs=5, max_queued_jobs_per_key=0)
    async with service(settings) as (session, one), service(settings) as (_, two):
        answers = await asyncio.gather(
            *(submit(session, (one, two)[n % 2], (KEY_A, KEY_B, ADMIN)[n % 3]) for n in range(30))
        )
        assert sorted(status for status, _ in answers) == [202] * 5 + [429] * 25
        refused = next(body for status, body in answers if status == 429)
        assert "max_queued_jobs)" in refused["error"]["message"]


async def test_a_job_that_left_the_queue_without_its_owner_set_being_told_does_not_count(redis_url: str) -> None:
    """The owner's count heals itself: ids no longer in the fleet's queue are dropped when counted."""
    async with service(keyed(redis_url, max_queued_jobs_per_key=2)) as (session, base):
        ids = [(await submit(session, base, KEY_A))[1]["id"] for _ in range(2)]
        assert (await submit(session, base, KEY_A))[0] == 429
        client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
        try:
            await client.srem(QUEUED, ids[0])  # started elsewhere, by code that forgot the owner's set
            assert (await submit(session, base, KEY_A))[0] == 202
            owners = await client.keys(owner_queued_key("*"))
            assert len(owners) == 1 and ids[0] not in await client.smembers(owners[0])
        finally:
            await client.aclose()


async def open_stream(session: aiohttp.ClientSession, url: str, key: str) -> aiohttp.ClientResponse:
    response = await session.get(url, headers=auth(key))
    if response.status == 200:
        await response.content.readline()  # the first event has come: the stream is open
    return response


async def test_event_streams_per_key_are_capped_and_freed_when_a_stream_closes(redis_url: str) -> None:
    async with service(keyed(redis_url, max_event_streams_per_key=2)) as (session, base):
        job_id = (await submit(session, base, KEY_A))[1]["id"]
        url = f"{base}/v1/jobs/{job_id}/events"
        async with AsyncExitStack() as streams:
            first = await streams.enter_async_context(await open_stream(session, url, KEY_A))
            await streams.enter_async_context(await open_stream(session, url, KEY_A))
            async with await open_stream(session, url, KEY_A) as third:
                body = await third.json()
                assert third.status == 429 and third.headers["Retry-After"]
                assert "max_event_streams_per_key" in body["error"]["message"]
            async with await open_stream(session, url, ADMIN) as admins:
                assert admins.status == 200, "another key has its own streams"
            first.close()  # the client goes away mid-stream
            for _ in range(100):
                again = await open_stream(session, url, KEY_A)
                if again.status == 200:
                    again.close()
                    break
                again.release()
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("a closed stream still counted against its key")


async def test_a_finished_jobs_webhook_is_resent_to_its_owner_and_admins_only(redis_url: str) -> None:
    deliveries: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        deliveries.append(request.headers[DELIVERY_HEADER])
        return web.Response()

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    settings = keyed(redis_url, job_workers=1, allowed_webhook_hosts=LOOPBACK)
    async with serving(receiver) as hooks, service(settings) as (session, base):

        async def delivered(job_id: str, count: int) -> None:
            for _ in range(200):
                state = (await call(session, "GET", f"{base}/v1/jobs/{job_id}", KEY_A))[1].get("webhook") or {}
                if len(deliveries) >= count and state.get("state") == "delivered":
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"no delivery {count}: {deliveries}, {state}")

        job_id = (await submit(session, base, KEY_A, webhook_url=f"{hooks}/hook"))[1]["id"]
        await delivered(job_id, 1)
        url = f"{base}/v1/jobs/{job_id}/webhook"
        assert (await call(session, "POST", url, KEY_B))[0] == 404
        status, body = await call(session, "POST", url, KEY_A)
        assert status == 202 and body["webhook"]["state"] == "pending" and body["webhook"]["redeliveries"] == 1
        await delivered(job_id, 2)
        assert (await call(session, "POST", url, ADMIN))[0] == 202
        await delivered(job_id, 3)
        assert len(deliveries) == 3 and len(set(deliveries)) == 1, "the same delivery id: receivers drop repeats"
        plain = (await submit(session, base, KEY_A))[1]["id"]
        for _ in range(200):
            if (await call(session, "GET", f"{base}/v1/jobs/{plain}", KEY_A))[1]["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        status, body = await call(session, "POST", f"{base}/v1/jobs/{plain}/webhook", KEY_A)
        assert status == 409 and body["error"]["code"] == "job_conflict" and "webhook_url" in body["error"]["message"]


@pytest.mark.parametrize("text", ["", "# keys go here\n\n   \n# one per line\n"])
def test_a_keys_file_without_keys_refuses_to_start_naming_the_file(tmp_path: Path, text: str) -> None:
    keys = tmp_path / "keys"
    keys.write_text(text)
    with pytest.raises(KeysMisconfigured, match=str(keys)):
        create_app(Settings(api_keys_file=keys))
    with pytest.raises(KeysMisconfigured, match=str(keys)):
        create_app(Settings(admin_api_keys_file=keys))


def test_a_missing_keys_file_refuses_to_start_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(KeysMisconfigured, match=str(tmp_path / "absent")):
        create_app(Settings(api_keys_file=tmp_path / "absent"))


def test_no_auth_with_keys_configured_is_refused() -> None:
    with pytest.raises(KeysMisconfigured, match="choose one"):
        create_app(Settings(no_auth=True, api_keys=[KEY_A]))


@pytest.mark.parametrize("stated", [{"no_auth": True}, {"env": ""}, {"env": "[]"}])
async def test_auth_off_by_a_stated_choice_lets_anyone_call(
    stated: dict[str, Any], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if "env" in stated:
        monkeypatch.setenv("LONGSCRIBE_API_KEYS", stated["env"])
    settings = Settings(no_auth=stated.get("no_auth", False))
    with caplog.at_level(logging.WARNING):
        app = create_app(settings, transcriber=instant)
    assert "auth is off, as configured" in caplog.text
    async with serving(app) as base, aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1/transcribe", json=SEED_BODY) as response:
            assert response.status == 200


def test_with_nothing_configured_auth_is_off_and_the_start_says_so_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        create_app(Settings(), transcriber=instant)
    assert "AUTH IS OFF" in caplog.text and "127.0.0.1:8080" in caplog.text


async def test_an_uploaded_job_is_its_keys_and_a_full_key_is_refused_before_its_upload_is_kept(
    redis_url: str, tmp_path: Path
) -> None:
    async def upload(session: aiohttp.ClientSession, base: str, key: str) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("file", b"\0" * 4096, filename="a.wav", content_type="audio/wav")
        async with session.post(f"{base}/v1/jobs", data=form, headers=auth(key)) as response:
            return response.status, await response.json()

    async with service(keyed(redis_url, max_queued_jobs_per_key=1, upload_dir=tmp_path)) as (session, base):
        status, job = await upload(session, base, KEY_A)
        assert status == 202
        assert (await call(session, "GET", f"{base}/v1/jobs/{job['id']}", KEY_B))[0] == 404
        status, refused = await upload(session, base, KEY_A)
        assert status == 429 and "max_queued_jobs_per_key" in refused["error"]["message"]
        assert len(list(tmp_path.iterdir())) == 1, "only the accepted job's upload is kept"
        assert (await upload(session, base, KEY_B))[0] == 202


@pytest.mark.parametrize(
    ("setting", "env"),
    [("LONGSCRIBE_API_KEYS", '[""]'), ("LONGSCRIBE_API_KEYS", '["", "  "]'), ("LONGSCRIBE_ADMIN_API_KEYS", '[""]')],
)
def test_a_key_list_of_blanks_refuses_to_start_rather_than_turning_auth_off(
    setting: str, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(setting, env)  # a template whose secret was never filled in
    with pytest.raises(KeysMisconfigured, match=setting):
        create_app(Settings(), transcriber=instant)


async def test_a_job_id_with_a_key_suffix_is_the_unknown_id_404_on_every_route(redis_url: str) -> None:
    async with service(keyed(redis_url, job_workers=1, allowed_webhook_hosts=LOOPBACK)) as (session, base):
        # A's job runs to its end, so its :result key exists too; B must not learn that from a 503
        job_id = (await submit(session, base, KEY_A))[1]["id"]
        for _ in range(200):
            if (await call(session, "GET", f"{base}/v1/jobs/{job_id}", KEY_A))[1]["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        for suffix in (":events", ":result", ":chunks", ":spec"):
            probe = job_id + suffix
            for method, tail in ROUTES:
                for key in (KEY_B, KEY_A):
                    unknown = await call(session, method, f"{base}/v1/jobs/{UNKNOWN}{tail}", key)
                    theirs = await call(session, method, f"{base}/v1/jobs/{probe}{tail}", key)
                    assert unknown[0] == theirs[0] == 404, (suffix, method, tail, theirs)
                    assert json.dumps(theirs[1]) == json.dumps(unknown[1]).replace(UNKNOWN, probe), "the same body"


class Stubborn:
    """A transcriber that winds down only when released, however often it is cancelled (as a slow FFmpeg)."""

    def __init__(self) -> None:
        self.started, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(self, request: TranscribeRequest, *_: object) -> TranscribeOutput:
        self.started.set()
        while not self.release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await self.release.wait()
        return FAKE_OUTPUT


async def test_deletes_waiting_for_a_running_job_leave_the_redis_pool_to_everyone_else(redis_url: str) -> None:
    stubborn = Stubborn()
    settings = keyed(redis_url, job_workers=1, redis_max_connections=4)
    app, in_handlers = create_app(settings, transcriber=stubborn), Counter[str]()

    @web.middleware
    async def counted(request: web.Request, handler: Any) -> web.StreamResponse:
        """Requests inside their handler now, by method: the DELETEs that wait for the job to wind down."""
        in_handlers[request.method] += 1
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            in_handlers[request.method] -= 1

    app.middlewares.append(counted)  # innermost: past auth, in the handler
    async with serving(app) as base, aiohttp.ClientSession() as session:
        running = (await submit(session, base, KEY_A))[1]["id"]
        other = (await submit(session, base, KEY_B))[1]["id"]  # queued behind it: one worker
        deletes: list[asyncio.Task[tuple[int, Any]]] = []
        try:
            await asyncio.wait_for(stubborn.started.wait(), 10)
            url = f"{base}/v1/jobs/{running}"
            deletes = [asyncio.create_task(call(session, "DELETE", url, KEY_A)) for _ in range(20)]
            await wait_until(lambda: in_handlers["DELETE"] == 20, 10, "every DELETE to wait for the job to wind down")
            slowest = 0.0
            for _ in range(5):
                began = time.monotonic()
                assert (await call(session, "GET", f"{base}/v1/jobs/{other}", KEY_B))[0] == 200
                slowest = max(slowest, time.monotonic() - began)
                await asyncio.sleep(0.2)
            assert not any(d.done() for d in deletes), "every DELETE still waits (none refused: no connection)"
            assert slowest < 0.5, f"a GET waited {slowest:.2f} s for a pooled connection"
        finally:
            stubborn.release.set()
            answers = await asyncio.gather(*deletes)
        assert [status for status, _ in answers] == [200] * 20
        # each waited for the end (the stand-in swallowed the cancel and returned: it may end succeeded)
        assert {body["status"] for _, body in answers} <= {"cancelled", "succeeded"}
