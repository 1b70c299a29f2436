"""POST /v1/audio/transcriptions: the official `openai` client, pointed at longscribe, works unchanged."""

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

from ..corpus import manifest, speech_dir, wer
from ..media_servers import LOOPBACK

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def upload_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("uploads")


@pytest_asyncio.fixture(scope="module")
async def api(triton_grpc_url: str, upload_dir: Path) -> AsyncIterator[str]:
    settings = Settings(
        triton_grpc_urls=[triton_grpc_url],
        allowed_media_hosts=LOOPBACK,
        upload_dir=upload_dir,
        max_upload_bytes=8 * 2**20,
    )
    async with serving(create_app(settings)) as base:
        yield base


def client(api: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{api}/v1", api_key="not-needed-here", max_retries=0)


JFK = speech_dir() / "jfk.flac"


def jfk_reference() -> str:
    return next(c.reference for c in manifest() if c.path.name == "jfk.flac")


async def test_the_openai_client_uploads_a_file_and_gets_its_text(api: str, upload_dir: Path) -> None:
    with JFK.open("rb") as audio:
        result = await client(api).audio.transcriptions.create(model="whisper-1", file=audio)
    assert wer(jfk_reference(), result.text) <= 0.10
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
    assert cues and wer(jfk_reference(), " ".join(c.content for c in cues)) <= 0.10


async def test_a_url_field_instead_of_a_file(api: str, media_url: str) -> None:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    form.add_field("url", f"{media_url}/speech/jfk.flac")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api}/v1/audio/transcriptions", data=form) as response:
            assert response.status == 200
            assert wer(jfk_reference(), (await response.json())["text"]) <= 0.10


async def test_an_upload_over_the_limit_is_413_and_leaves_nothing_behind(api: str, upload_dir: Path) -> None:
    big = bytes(8 * 2**20 + 1)
    with pytest.raises(openai.APIStatusError) as raised:
        await client(api).audio.transcriptions.create(model="whisper-1", file=("big.wav", big))
    assert raised.value.status_code == 413
    assert not list(upload_dir.iterdir())


async def test_no_file_and_no_url_is_a_clear_client_error(api: str) -> None:
    form = aiohttp.FormData()
    form.add_field("model", "whisper-1")
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{api}/v1/audio/transcriptions", data=form) as response:
            assert response.status == 422
            assert "file" in (await response.json())["error"]["message"]


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
