"""OpenAI parity, through the official `openai` client: errors in OpenAI's shape, translations, temperature,
whisper-1 listed, and stream=true as OpenAI's events.

A real server (create_app + serving) with API keys on and loopback media
refused (the defaults), a real redis-server for the streamed jobs, and a
stand-in transcriber that reports settled chunks as the pipeline does. The
real model on real speech: tests/integration/test_openai_api.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from orchestrator.api.app import create_app
from orchestrator.api.openai_stream import JOB_HEADER, Told
from orchestrator.assemble.progress import OnProgress, Progress
from orchestrator.common.net import serving
from orchestrator.errors import LongscribeError, MediaUnreadable
from orchestrator.schemas import MediaRequest, Segment, TranscribeOutput
from orchestrator.settings import Settings

pytestmark = pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # OpenAI's translations route
KEY = "k-openai-7c21"
AUTH = {"Authorization": f"Bearer {KEY}"}
AUDIO = ("a.wav", b"RIFF" + b"\0" * 4096)  # never decoded: the transcriber is a stand-in
SPOKEN = ["One small step.", "For a man.", "One giant leap.", "For mankind."]
SETTLED = [(0,), (1, 2)]  # what each reported chunk settles; the last segment comes with the end, as in the pipeline


def segment(i: int) -> Segment:
    start = 2.0 * i
    return Segment(
        start_time_sec=start, end_time_sec=start + 1.5, text=SPOKEN[i], language="english", language_code="en"
    )


OUTPUT = TranscribeOutput(
    segments=[segment(i) for i in range(len(SPOKEN))],
    input_duration_sec=8.0,
    processing_duration_sec=1.0,
    speedup=8.0,
    text=" ".join(SPOKEN),
    model="tiny.en",
)


class Talker:
    """Reports two settled chunks, then answers (or fails, or waits to be cancelled)."""

    def __init__(
        self, error: LongscribeError | None = None, hold: bool = False, output: TranscribeOutput = OUTPUT
    ) -> None:
        self.error, self.hold, self.output = error, hold, output
        self.requests: list[MediaRequest] = []
        self.cancelled = asyncio.Event()

    async def __call__(self, request: MediaRequest, progress: OnProgress | None = None, *_: Any) -> TranscribeOutput:
        self.requests.append(request)
        try:
            for n, settled in enumerate(SETTLED, start=1):
                await asyncio.sleep(0.05)
                if progress is not None:
                    added = tuple(segment(i) for i in settled)
                    progress(Progress(n, len(SETTLED) + 1, 2.0 * n, 8.0, added))
            if self.hold:
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        if self.error is not None:
            raise self.error
        return self.output


@asynccontextmanager
async def service(transcriber: Talker, **settings: Any) -> AsyncIterator[str]:
    async with serving(create_app(Settings(api_keys=[KEY], **settings), transcriber=transcriber)) as base:
        yield base


def client(base: str, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


async def test_a_bad_response_format_is_openais_bad_request_with_its_body_fields() -> None:
    async with service(Talker()) as base:
        with pytest.raises(openai.BadRequestError) as raised:
            await client(base).audio.transcriptions.create(
                model="whisper-1",
                file=AUDIO,
                response_format="mp3",  # type: ignore[arg-type]
            )
    assert raised.value.status_code == 400
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["type"] == "invalid_request_error" and error["param"] == "response_format"
    assert error["code"] == "invalid_request" and "json" in error["message"] and error["hint"]


async def test_a_bad_key_is_an_authentication_error_on_every_openai_route() -> None:
    async with service(Talker()) as base:
        for call in (
            client(base, "wrong").audio.transcriptions.create(model="whisper-1", file=AUDIO),
            client(base, "wrong").audio.translations.create(model="whisper-1", file=AUDIO),
            client(base, "wrong").models.list(),
        ):
            with pytest.raises(openai.AuthenticationError) as raised:
                await call
            assert raised.value.body["type"] == "authentication_error"  # type: ignore[index]


async def test_an_unknown_model_is_not_found_naming_the_model_param() -> None:
    async with service(Talker()) as base:
        with pytest.raises(openai.NotFoundError) as raised:
            await client(base).audio.transcriptions.create(model="large-v9", file=AUDIO)
        assert raised.value.body["param"] == "model" and "tiny.en" in raised.value.body["message"]  # type: ignore[index]
        with pytest.raises(openai.NotFoundError):
            await client(base).models.retrieve("large-v9")


@pytest.mark.parametrize("temperature", ["1.5", "-0.1", "nan", "warm"])
async def test_a_temperature_outside_0_to_1_is_a_bad_request_naming_it(temperature: str) -> None:
    async with service(Talker()) as base:
        with pytest.raises(openai.BadRequestError) as raised:
            await client(base).audio.transcriptions.create(
                model="whisper-1", file=AUDIO, extra_body={"temperature": temperature}
            )
    assert raised.value.body["param"] == "temperature"  # type: ignore[index]


async def test_a_temperature_is_handed_to_the_transcription() -> None:
    talker = Talker()
    async with service(talker) as base:
        await client(base).audio.transcriptions.create(model="whisper-1", file=AUDIO, temperature=0.4)
    assert talker.requests[0].params.temperature == 0.4


async def test_media_the_service_may_not_fetch_is_a_400_naming_url() -> None:
    async with serving(create_app(Settings(api_keys=[KEY]))) as base:  # the real pipeline: loopback refused
        form = aiohttp.FormData({"model": "whisper-1", "url": f"{base}/a.wav"})  # the client always sends a file
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/v1/audio/transcriptions", data=form, headers=AUTH) as response:
                assert response.status == 400
                error = (await response.json())["error"]
    assert (error["code"], error["param"], error["type"]) == ("media_url_forbidden", "url", "invalid_request_error")


async def test_translations_ask_the_pipeline_for_english_text() -> None:
    talker = Talker()
    async with service(talker, whisper_weights="base") as base:  # multilingual: English-only ones cannot translate
        result = await client(base).audio.translations.create(
            model="whisper-1", file=AUDIO, response_format="verbose_json", temperature=0.2, prompt="Names."
        )
    params = talker.requests[0].params
    assert (params.task, params.temperature, params.prompt) == ("translate", 0.2, "Names.")
    assert result.text == OUTPUT.text and result.language == "english"  # type: ignore[union-attr]


async def test_whisper_1_is_listed_as_the_defaults_alias_and_can_be_read() -> None:
    async with service(Talker()) as base:
        listed = [m.id async for m in client(base).models.list()]
        assert listed == ["tiny.en", "whisper-1"]
        alias = await client(base).models.retrieve("whisper-1")
        assert alias.id == "whisper-1" and alias.model_extra == {"parent": "tiny.en"}


async def test_native_routes_keep_their_own_error_shape() -> None:
    async with service(Talker()) as base, aiohttp.ClientSession() as session:
        body = {"media_url": "https://example.com/a.mp3", "response_format": "mp3"}
        async with session.post(f"{base}/v1/transcribe", json=body, headers=AUTH) as r:
            assert r.status == 422
            assert set((await r.json())["error"]) == {"code", "message", "hint"}


async def stream_events(base: str, **more: Any) -> list[Any]:
    stream = await client(base).audio.transcriptions.create(model="whisper-1", file=AUDIO, stream=True, **more)
    return [event async for event in stream]


async def test_stream_true_sends_a_delta_per_settled_chunk_then_the_whole_text(redis_url: str, tmp_path: Path) -> None:
    async with service(Talker(), redis_url=redis_url, upload_dir=tmp_path) as base:
        events = await stream_events(base)
    assert [e.type for e in events] == ["transcript.text.delta"] * 3 + ["transcript.text.done"]
    assert [e.delta for e in events[:-1]] == ["One small step.", " For a man. One giant leap.", " For mankind."]
    assert "".join(e.delta for e in events[:-1]) == events[-1].text == OUTPUT.text
    for _ in range(50):  # the worker deletes the upload once the job is done
        if not list(tmp_path.iterdir()):
            break
        await asyncio.sleep(0.1)
    assert not list(tmp_path.iterdir())


def spoken_by(
    i: int, speaker: str, text: str | None = None, start: float | None = None, end: float | None = None
) -> Segment:
    told = segment(i)
    return told.model_copy(
        update={
            "speaker": speaker,
            "text": text or told.text,
            "start_time_sec": told.start_time_sec if start is None else start,
            "end_time_sec": told.end_time_sec if end is None else end,
        }
    )


# as the diarized pipeline ends: "For a man." told live in one delta, cut at the end where its speaker changes
DIARIZED = OUTPUT.model_copy(
    update={
        "segments": [
            spoken_by(0, "SPEAKER_00"),
            spoken_by(1, "SPEAKER_00", "For a", end=2.8),
            spoken_by(1, "SPEAKER_01", "man.", start=2.9),
            spoken_by(2, "Linda"),  # a known speaker keeps her name
            spoken_by(3, "SPEAKER_01"),
        ]
    }
)


async def test_a_diarized_stream_sends_the_text_live_then_each_segment_with_its_speaker(redis_url: str) -> None:
    talker = Talker(output=DIARIZED)
    async with service(talker, redis_url=redis_url) as base:
        events = await stream_events(base, response_format="diarized_json")
    assert talker.requests[0].params.diarize
    types = [e.type for e in events]
    assert types == ["transcript.text.delta"] * 3 + ["transcript.text.segment"] * 5 + ["transcript.text.done"]
    # the last delta is only what the live ones did not tell, though the end cut a told segment in two
    assert [e.delta for e in events[:3]] == ["One small step.", " For a man. One giant leap.", " For mankind."]
    segments = events[3:8]
    assert [(e.id, e.speaker, e.text) for e in segments] == [
        ("seg_0", "A", "One small step."),
        ("seg_1", "A", "For a"),
        ("seg_2", "B", "man."),
        ("seg_3", "Linda", "One giant leap."),
        ("seg_4", "B", "For mankind."),
    ]
    assert (segments[2].start, segments[2].end) == (2.9, 3.5)
    assert events[-1].text == OUTPUT.text


def test_chunks_a_resumed_job_reports_again_are_not_told_twice() -> None:
    told = Told()
    first = [{"text": "One.", "start_time_sec": 0.0, "end_time_sec": 2.0, "language_code": "en"}]
    second = [{"text": "Two.", "start_time_sec": 3.0, "end_time_sec": 5.0, "language_code": "en"}]
    assert told.delta(first) == "One." and told.delta(second) == " Two."
    assert told.delta(first + second) == "", "the new worker's report of the chunks it kept"
    assert told.delta([{**second[0], "text": "Three.", "end_time_sec": 8.0}]) == " Three."


async def test_a_job_that_fails_mid_stream_ends_it_with_openais_error(redis_url: str) -> None:
    async with service(Talker(MediaUnreadable("no audio here")), redis_url=redis_url) as base:
        with pytest.raises(openai.APIError) as raised:
            await stream_events(base)
    assert raised.value.body == {  # type: ignore[comparison-overlap]
        "message": "no audio here",
        "type": "invalid_request_error",
        "param": None,
        "code": "media_unreadable",
        "hint": MediaUnreadable.hint,
    }


async def test_a_client_that_hangs_up_cancels_its_job(redis_url: str) -> None:
    talker = Talker(hold=True)
    async with service(talker, redis_url=redis_url) as base:
        stream = await client(base).audio.transcriptions.create(model="whisper-1", file=AUDIO, stream=True)
        job_id = stream.response.headers[JOB_HEADER]
        assert (await anext(aiter(stream))).delta == "One small step."
        await stream.close()
        await asyncio.wait_for(talker.cancelled.wait(), 30)
        async with aiohttp.ClientSession(headers=AUTH) as session:
            for _ in range(100):
                async with session.get(f"{base}/v1/jobs/{job_id}") as response:
                    if (await response.json())["status"] == "cancelled":
                        break
                await asyncio.sleep(0.1)
            assert (await response.json())["status"] == "cancelled"


async def test_stream_without_a_job_store_is_a_clear_bad_request() -> None:
    async with service(Talker()) as base:
        with pytest.raises(openai.BadRequestError) as raised:
            await stream_events(base)
    assert raised.value.body["param"] == "stream" and "Redis" in raised.value.body["message"]  # type: ignore[index]


async def test_stream_answers_text_events_only() -> None:
    async with service(Talker()) as base:
        with pytest.raises(openai.BadRequestError) as raised:
            await stream_events(base, response_format="srt")
    assert raised.value.body["param"] == "response_format"  # type: ignore[index]


async def test_a_full_service_is_a_rate_limit_error_with_retry_after() -> None:
    talker = Talker(hold=True)
    async with service(talker, max_requests_in_flight=1, max_queued_requests=0) as base:
        held = asyncio.create_task(client(base).audio.transcriptions.create(model="whisper-1", file=AUDIO))
        while not talker.requests:
            await asyncio.sleep(0.01)
        with pytest.raises(openai.RateLimitError) as raised:
            await client(base).audio.transcriptions.create(model="whisper-1", file=AUDIO)
        held.cancel()
    assert raised.value.body["type"] == "requests" and raised.value.body["code"] == "overloaded"  # type: ignore[index]
    assert raised.value.response.headers["Retry-After"]
