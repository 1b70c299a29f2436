"""The REST edge with a fake transcriber: what is accepted, what is refused, and how."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.errors import RangeNotSupported
from orchestrator.pipeline import Transcriber
from orchestrator.schemas import Segment, TranscribeOutput, TranscribeRequest
from orchestrator.settings import Settings

SEED_BODY: dict[str, Any] = {
    "media_url": "https://example.com/talk.mp3",
    "params": {
        "wav_sampling_rate_hz": 16000,
        "macro_chunk_size_sec": 300,
        "macro_chunk_overlap_sec": 0,
        "micro_chunk_size_sec": 30,
        "silence_detection_smoothing_num_samples": 1600,
    },
}
FAKE_OUTPUT = TranscribeOutput(
    segments=[Segment(start_time_sec=0.0, end_time_sec=1.5, text="Hello.", language="english", language_code="en")],
    input_duration_sec=1.5,
    processing_duration_sec=0.5,
    speedup=3.0,
    text="Hello.",
)


class Fake:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.requests: list[TranscribeRequest] = []

    async def __call__(self, request: TranscribeRequest, *_: object) -> TranscribeOutput:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return FAKE_OUTPUT


@asynccontextmanager
async def service(transcriber: Transcriber) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with serving(create_app(Settings(), transcriber=transcriber)) as base, aiohttp.ClientSession() as session:
        yield session, base


async def post(transcriber: Transcriber, body: str) -> tuple[int, Any]:
    async with service(transcriber) as (session, base):
        headers = {"Content-Type": "application/json"}
        async with session.post(f"{base}/v1/transcribe", data=body, headers=headers) as resp:
            return resp.status, await resp.json()


def with_params(**params: Any) -> str:
    return json.dumps({**SEED_BODY, "params": {**SEED_BODY["params"], **params}})


def assert_error_shape(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "hint"}
    assert body["error"]["code"] == code
    assert all(isinstance(v, str) and v for v in body["error"].values())


async def test_a_seed_shaped_body_gets_the_transcribers_answer() -> None:
    fake = Fake()
    status, body = await post(fake, json.dumps(SEED_BODY))
    assert status == 200
    assert TranscribeOutput.model_validate(body) == FAKE_OUTPUT
    assert fake.requests == [TranscribeRequest.model_validate(SEED_BODY)]


async def test_params_are_optional() -> None:
    status, _ = await post(Fake(), json.dumps({"media_url": "http://example.com/a.wav"}))
    assert status == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("{not json", id="malformed JSON"),
        pytest.param("", id="empty body"),
        pytest.param(json.dumps({**SEED_BODY, "language": "en"}), id="unknown field"),
        pytest.param(with_params(beam_size=5), id="unknown param"),
        pytest.param(json.dumps({"params": SEED_BODY["params"]}), id="missing media_url"),
        pytest.param(json.dumps([SEED_BODY]), id="not an object"),
        pytest.param(json.dumps({"media_url": "file:///etc/passwd"}), id="file URL"),
        pytest.param(json.dumps({"media_url": "ftp://example.com/a.mp3"}), id="ftp URL"),
        pytest.param(json.dumps({"media_url": "http://"}), id="URL without host"),
        pytest.param(with_params(micro_chunk_size_sec=0), id="micro 0"),
        pytest.param(with_params(micro_chunk_size_sec=-1), id="micro -1"),
        pytest.param(with_params(micro_chunk_size_sec=31), id="micro 31"),
        pytest.param(with_params(macro_chunk_size_sec=20, micro_chunk_size_sec=30), id="macro under micro"),
        pytest.param(with_params(macro_chunk_overlap_sec=150), id="overlap half of macro"),
        pytest.param(with_params(macro_chunk_size_sec=float("nan")), id="NaN macro"),
        pytest.param(with_params(micro_chunk_size_sec=float("nan")), id="NaN micro"),
        pytest.param(with_params(macro_chunk_size_sec=float("inf")), id="Infinity macro"),
        pytest.param(with_params(wav_sampling_rate_hz=8000), id="8 kHz"),
        pytest.param(with_params(silence_detection_smoothing_num_samples=0), id="no smoothing"),
    ],
)
async def test_a_bad_body_is_refused_with_422_and_a_structured_error(body: str) -> None:
    fake = Fake()
    status, answer = await post(fake, body)
    assert status == 422
    assert_error_shape(answer, "invalid_request")
    assert fake.requests == []


def test_nan_reaches_the_server_as_the_raw_json_token() -> None:
    assert "NaN" in with_params(macro_chunk_size_sec=float("nan"))


async def test_a_media_error_keeps_its_code_and_status() -> None:
    status, body = await post(Fake(RangeNotSupported("no 206 for Range: bytes=0-0")), json.dumps(SEED_BODY))
    assert status == 422
    assert_error_shape(body, "range_not_supported")
    assert body["error"]["message"] == "no 206 for Range: bytes=0-0"


async def test_an_unexpected_failure_is_a_bare_500_without_traceback() -> None:
    status, body = await post(Fake(RuntimeError("secret /srv/path exploded")), json.dumps(SEED_BODY))
    assert status == 500
    assert_error_shape(body, "internal")
    text = json.dumps(body)
    assert "Traceback" not in text
    assert "secret" not in text and "RuntimeError" not in text


async def test_healthz_answers_ok() -> None:
    async with service(Fake()) as (session, base), session.get(f"{base}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_an_unknown_route_is_a_structured_404() -> None:
    async with service(Fake()) as (session, base), session.get(f"{base}/v2/nothing") as resp:
        assert resp.status == 404
        assert_error_shape(await resp.json(), "http_error")


def test_the_request_model_fills_default_params() -> None:
    params = TranscribeRequest(media_url="https://example.com/x.mp4").params
    assert (params.wav_sampling_rate_hz, params.micro_chunk_size_sec, params.macro_chunk_size_sec) == (16000, 30, 300)


@pytest.mark.parametrize("micro", [1, 29.99, 30])
def test_the_request_model_accepts_micro_sizes_from_one_to_thirty_seconds(micro: float) -> None:
    body = {"media_url": "http://example.com/a.wav", "params": {"micro_chunk_size_sec": micro}}
    assert TranscribeRequest.model_validate(body).params.micro_chunk_size_sec == micro


def test_the_request_model_is_frozen() -> None:
    request = TranscribeRequest(media_url="https://example.com/x.mp4")
    with pytest.raises(ValidationError):
        request.media_url = "https://example.com/y.mp4"  # type: ignore[misc]


@pytest.mark.parametrize("micro", [0.5, 1e-5])
async def test_micro_sizes_under_a_second_are_refused_at_the_edge(micro: float) -> None:
    status, body = await post(Fake(), with_params(micro_chunk_size_sec=micro))
    assert status == 422
    assert_error_shape(body, "invalid_request")
    assert "micro_chunk_size_sec" in body["error"]["message"]


async def test_a_macro_size_over_the_configured_cap_is_refused() -> None:
    fake = Fake()
    status, body = await post(fake, with_params(macro_chunk_size_sec=1e9))
    assert status == 422
    assert_error_shape(body, "invalid_request")
    assert "macro_chunk_size_sec" in body["error"]["message"]
    assert not fake.requests


async def test_a_missing_ffmpeg_is_named_not_a_bare_500() -> None:
    from orchestrator.common import proc
    from orchestrator.errors import ToolMissing

    with pytest.raises(ToolMissing, match="no-such-ffmpeg"):
        await proc.run(["no-such-ffmpeg", "-version"], timeout_s=5)
