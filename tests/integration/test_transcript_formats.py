"""A real job's transcript as whisper's tsv, and as srt and vtt wrapped at 42 characters and 2 lines
(real Triton, FFmpeg, redis-server), on a service with API keys that refuses loopback media: the speech
is uploaded."""

from __future__ import annotations

import asyncio
import csv
import html
import io
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
import srt
import webvtt

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.settings import Settings

from ..corpus import manifest, wer
from ..redis_fleet import own_database
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration
KEY = "formats-key-8e2d"
AUTH = {"Authorization": f"Api-Key {KEY}"}
JFK = next(c for c in manifest() if c.path.name == "jfk.flac")
JOB_TIMEOUT_S = 300.0  # 11 s of speech; Triton on a CPU shared with other tests


@pytest_asyncio.fixture(scope="module")
async def keyed_api(triton_grpc_url: str, redis_server: str) -> AsyncIterator[str]:
    """The defaults users run: API keys on, loopback media refused."""
    async with own_database(redis_server) as redis_url:
        settings = Settings(triton_grpc_urls=[triton_grpc_url], redis_url=redis_url, api_keys=[KEY])
        async with serving(create_app(settings)) as base:
            yield base


async def finished_job(session: aiohttp.ClientSession, api: str, word_timestamps: bool) -> str:
    """jfk.flac uploaded as a job, waited for until it succeeds; its URL."""
    form = aiohttp.FormData()
    form.add_field("file", JFK.path.read_bytes(), filename=JFK.path.name)
    form.add_field("params", json.dumps({"word_timestamps": word_timestamps}))
    async with session.post(f"{api}/v1/jobs", data=form, headers=AUTH) as response:
        assert response.status == 202, await response.text()
        job = f"{api}/v1/jobs/{(await response.json())['id']}"
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        async with session.get(job, headers=AUTH) as response:
            status = (await response.json())["status"]
        if status not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, "the job did not finish"
        await asyncio.sleep(0.2)
    assert status == "succeeded"
    return job


async def transcript(session: aiohttp.ClientSession, job: str, query: str) -> tuple[str, str]:
    async with session.get(f"{job}/transcript?{query}", headers=AUTH) as response:
        assert response.status == 200, await response.text()
        return response.content_type, await response.text()


def assert_wrapped(cues: list[tuple[float, float, str]], words: list[str]) -> None:
    """At most 42 characters a line and 2 lines a cue, cues in time order, and every word once, in order."""
    assert len(cues) >= 2, "11 s of speech is more than two lines of 42"
    for start, end, text in cues:
        lines = text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 42 for line in lines), text
        assert start <= end
    for (_, end, _), (start, _, _) in zip(cues, cues[1:], strict=False):
        assert end <= start + 0.001
    assert [w for _, _, text in cues for w in text.split()] == words


@pytest.mark.parametrize("word_timestamps", [True, False], ids=["word times", "times by characters"])
async def test_a_jobs_transcript_as_tsv_and_as_subtitles_wrapped_at_42_characters_and_2_lines(
    keyed_api: str, word_timestamps: bool
) -> None:
    async with aiohttp.ClientSession() as session:
        job = await finished_job(session, keyed_api, word_timestamps)
        _, body = await transcript(session, job, "format=json")
        segments = json.loads(body)["segments"]
        words = [w for s in segments for w in s["text"].split()]

        content_type, body = await transcript(session, job, "format=tsv")
        assert content_type == "text/tab-separated-values"
        header, *rows = list(csv.reader(io.StringIO(body), delimiter="\t", quoting=csv.QUOTE_NONE))
        assert header == ["start", "end", "text"] and len(rows) == len(segments)
        assert [[int(a), int(b)] for a, b, _ in rows] == [
            [round(1000 * s["start_time_sec"]), round(1000 * s["end_time_sec"])] for s in segments
        ]
        assert wer(JFK.reference, " ".join(text for _, _, text in rows)) <= JFK_MAX_WER

        content_type, body = await transcript(session, job, "format=srt&max_line_width=42&max_line_count=2")
        assert content_type == "application/x-subrip"
        cues = [(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in srt.parse(body)]
        assert_wrapped(cues, words)
        assert cues[0][0] >= segments[0]["start_time_sec"] - 0.001
        assert cues[-1][1] <= segments[-1]["end_time_sec"] + 0.001

        content_type, body = await transcript(session, job, "format=vtt&max_line_width=42&max_line_count=2")
        assert content_type == "text/vtt"
        captions = webvtt.from_buffer(io.StringIO(body)).captions
        assert [html.unescape(c.raw_text) for c in captions] == [text for _, _, text in cues], "vtt cues as srt's"


async def test_bad_line_limits_on_a_jobs_transcript_are_a_422_saying_what_to_ask_for(keyed_api: str) -> None:
    async with aiohttp.ClientSession() as session:
        job = await finished_job(session, keyed_api, word_timestamps=False)
        for query in ("format=srt&max_line_width=0", "format=vtt&max_line_width=x", "format=srt&max_line_count=2"):
            async with session.get(f"{job}/transcript?{query}", headers=AUTH) as response:
                assert response.status == 422, query
                error = (await response.json())["error"]
            assert error["code"] == "invalid_request" and "max_line" in error["message"]
            assert "max_line_width" in error["hint"]
