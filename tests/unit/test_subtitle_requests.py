"""POST /v1/transcribe with a stand-in transcriber and API keys on: tsv, and srt/vtt lines wrapped from the
body or the query; bad line limits are a 422 saying what is wrong; the OpenAI route offers no tsv."""

from __future__ import annotations

import csv
import io
from typing import Any

import aiohttp
import pytest
import srt

from orchestrator.schemas import Segment, TranscribeOutput, TranscribeRequest
from orchestrator.settings import Settings

from .test_request_validation import SEED_BODY
from .test_service_edge import service

KEY = "subtitle-key-3c1e"
AUTH = {"Authorization": f"Api-Key {KEY}"}
FIRST, SECOND = (
    "And so my fellow Americans ask not what your country",
    "can do for you ask what you can do for your country",
)
TEXT = f"{FIRST} {SECOND}"
OUTPUT = TranscribeOutput(
    segments=[
        Segment(start_time_sec=0.0, end_time_sec=6.0, text=FIRST, language_code="en"),
        Segment(start_time_sec=6.0, end_time_sec=11.0, text=SECOND, language_code="en"),
    ],
    input_duration_sec=11.0,
    processing_duration_sec=1.0,
    speedup=11.0,
    text=TEXT,
)


async def jfk(request: TranscribeRequest, *_: object) -> TranscribeOutput:
    return OUTPUT


async def transcribe(query: str = "", **fields: Any) -> tuple[int, str, str]:
    async with service(Settings(api_keys=[KEY]), jfk) as (session, base):
        url = f"{base}/v1/transcribe{query}"
        async with session.post(url, json={**SEED_BODY, **fields}, headers=AUTH) as response:
            return response.status, response.content_type, await response.text()


async def test_tsv_is_whispers_rows_served_as_tab_separated_values() -> None:
    status, content_type, body = await transcribe(response_format="tsv")
    assert status == 200 and content_type == "text/tab-separated-values"
    rows = list(csv.reader(io.StringIO(body), delimiter="\t", quoting=csv.QUOTE_NONE))
    assert rows == [["start", "end", "text"], ["0", "6000", FIRST], ["6000", "11000", SECOND]]


@pytest.mark.parametrize(
    ("query", "fields"),
    [
        ("", {"response_format": "srt", "max_line_width": 20, "max_line_count": 2}),
        ("?response_format=srt&max_line_width=20&max_line_count=2", {}),
    ],
)
async def test_srt_lines_wrap_as_the_body_or_the_query_asks(query: str, fields: dict[str, Any]) -> None:
    status, content_type, body = await transcribe(query, **fields)
    assert status == 200 and content_type == "application/x-subrip"
    cues = list(srt.parse(body))
    assert len(cues) > len(OUTPUT.segments)
    assert all(len(line) <= 20 for cue in cues for line in cue.content.split("\n"))
    assert all(len(cue.content.split("\n")) <= 2 for cue in cues)
    assert " ".join(cue.content.replace("\n", " ") for cue in cues) == TEXT


@pytest.mark.parametrize(
    ("query", "fields", "problem"),
    [
        ("", {"max_line_width": 0}, "max_line_width"),
        ("?max_line_width=wide", {}, "max_line_width"),
        ("?max_line_width=1001", {}, "max_line_width"),
        ("", {"max_line_width": 42, "max_line_count": -1}, "max_line_count"),
        ("?max_line_count=2", {}, "max_line_count needs max_line_width"),
    ],
)
async def test_bad_line_limits_are_a_422_saying_what_is_wrong(query: str, fields: dict[str, Any], problem: str) -> None:
    status, content_type, body = await transcribe(query, response_format="srt", **fields)
    assert status == 422 and content_type == "application/json"
    assert problem in body and "invalid_request" in body


async def test_the_openai_route_offers_no_tsv_as_openai_has_none() -> None:
    async with service(Settings(api_keys=[KEY]), jfk) as (session, base):
        form = aiohttp.FormData({"url": SEED_BODY["media_url"], "response_format": "tsv"})
        async with session.post(f"{base}/v1/audio/transcriptions", data=form, headers=AUTH) as response:
            assert 400 <= response.status < 500 and "response_format" in await response.text()
        async with session.get(f"{base}/openapi.json") as response:
            document = await response.json()
    form_schema = document["paths"]["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]
    assert "tsv" not in form_schema["multipart/form-data"]["schema"]["properties"]["response_format"]["enum"]
    assert "tsv" in document["components"]["schemas"]["TranscribeRequest"]["properties"]["response_format"]["enum"]
