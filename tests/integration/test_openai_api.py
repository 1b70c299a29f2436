"""The official `openai` client, pointed at longscribe, works unchanged: transcriptions (also streamed),
errors in OpenAI's shape, temperature, and translations on a multilingual model.

The services run as deployed: API keys on, loopback media refused, files
uploaded as `file`. Only the `url` extension's test allows loopback (the
media server is local), and its twin shows the default refusing it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import openai
import pytest
import pytest_asyncio
import srt

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.settings import Settings

from ..corpus import Recording, manifest, speech_dir, wer
from ..media_servers import LOOPBACK
from ..redis_fleet import own_database
from ..wer_bounds import JFK_MAX_WER

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")]
KEY = "openai-client-key-3f9a"


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest_asyncio.fixture(scope="module")
async def api(triton_grpc_url: str, redis_server: str, upload_dir: Path) -> AsyncIterator[str]:
    """As deployed: keys on, loopback media refused; Redis for streamed transcriptions (they are jobs)."""
    async with own_database(redis_server) as redis_url:
        settings = Settings(
            triton_grpc_urls=[triton_grpc_url],
            api_keys=[KEY],
            redis_url=redis_url,
            upload_dir=upload_dir,
            max_upload_bytes=8 * 2**20,
        )
        async with serving(create_app(settings)) as base:
            yield base


@pytest_asyncio.fixture(scope="module")
async def loopback_api(triton_grpc_url: str) -> AsyncIterator[str]:
    """Keys on, loopback media allowed: for the `url` extension, whose media server is local."""
    settings = Settings(triton_grpc_urls=[triton_grpc_url], api_keys=[KEY], allowed_media_hosts=LOOPBACK)
    async with serving(create_app(settings)) as base:
        yield base


def client(api: str, key: str = KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{api}/v1", api_key=key, max_retries=0)


JFK = speech_dir() / "jfk.flac"


def jfk_reference() -> str:
    return next(c.reference for c in manifest() if c.path.name == "jfk.flac")


async def test_the_openai_client_uploads_a_file_and_gets_its_text(api: str, upload_dir: Path) -> None:
    with JFK.open("rb") as audio:
        result = await client(api).audio.transcriptions.create(model="whisper-1", file=audio)
    assert wer(jfk_reference(), result.text) <= JFK_MAX_WER
    assert not list(upload_dir.iterdir()), "the upload must be deleted afterwards"


async def test_verbose_json_with_word_and_segment_timestamps(api: str) -> None:
    with JFK.open("rb") as audio:
        result = await client(api).audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            language="en",
        )
    assert result.language == "english" and result.duration == pytest.approx(11.0, abs=0.2)
    assert result.segments and result.words
    starts = [s.start for s in result.segments]
    assert starts == sorted(starts) and all(0 <= s.start <= s.end <= result.duration for s in result.segments)
    assert " ".join(w.word for w in result.words).count(" ") >= 15


async def test_subtitles_come_back_as_text_the_client_hands_over(api: str) -> None:
    with JFK.open("rb") as audio:
        subtitles = await client(api).audio.transcriptions.create(model="whisper-1", file=audio, response_format="srt")
    cues = list(srt.parse(str(subtitles)))
    assert cues and wer(jfk_reference(), " ".join(c.content for c in cues)) <= JFK_MAX_WER


async def test_a_url_field_instead_of_a_file(loopback_api: str, api: str, media_url: str) -> None:
    form = {"model": "whisper-1", "url": f"{media_url}/speech/jfk.flac"}
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        async with session.post(f"{loopback_api}/v1/audio/transcriptions", data=form) as response:
            assert response.status == 200
            assert wer(jfk_reference(), (await response.json())["text"]) <= JFK_MAX_WER
        async with session.post(f"{api}/v1/audio/transcriptions", data=form) as response:  # the default's twin
            error = (await response.json())["error"]
            assert response.status == 400 and (error["code"], error["param"]) == ("media_url_forbidden", "url")


async def test_an_upload_over_the_limit_is_413_and_leaves_nothing_behind(api: str, upload_dir: Path) -> None:
    big = bytes(8 * 2**20 + 1)
    with pytest.raises(openai.APIStatusError) as raised:
        await client(api).audio.transcriptions.create(model="whisper-1", file=("big.wav", big))
    assert raised.value.status_code == 413
    assert not list(upload_dir.iterdir())


async def test_no_file_and_no_url_is_a_clear_client_error(api: str) -> None:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as session:
        async with session.post(f"{api}/v1/audio/transcriptions", data=form) as response:
            assert response.status == 400
            error = (await response.json())["error"]
            assert "file" in error["message"] and error["param"] == "file"


async def test_a_bad_response_format_is_openais_bad_request_with_its_body_fields(api: str) -> None:
    with JFK.open("rb") as audio, pytest.raises(openai.BadRequestError) as raised:
        await client(api).audio.transcriptions.create(
            model="whisper-1",
            file=audio,
            response_format="mp3",  # type: ignore[arg-type]
        )
    assert raised.value.status_code == 400
    error = raised.value.body
    assert isinstance(error, dict) and error.keys() >= {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == (
        "invalid_request_error",
        "response_format",
        "invalid_request",
    )
    assert "verbose_json" in error["message"] and error["hint"]


async def test_a_wrong_key_and_an_unknown_model_raise_the_clients_own_classes(api: str) -> None:
    with JFK.open("rb") as audio, pytest.raises(openai.AuthenticationError):
        await client(api, "not-a-key").audio.transcriptions.create(model="whisper-1", file=audio)
    with JFK.open("rb") as audio, pytest.raises(openai.NotFoundError) as raised:
        await client(api).audio.transcriptions.create(model="large-v9", file=audio)
    assert raised.value.body["param"] == "model"  # type: ignore[index]
    assert [m.id async for m in client(api).models.list()] == ["tiny.en", "whisper-1"]


async def test_unreadable_media_is_a_bad_request_naming_the_file(api: str, upload_dir: Path) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await client(api).audio.transcriptions.create(model="whisper-1", file=("notes.wav", b"not audio" * 100))
    assert raised.value.body["param"] == "file" and raised.value.body["code"].startswith("media_")  # type: ignore[index]
    assert not list(upload_dir.iterdir())


async def test_stream_true_gives_the_text_as_chunks_settle_then_the_whole_transcript(
    api: str, lj_recording: Recording, upload_dir: Path
) -> None:
    small_chunks = {"macro_chunk_size_sec": 60}  # an extension field: 4 minutes in about 4 chunks
    with lj_recording.path.open("rb") as audio:
        stream = await client(api).audio.transcriptions.create(
            model="whisper-1", file=audio, stream=True, extra_body=small_chunks
        )
        events = [event async for event in stream]
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 2 and len(done) == 1 and events[-1] is done[0]
    assert all(deltas) and wer(done[0].text, "".join(deltas)) <= 0.02  # the joins' case is settled only at the end
    assert wer(lj_recording.reference, done[0].text) <= 0.08
    with lj_recording.path.open("rb") as audio:
        whole = await client(api).audio.transcriptions.create(model="whisper-1", file=audio, extra_body=small_chunks)
    assert wer(whole.text, done[0].text) <= 0.02  # the same transcript, streamed or not
    assert not list(upload_dir.iterdir())


async def test_a_temperature_is_accepted_and_used(api: str) -> None:
    with JFK.open("rb") as audio:
        result = await client(api).audio.transcriptions.create(
            model="whisper-1", file=audio, temperature=0.4, response_format="verbose_json"
        )
    assert result.segments and all(s.temperature >= 0.4 for s in result.segments)
    assert wer(jfk_reference(), result.text) <= 0.25  # sampled: a little looser than greedy
    with JFK.open("rb") as audio, pytest.raises(openai.BadRequestError) as raised:
        await client(api).audio.transcriptions.create(model="whisper-1", file=audio, temperature=1.5)
    assert raised.value.body["param"] == "temperature"  # type: ignore[index]


async def test_a_prompt_teaches_the_spelling_of_names(api: str) -> None:
    # "... Sweynheim and Pannartz ... Subiaco near Rome" (.wav beside the checkout, .flac in tests/data)
    clip = next(c.path for c in manifest() if c.path.stem == "LJ001-0031")
    with clip.open("rb") as audio:
        plain = await client(api).audio.transcriptions.create(model="whisper-1", file=audio)
    with clip.open("rb") as audio:
        guided = await client(api).audio.transcriptions.create(
            model="whisper-1", file=audio, prompt="Sweynheim and Pannartz printed at Subiaco."
        )
    assert "Pannartz" not in plain.text and "Subiaco" not in plain.text  # tiny.en alone misspells both
    assert "Pannartz" in guided.text and "Subiaco" in guided.text
