"""The Python client's edges, against small aiohttp apps: what it sends for each kind of media, and how
every refusal and failure becomes a named, one-line error."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web

import longscribe
from longscribe import _http
from orchestrator.common.net import free_port, serving


class Recorder:
    """A /v1/jobs that keeps what each POST carried and answers 202 with a job id."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []

    async def start(self, request: web.Request) -> web.Response:
        if request.content_type == "multipart/form-data":
            form = await request.post()
            upload = form["file"]
            assert isinstance(upload, web.FileField)
            seen = {"params": json.loads(str(form["params"])), "file": upload.file.read(), "name": upload.filename}
        else:
            seen = {"json": await request.json()}
        self.posts.append({**seen, "auth": request.headers.get("Authorization")})
        return web.json_response({"id": f"job{len(self.posts)}", "status": "queued"}, status=202)


@pytest_asyncio.fixture
async def recorder() -> AsyncIterator[tuple[str, Recorder]]:
    found = Recorder()
    app = web.Application()
    app.router.add_post("/v1/jobs", found.start)
    async with serving(app) as base:
        yield base, found


async def test_a_path_a_file_object_and_bytes_are_uploaded_and_a_url_is_passed_through(
    recorder: tuple[str, Recorder], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, seen = recorder
    media = tmp_path / "talk.mp3"
    media.write_bytes(b"ID3 not really audio")
    monkeypatch.setenv("LONGSCRIBE_API_KEY", "from-the-env")
    async with longscribe.AsyncClient(base) as client:
        jobs = [
            await client.submit(media, language="de", task="translate", prompt=None),
            await client.submit(io.BytesIO(b"raw bytes")),
            await client.submit(b"more bytes", temperature=0.4),
            await client.submit("https://example.com/a.mp3", webhook_url="https://example.com/hook"),
        ]
    assert [job.id for job in jobs] == ["job1", "job2", "job3", "job4"]
    upload, stream, raw, url = seen.posts
    assert upload["params"] == {"language": "de", "task": "translate"}  # None left out: the service's default
    assert (upload["file"], upload["name"]) == (b"ID3 not really audio", "talk.mp3")
    assert (stream["file"], raw["file"], raw["params"]) == (b"raw bytes", b"more bytes", {"temperature": 0.4})
    assert url["json"] == {
        "media_url": "https://example.com/a.mp3",
        "params": {},
        "webhook_url": "https://example.com/hook",
    }
    assert {p["auth"] for p in seen.posts} == {"Bearer from-the-env"}


async def test_a_missing_path_is_refused_before_anything_is_sent(recorder: tuple[str, Recorder]) -> None:
    base, seen = recorder
    async with longscribe.AsyncClient(base, "k") as client:
        with pytest.raises(FileNotFoundError, match="no such file"):
            await client.submit("/no/such/talk.mp3")
    assert seen.posts == []


def test_the_services_errors_become_named_exceptions_of_one_line() -> None:
    body = json.dumps({"error": {"code": "unauthorized", "message": "no valid API key", "hint": "Send one."}})
    refused = _http.api_error(401, body.encode())
    assert isinstance(refused, longscribe.AuthenticationError)
    assert (refused.status, refused.code, refused.hint) == (401, "unauthorized", "Send one.")
    assert str(refused) == "no valid API key [unauthorized, HTTP 401]. Send one."
    assert isinstance(
        _http.api_error(404, b'{"error": {"code": "job_not_found", "message": "no"}}'), longscribe.NotFound
    )
    full = _http.api_error(429, b"{}", httpx.Headers({"Retry-After": "7"}))
    assert isinstance(full, longscribe.Overloaded) and full.retry_after_s == 7.0
    openai = _http.api_error(400, b'{"error": {"message": "bad format", "type": "invalid_request_error"}}')
    assert openai.code == "invalid_request_error" and openai.message == "bad format"
    proxy = _http.api_error(502, b"<html>\nBad Gateway\n</html>")
    assert proxy.status == 502 and "\n" not in str(proxy)


async def test_a_closed_port_and_a_dropped_event_stream_are_service_unreachable() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with longscribe.AsyncClient(closed) as client:
        with pytest.raises(longscribe.ServiceUnreachable, match=f"cannot reach the service at {closed}"):
            await client.transcribe("https://example.com/a.mp3")
        with pytest.raises(longscribe.ServiceUnreachable):
            await client.job("j1").cancel()


async def test_a_failed_job_raises_job_failed_with_the_services_reason() -> None:
    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        error = {"code": "media_http_error", "message": "the media server answered 404", "hint": "Check the URL."}
        await response.write(
            f"id: 1\nevent: end\ndata: {json.dumps({'status': 'failed', 'error': error})}\n\n".encode()
        )
        return response

    app = web.Application()
    app.router.add_get("/v1/jobs/{job_id}/events", events)
    async with serving(app) as base, longscribe.AsyncClient(base) as client:
        with pytest.raises(longscribe.JobFailed) as failed:
            await client.job("j9").wait()
    assert (failed.value.job_id, failed.value.status, failed.value.code) == ("j9", "failed", "media_http_error")
    assert str(failed.value) == "the job j9 failed: the media server answered 404 [media_http_error]. Check the URL."


async def test_the_blocking_client_says_to_use_the_async_one_inside_async_code() -> None:
    client = longscribe.Client("http://127.0.0.1:9")
    try:
        with pytest.raises(RuntimeError, match="AsyncClient"):
            client.transcribe("https://example.com/a.mp3")
    finally:
        client._loop.close()


def test_a_base_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        longscribe.Client("localhost:8080")


def test_a_transcript_is_read_from_the_services_json_ignoring_what_it_does_not_know() -> None:
    native = {
        "segments": [
            {"start_time_sec": 0.0, "end_time_sec": 1.5, "text": " Hi.", "language_code": "en", "new_field": 1,
             "words": [{"word": " Hi.", "start_time_sec": 0.1, "end_time_sec": 0.5, "probability": 0.9}]},
        ],
        "input_duration_sec": 2.0, "processing_duration_sec": 0.5, "speedup": 4.0, "text": "Hi.",
    }  # fmt: skip
    transcript = longscribe.Transcript.from_json(native)
    assert transcript.segments[0].start == 0.0 and transcript.segments[0].words[0].end == 0.5
    assert (transcript.text, transcript.speedup, transcript.language) == ("Hi.", 4.0, None)
