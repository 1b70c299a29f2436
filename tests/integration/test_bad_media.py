"""Bad media and hostile URLs: each gets its own 4xx JSON error, fast, from the real pipeline.

The service here has no Triton behind it (a dead port): every one of these
must be refused before inference. The media servers are real aiohttp servers
on loopback, misbehaving on purpose.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from orchestrator.api.app import create_app
from orchestrator.common.fileserver import file_app
from orchestrator.common.net import free_port, serving
from orchestrator.settings import Settings

from ..media_servers import LOOPBACK, Drops, misbehaving_app

pytestmark = pytest.mark.asyncio(loop_scope="module")
FAST_S = 20.0  # every refusal comes well within this, never a hang


@pytest.fixture(scope="module")
def bad_files(media_root: Path) -> Path:
    """Files no one can transcribe, beside the good speech."""
    root = media_root / "bad"
    root.mkdir(exist_ok=True)
    (root / "empty.mp3").write_bytes(b"")
    (root / "noise.mp3").write_bytes(bytes(range(256)) * 400)  # not any container
    (root / "silent-film.mp4").write_bytes(b"")
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=duration=2:size=64x64:rate=5"]
        + ["-c:v", "mpeg4", str(root / "silent-film.mp4")],
        check=True,
    )
    # a playlist whose segment is the cloud metadata address: FFmpeg must never open it
    (root / "playlist.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://169.254.169.254/latest/meta-data/x.ts\n#EXT-X-ENDLIST\n"
    )
    return root


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def files_url(bad_files: Path) -> AsyncIterator[str]:
    async with serving(file_app(bad_files.parent)) as base:
        yield base


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def faulty_url(media_root: Path) -> AsyncIterator[str]:
    async with serving(misbehaving_app(media_root, Drops(after_bytes=4096))) as base:
        yield base


def no_triton(**overrides: Any) -> Settings:
    settings: dict[str, Any] = {
        "triton_grpc_urls": [f"127.0.0.1:{free_port()}"],
        "allowed_media_hosts": LOOPBACK,
        "media_read_retries": 1,
        **overrides,
    }
    return Settings(**settings)


async def post(settings: Settings, body: object, raw: str | None = None) -> tuple[int, dict[str, Any]]:
    async with serving(create_app(settings)) as base, aiohttp.ClientSession() as session:
        data = raw if raw is not None else json.dumps(body)
        async with session.post(
            f"{base}/v1/transcribe",
            data=data,
            headers={"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=FAST_S),
        ) as response:
            return response.status, await response.json()


def assert_refused(status: int, body: dict[str, Any], code: str, status_wanted: int = 422) -> None:
    assert status == status_wanted, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"] and body["error"]["hint"]


@pytest.mark.parametrize(
    ("path", "code", "words"),
    [
        ("bad/empty.mp3", "media_empty", "empty"),
        ("bad/noise.mp3", "media_unreadable", "FFmpeg"),
        ("bad/silent-film.mp4", "media_no_audio", "no audio"),
        ("bad/playlist.m3u8", "media_unreadable", "FFmpeg"),
        ("bad/missing.mp3", "media_http_error", "404"),
    ],
)
async def test_media_that_cannot_be_transcribed_is_refused_with_its_reason(
    files_url: str, path: str, code: str, words: str
) -> None:
    status, body = await post(no_triton(), {"media_url": f"{files_url}/{path}"})
    assert_refused(status, body, code)
    assert words in body["error"]["message"]


@pytest.mark.parametrize("code", [403, 404, 500, 503])
async def test_media_server_errors_are_named_with_their_status(faulty_url: str, code: int) -> None:
    status, body = await post(no_triton(), {"media_url": f"{faulty_url}/status/{code}"})
    assert_refused(status, body, "media_http_error")
    assert str(code) in body["error"]["message"]


async def test_a_web_page_is_not_media(faulty_url: str) -> None:
    status, body = await post(no_triton(), {"media_url": f"{faulty_url}/page"})
    assert_refused(status, body, "media_not_audio")


async def test_media_longer_than_the_limit_is_refused_before_any_work(files_url: str) -> None:
    settings = no_triton(max_media_duration_sec=5)
    status, body = await post(settings, {"media_url": f"{files_url}/speech/jfk.flac"})
    assert_refused(status, body, "media_too_long")


async def test_unreachable_hosts_are_named() -> None:
    refused = f"http://127.0.0.1:{free_port()}/talk.mp3"
    status, body = await post(no_triton(), {"media_url": refused})
    assert_refused(status, body, "media_unreachable")
    status, body = await post(no_triton(), {"media_url": "http://no-such-host.invalid/talk.mp3"})
    assert_refused(status, body, "media_host_not_found")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/talk.mp3",  # loopback
        "http://localhost:9/talk.mp3",  # loopback by name
        "http://10.0.0.8/talk.mp3",  # private
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://[::1]:9/talk.mp3",
        "http://[::ffff:127.0.0.1]:9/talk.mp3",  # loopback dressed as IPv6
        "http://224.0.0.1/talk.mp3",  # multicast
        "http://100.100.100.200/latest/meta-data/",  # a cloud's metadata in shared address space
    ],
)
async def test_private_and_metadata_addresses_are_refused_by_default(url: str) -> None:
    status, body = await post(Settings(triton_grpc_urls=[f"127.0.0.1:{free_port()}"]), {"media_url": url})
    assert_refused(status, body, "media_url_forbidden")
    assert "LONGSCRIBE_ALLOWED_MEDIA_HOSTS" in body["error"]["hint"]


async def test_every_redirect_is_checked_again(faulty_url: str, files_url: str) -> None:
    port = faulty_url.rsplit(":", 1)[1]
    # `localhost` is allowed by name; the redirect to 127.0.0.1 is not
    allowed_by_name = no_triton(allowed_media_hosts=["localhost"])
    target = f"{files_url}/speech/jfk.flac"
    status, body = await post(allowed_by_name, {"media_url": f"http://localhost:{port}/to?url={target}"})
    assert_refused(status, body, "media_url_forbidden")
    for scheme_url in ("file:///etc/passwd", "ftp://example.com/a.mp3"):
        status, body = await post(no_triton(), {"media_url": f"{faulty_url}/to?url={scheme_url}"})
        assert_refused(status, body, "media_url_forbidden")


async def test_redirects_are_bounded(faulty_url: str) -> None:
    status, body = await post(no_triton(max_redirects=2), {"media_url": f"{faulty_url}/redirect/3/speech/jfk.flac"})
    assert_refused(status, body, "media_http_error")
    assert "redirects more than 2" in body["error"]["message"]


async def test_a_server_that_keeps_dropping_the_connection_is_an_error_not_a_shorter_transcript(
    faulty_url: str,
) -> None:
    status, body = await post(no_triton(), {"media_url": f"{faulty_url}/drop-always/speech/jfk.flac"})
    assert_refused(status, body, "media_connection_lost")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"params": {}}), "media_url"),
        (json.dumps({"media_url": "https://example.com/a.mp3", "colour": "red"}), "colour"),
        (json.dumps({"media_url": "file:///etc/passwd"}), "http"),
        (json.dumps({"media_url": "gopher://example.com/a.mp3"}), "http"),
        (json.dumps({"media_url": "ftp://example.com/a.mp3"}), "http"),
    ],
)
async def test_malformed_requests_are_refused_before_any_fetch(raw: str, words: str) -> None:
    status, body = await post(no_triton(), None, raw=raw)
    assert_refused(status, body, "invalid_request")
    assert words in body["error"]["message"]
