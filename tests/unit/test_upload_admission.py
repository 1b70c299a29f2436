"""A full service refuses an upload before reading it: 429 at once, the body left unread."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from orchestrator.settings import Settings

from .test_service_edge import Gate, post, service

BOUNDARY = "longscribe-test-boundary"
PIECE = b"\0" * (256 * 1024)
PIECES = 32  # 8 MiB in all, of which only the first piece is sent unless the server answers first


async def slow_upload(answered: asyncio.Event, sent: list[int]) -> AsyncIterator[bytes]:
    """A multipart `file` that waits after its first piece until the answer has come (or 3 s passed)."""
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="long.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    for n in range(PIECES):
        yield PIECE
        sent.append(n)
        if n == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), 3.0)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def test_a_full_service_answers_an_upload_429_before_reading_it(tmp_path: Path) -> None:
    gate = Gate()
    settings = Settings(max_requests_in_flight=1, max_queued_requests=0, retry_after_sec=3, upload_dir=tmp_path)
    async with service(settings, gate) as (session, base):
        running = asyncio.create_task(post(session, base))
        while gate.started < 1:
            await asyncio.sleep(0.01)
        answered, sent = asyncio.Event(), []
        headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
        with contextlib.suppress(aiohttp.ClientOSError, aiohttp.ServerDisconnectedError):
            async with session.post(
                f"{base}/v1/audio/transcriptions", data=slow_upload(answered, sent), headers=headers
            ) as response:
                sent_when_answered = len(sent)
                answered.set()
                assert response.status == 429
                assert response.headers["Retry-After"] == "3"
                assert (await response.json())["error"]["code"] == "overloaded"
        assert sent_when_answered == 1, "the answer came only after the whole upload was sent"
        assert not list(tmp_path.iterdir()), "nothing of the upload is written to disk"
        assert gate.started == 1
        gate.release.set()
        assert (await running)[0] == 200
