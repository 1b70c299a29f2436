"""Bounded input, nothing left behind: one `file` part, capped forms and JSON, every upload deleted.

A real server (create_app + serving) with a stand-in transcriber, a real
redis-server for jobs, API keys on, uploads under a temporary directory that
must be empty once a request is answered.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.api import bodies
from orchestrator.api.app import create_app
from orchestrator.api.job_wiring import connect
from orchestrator.common.net import serving
from orchestrator.errors import MalformedBody, MediaUnreadable
from orchestrator.jobs import uploads as left_behind
from orchestrator.jobs.store import JobStore
from orchestrator.schemas import MediaRequest, TranscribeOutput
from orchestrator.settings import Settings

from .test_request_validation import FAKE_OUTPUT, SEED_BODY

KEY = "k-5b1e"
AUTH = {"Authorization": f"Bearer {KEY}"}
AUDIO = b"RIFF" + b"\0" * 4096  # never decoded: the transcriber is a stand-in
UPLOAD_ROUTES = ["/v1/audio/transcriptions", "/v1/jobs"]


async def instant(request: MediaRequest, *_: object) -> TranscribeOutput:
    return FAKE_OUTPUT


async def broken(request: MediaRequest, *_: object) -> TranscribeOutput:
    raise MediaUnreadable("FFmpeg cannot read the media: stand-in")


@asynccontextmanager
async def service(settings: Settings, transcriber: Any = instant) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with serving(create_app(settings, transcriber=transcriber)) as base, aiohttp.ClientSession() as session:
        yield session, base


def uploads(upload_dir: Path, redis_url: str, route: str = "/v1/jobs", **more: Any) -> Settings:
    """Auth on, uploads under `upload_dir`; for /v1/jobs, jobs on (no worker unless asked)."""
    jobs = {"redis_url": redis_url, "job_workers": 0} if route == "/v1/jobs" else {}
    return Settings(api_keys=[KEY], upload_dir=upload_dir, **{**jobs, **more})


def form(*parts: tuple[str, bytes | str, str | None]) -> aiohttp.FormData:
    """A multipart body with the parts in order, repeated names kept: (name, value, filename)."""
    data = aiohttp.FormData()
    for name, value, filename in parts:
        if filename is None:
            data.add_field(name, value)
        else:
            data.add_field(name, value, filename=filename, content_type="audio/wav")
    return data


async def call(
    session: aiohttp.ClientSession, url: str, data: Any = None, json_body: Any = None, headers: Any = None
) -> tuple[int, Any]:
    async with session.post(url, data=data, json=json_body, headers=AUTH if headers is None else headers) as response:
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


def assert_error(status: int, body: Any, wanted: int, code: str | None = None) -> None:
    assert status == wanted, body
    assert isinstance(body, dict) and body["error"]["message"] and body["error"]["hint"], body
    if code is not None:
        assert body["error"]["code"] == code, body


async def empty_soon(directory: Path, within_s: float = 10.0) -> list[Path]:
    """What is left in `directory` once it empties, or after `within_s`."""
    deadline = time.monotonic() + within_s
    while (left := list(directory.iterdir())) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
async def test_a_repeated_file_part_is_a_400_and_no_upload_stays_behind(
    route: str, tmp_path: Path, redis_url: str
) -> None:
    async with service(uploads(tmp_path, redis_url, route)) as (session, base):
        body = form(*[("file", AUDIO, f"part{n}.wav") for n in range(3)])
        status, answer = await call(session, f"{base}{route}", data=body)
    assert_error(status, answer, 400, "malformed_body")
    assert "file" in answer["error"]["message"]
    assert not list(tmp_path.iterdir()), "every saved part is deleted"


async def test_a_repeated_field_the_service_reads_is_a_400(tmp_path: Path) -> None:
    async with service(Settings(api_keys=[KEY], upload_dir=tmp_path)) as (session, base):
        body = form(("file", AUDIO, "a.wav"), ("prompt", "one", None), ("prompt", "two", None))
        status, answer = await call(session, f"{base}/v1/audio/transcriptions", data=body)
        assert_error(status, answer, 400, "malformed_body")
        assert "prompt" in answer["error"]["message"]
        granularities = form(
            ("file", AUDIO, "a.wav"),
            ("response_format", "verbose_json", None),
            ("timestamp_granularities[]", "segment", None),
            ("timestamp_granularities[]", "word", None),
        )
        assert (await call(session, f"{base}/v1/audio/transcriptions", data=granularities))[0] == 200
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
async def test_3000_form_parts_are_refused_at_once_and_leave_nothing(
    route: str, tmp_path: Path, redis_url: str
) -> None:
    async with service(uploads(tmp_path, redis_url, route)) as (session, base):
        body = form(("file", AUDIO, "a.wav"), *[(f"extra{n}", "x" * 64, None) for n in range(3000)])
        started = time.monotonic()
        status, answer = await call(session, f"{base}{route}", data=body)
        took_s = time.monotonic() - started
    assert_error(status, answer, 413, "body_too_large")
    assert "64 parts" in answer["error"]["message"]
    assert took_s < 10.0
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("route", UPLOAD_ROUTES)
async def test_a_form_field_over_64_kib_is_refused_and_leaves_nothing(
    route: str, tmp_path: Path, redis_url: str
) -> None:
    async with service(uploads(tmp_path, redis_url, route)) as (session, base):
        name = "prompt" if route.endswith("transcriptions") else "params"
        body = form(("file", AUDIO, "a.wav"), (name, "x" * (65 * 1024), None))
        status, answer = await call(session, f"{base}{route}", data=body)
    assert_error(status, answer, 413, "body_too_large")
    assert name in answer["error"]["message"]
    assert not list(tmp_path.iterdir())


async def test_a_urlencoded_form_with_3000_fields_is_refused(tmp_path: Path) -> None:
    async with service(Settings(api_keys=[KEY], upload_dir=tmp_path)) as (session, base):
        fields = {"url": "https://example.com/a.mp3", **{f"extra{n}": "x" for n in range(3000)}}
        status, answer = await call(session, f"{base}/v1/audio/transcriptions", data=fields)
    assert_error(status, answer, 413, "body_too_large")


NESTED = "[" * 100_000


@pytest.mark.parametrize("route", ["/v1/transcribe", "/v1/jobs"])
async def test_json_nested_100000_deep_is_a_400_not_a_500(route: str, tmp_path: Path, redis_url: str) -> None:
    async with service(uploads(tmp_path, redis_url, route)) as (session, base):
        headers = {**AUTH, "Content-Type": "application/json"}
        status, answer = await call(session, f"{base}{route}", data=NESTED, headers=headers)
        assert_error(status, answer, 400, "malformed_body")
        assert "deep" in answer["error"]["message"]
        brackets_in_a_string = json.dumps({**SEED_BODY, "params": {**SEED_BODY["params"], "prompt": NESTED[:1000]}})
        assert (await call(session, f"{base}{route}", data=brackets_in_a_string, headers=headers))[0] in (200, 202)


async def test_multipart_params_nested_too_deep_are_a_400_and_leave_nothing(tmp_path: Path, redis_url: str) -> None:
    async with service(uploads(tmp_path, redis_url)) as (session, base):
        deep = '{"prompt": ' + "[" * 5000 + "]" * 5000 + "}"
        status, answer = await call(
            session, f"{base}/v1/jobs", data=form(("file", AUDIO, "a.wav"), ("params", deep, None))
        )
    assert_error(status, answer, 400, "malformed_body")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("route", ["/v1/transcribe", "/v1/jobs"])
async def test_a_json_body_over_1_mib_is_a_413_in_json(route: str, tmp_path: Path, redis_url: str) -> None:
    async with service(uploads(tmp_path, redis_url, route)) as (session, base):
        big = {**SEED_BODY, "params": {**SEED_BODY["params"], "prompt": "x" * (2 << 20)}}
        status, answer = await call(session, f"{base}{route}", json_body=big)
    assert_error(status, answer, 413, "body_too_large")
    assert "1 MiB" in answer["error"]["message"] or str(1 << 20) in answer["error"]["message"]


RefusedCase = Callable[[aiohttp.ClientSession, str], Any]


@pytest.mark.parametrize(
    ("route", "parts", "extra", "headers", "wanted"),
    [
        ("/v1/audio/transcriptions", [("temperature", "hot", None)], {}, AUTH, 400),  # OpenAI's status
        ("/v1/audio/transcriptions", [("model", "no-such-model", None)], {}, AUTH, 404),
        ("/v1/audio/transcriptions", [("response_format", "mp3", None)], {}, AUTH, 400),
        ("/v1/audio/transcriptions", [], {}, {"Authorization": "Bearer wrong"}, 401),
        ("/v1/audio/transcriptions", [], {"max_upload_bytes": 100}, AUTH, 413),
        ("/v1/jobs", [("params", "{not json", None)], {}, AUTH, 422),
        ("/v1/jobs", [("params", '{"colour": "red"}', None)], {}, AUTH, 422),
        ("/v1/jobs", [("params", '{"model": "no-such-model"}', None)], {}, AUTH, 404),
        ("/v1/jobs", [], {"max_queued_jobs": 0}, AUTH, 429),
        ("/v1/jobs", [], {}, {"Authorization": "Bearer wrong"}, 401),
        ("/v1/jobs", [], {"max_upload_bytes": 100}, AUTH, 413),
    ],
)
async def test_a_refused_upload_leaves_nothing(
    route: str,
    parts: list[tuple[str, str, None]],
    extra: dict[str, Any],
    headers: dict[str, str],
    wanted: int,
    tmp_path: Path,
    redis_url: str,
) -> None:
    async with service(uploads(tmp_path, redis_url, route, **extra)) as (session, base):
        status, answer = await call(
            session, f"{base}{route}", data=form(("file", AUDIO, "a.wav"), *parts), headers=headers
        )
    assert_error(status, answer, wanted)
    assert not list(tmp_path.iterdir())


async def test_an_upload_that_fails_to_transcribe_leaves_nothing(tmp_path: Path) -> None:
    async with service(Settings(api_keys=[KEY], upload_dir=tmp_path), broken) as (session, base):
        status, answer = await call(session, f"{base}/v1/audio/transcriptions", data=form(("file", AUDIO, "a.wav")))
    assert_error(status, answer, 400, "media_unreadable")  # OpenAI's status for bad input
    assert not list(tmp_path.iterdir())


async def test_a_client_that_hangs_up_mid_upload_leaves_nothing(tmp_path: Path, redis_url: str) -> None:
    async with service(uploads(tmp_path, redis_url)) as (_, base):
        host, port = base.removeprefix("http://").split(":")
        for route in UPLOAD_ROUTES:
            reader, writer = await asyncio.open_connection(host, int(port))
            head = (
                f"POST {route} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {KEY}\r\n"
                "Content-Type: multipart/form-data; boundary=b0undary\r\nContent-Length: 100000000\r\n\r\n"
                '--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
            )
            writer.write(head.encode() + b"\0" * (256 * 1024))
            await writer.drain()
            deadline = time.monotonic() + 10
            while not list(tmp_path.iterdir()) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            assert list(tmp_path.iterdir()), "the upload was being saved"
            writer.close()
            await writer.wait_closed()
            assert await empty_soon(tmp_path) == []


async def job_files(session: aiohttp.ClientSession, base: str, tmp_path: Path) -> tuple[str, list[Path]]:
    status, answer = await call(session, f"{base}/v1/jobs", data=form(("file", AUDIO, "a.wav")))
    assert status == 202, answer
    return answer["id"], list(tmp_path.iterdir())


async def test_a_queued_upload_job_keeps_its_file_until_cancelled(tmp_path: Path, redis_url: str) -> None:
    async with service(uploads(tmp_path, redis_url)) as (session, base):
        job_id, saved = await job_files(session, base, tmp_path)
        assert len(saved) == 1, "the file waits while the job is queued"
        async with session.delete(f"{base}/v1/jobs/{job_id}", headers=AUTH) as response:
            assert response.status == 200 and (await response.json())["status"] == "cancelled"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("transcriber", "status"), [(instant, "succeeded"), (broken, "failed")])
async def test_an_upload_job_deletes_its_file_when_it_ends(
    transcriber: Any, status: str, tmp_path: Path, redis_url: str
) -> None:
    async with service(uploads(tmp_path, redis_url, job_workers=1), transcriber) as (session, base):
        job_id, _ = await job_files(session, base, tmp_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with session.get(f"{base}/v1/jobs/{job_id}", headers=AUTH) as response:
                job = await response.json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            await asyncio.sleep(0.05)
        assert job["status"] == status, job
        assert await empty_soon(tmp_path) == []


async def test_cancelling_a_finished_job_answers_as_get_and_keeps_its_transcript(
    tmp_path: Path, redis_url: str
) -> None:
    """DELETE after the end changes nothing and answers what GET answers, byte for byte: the stored
    transcript passed through in pieces, not parsed whole (hours of it are megabytes)."""
    async with service(uploads(tmp_path, redis_url, job_workers=1), instant) as (session, base):
        job_id, _ = await job_files(session, base, tmp_path)
        job = f"{base}/v1/jobs/{job_id}"
        deadline = time.monotonic() + 30
        while (got := await (await session.get(job, headers=AUTH)).read()) and json.loads(got)["status"] != "succeeded":
            assert time.monotonic() < deadline, got
            await asyncio.sleep(0.05)
        async with session.delete(job, headers=AUTH) as response:
            assert response.status == 200
            assert await response.read() == got
        assert "result" in json.loads(got)


async def test_upload_files_left_behind_are_swept_and_those_a_job_still_needs_are_kept(
    tmp_path: Path, redis_url: str
) -> None:
    """A process killed mid-request, or a queued job whose record Redis lost: only the sweep deletes its file."""
    settings = uploads(tmp_path, redis_url)
    async with service(settings) as (session, base):
        _, [queued] = await job_files(session, base, tmp_path)
    orphan = tmp_path / f"{left_behind.PREFIX}killed-mid-request.wav"
    arriving = tmp_path / f"{left_behind.PREFIX}still-arriving.wav"
    theirs = tmp_path / "not-an-upload.wav"
    for path in (orphan, arriving, theirs):
        path.write_bytes(AUDIO)
    hours_ago = time.time() - 3 * 3600
    for path in (orphan, queued, theirs):
        os.utime(path, (hours_ago, hours_ago))
    store = JobStore(connect(settings), settings.job_ttl_sec, settings.max_queued_jobs, settings.retry_after_sec)
    try:
        deleted = await left_behind.sweep(store, tmp_path, older_than_s=3600)
    finally:
        await store.client.aclose()
    assert deleted == [orphan]
    assert queued.exists(), "a queued job's file, however old, waits for its job"
    assert arriving.exists() and theirs.exists()


UNTERMINATED = [
    '"' + '\\"' * (32 << 10),
    '"' + '\\"' * (512 << 10),
    '"' + '\\"' * (32 << 10) + "\\",
    '"a' * (512 << 10),
]


@pytest.mark.parametrize("text", UNTERMINATED, ids=["64KiB", "1MiB", "64KiB-trailing-backslash", "1MiB-quotes"])
def test_the_depth_scan_of_an_unterminated_string_takes_linear_time(text: str) -> None:
    began = time.monotonic()
    bodies.check_depth(text, "the body")  # one unterminated string: no bracket outside it, nothing to refuse
    assert time.monotonic() - began < 2.0  # it was 3.5 s at 32 KB and 15.9 s at 64 KB, on the event loop


def test_the_depth_scan_still_counts_brackets_outside_strings_only() -> None:
    with pytest.raises(MalformedBody, match="deep"):
        bodies.check_depth(NESTED, "the body")
    with pytest.raises(MalformedBody, match="deep"):
        bodies.check_depth('["a\\"b", ' + "[" * 40, "the body")
    bodies.check_depth(json.dumps({"prompt": NESTED + '"\\'}), "the body")
    bodies.check_depth('"' + "[" * 1000, "the body")  # inside an unterminated string: the parser refuses it


async def test_an_adversarial_multipart_params_field_is_answered_at_once(tmp_path: Path, redis_url: str) -> None:
    async with service(uploads(tmp_path, redis_url)) as (session, base):
        began = time.monotonic()
        params = '"' + '\\"' * ((32 << 10) - 1)
        status, answer = await call(
            session, f"{base}/v1/jobs", data=form(("file", AUDIO, "a.wav"), ("params", params, None))
        )
        assert time.monotonic() - began < 5.0
    assert status in (400, 413, 422), answer
    assert not list(tmp_path.iterdir())
