"""params.task and params.temperature, end to end on a service with keys that refuses loopback media.

Media goes up as uploaded jobs (multipart POST /v1/jobs), so nothing here loosens a default. The
multilingual `base` model translates German and Spanish speech; the English-only default refuses
translate when the request is read, naming `base`; a starting temperature samples there and hotter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.errors import TranslationUnsupported
from orchestrator.infer.pool import TritonPool
from orchestrator.settings import Settings

from ..conftest import TWO_MODELS
from ..corpus import Clip, decode_pcm, manifest, synthetic_speech, wer
from ..redis_fleet import own_database
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration
KEY = "translate-key-93c1"
AUTH = {"Authorization": f"Api-Key {KEY}"}
JFK = next(c for c in manifest() if c.path.name == "jfk.flac")
JOB_DEADLINE_S = 300.0  # two cores shared with other suites: generous
# what each synthetic clip says, in English (tests/data/synthetic/*.txt, translated): a translation names some
MEANING = {
    "de": {"morning", "today", "history", "printing", "europe", "books", "monasteries", "hand", "months", "city"},
    "es": {"morning", "today", "history", "printing", "europe", "books", "monasteries", "hand", "months", "city"},
}
NOT_ENGLISH = {"und", "die", "der", "wir", "über", "des", "wurden", "los", "las", "de", "la", "hoy", "una", "con"}


@pytest_asyncio.fixture(scope="module")
async def keyed_api(
    two_models_grpc_url: str, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """tiny.en (the default) and base; keys on, loopback media refused: the production defaults."""
    async with own_database(redis_server) as redis_url:
        settings = Settings(
            models=TWO_MODELS,
            triton_grpc_urls=[two_models_grpc_url],
            redis_url=redis_url,
            api_keys=[KEY],
            upload_dir=tmp_path_factory.mktemp("translate-uploads"),
        )
        async with serving(create_app(settings)) as base:
            yield base


@pytest_asyncio.fixture(scope="module")
async def english_only_api(two_models_grpc_url: str, redis_server: str) -> AsyncIterator[str]:
    """A service that serves only tiny.en (the Triton behind it is never asked: refusals come first)."""
    async with own_database(redis_server) as redis_url:
        settings = Settings(triton_grpc_urls=[two_models_grpc_url], redis_url=redis_url, api_keys=[KEY])
        async with serving(create_app(settings)) as base:
            yield base


def upload(path: Path, params: dict[str, Any]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", path.read_bytes(), filename=path.name)
    form.add_field("params", json.dumps(params))
    return form


async def transcribed(api: str, clip: Clip, **params: Any) -> dict[str, Any]:
    """Upload `clip` as a job, wait for it, and return its verbose_json transcript."""
    async with aiohttp.ClientSession(headers=AUTH) as session:
        async with session.post(f"{api}/v1/jobs", data=upload(clip.path, params)) as response:
            assert response.status == 202, await response.text()
            job = f"{api}/v1/jobs/{(await response.json())['id']}"
        deadline = time.monotonic() + JOB_DEADLINE_S
        while (state := await (await session.get(job)).json())["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, state
            await asyncio.sleep(0.2)
        assert state["status"] == "succeeded", state
        async with session.get(f"{job}/transcript?format=verbose_json") as response:
            assert response.status == 200
            return dict(await response.json())


def words(text: str) -> list[str]:
    return [w.strip(".,;:!?¿¡\"'").lower() for w in text.split()]


@pytest.mark.parametrize("language", ["de", "es"])
async def test_translate_on_the_multilingual_model_writes_english(keyed_api: str, language: str) -> None:
    clip = synthetic_speech(language)
    heard = await transcribed(keyed_api, clip, model="base")
    translated = await transcribed(keyed_api, clip, model="base", task="translate")
    assert wer(clip.reference, heard["text"], english=False) <= 0.35  # transcribe: the spoken language
    said = words(translated["text"])
    assert translated["text"] != heard["text"] and len(said) >= 8
    assert sum(w.isascii() for w in said) >= 0.9 * len(said)
    assert len(MEANING[language] & set(said)) >= 3, translated["text"]
    assert len(NOT_ENGLISH & set(said)) <= 1, translated["text"]
    # the spoken language is reported, as openai/whisper does for a translation
    assert translated["language_code"] == language


async def test_translate_on_the_english_only_default_answers_422_naming_base_before_any_media(
    keyed_api: str, media_url: str
) -> None:
    # a loopback URL this service refuses: the refusal is translate's, so the media was never looked at
    body = {"media_url": f"{media_url}/speech/jfk.flac", "params": {"task": "translate"}}
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for route in ("/v1/transcribe", "/v1/jobs"):
            async with session.post(f"{keyed_api}{route}", json=body) as response:
                error = (await response.json())["error"]
                assert response.status == 422, error
                assert error["code"] == "translation_unsupported", route
                assert "'tiny.en' is English-only" in error["message"] and "'base'" in error["message"]
                assert "params.model='base'" in error["hint"]
        async with session.post(f"{keyed_api}/v1/jobs", data=upload(JFK.path, {"task": "translate"})) as response:
            assert response.status == 422 and (await response.json())["error"]["code"] == "translation_unsupported"
        async with session.post(f"{keyed_api}/v1/transcribe", json=body, headers={"Authorization": ""}) as response:
            assert response.status == 401  # keys are checked first: no hint about models to strangers


async def test_a_service_without_a_multilingual_model_says_to_serve_one(english_only_api: str, media_url: str) -> None:
    body = {"media_url": f"{media_url}/speech/jfk.flac", "params": {"task": "translate"}}
    async with aiohttp.ClientSession(headers=AUTH) as session:
        for route in ("/v1/transcribe", "/v1/jobs"):
            async with session.post(f"{english_only_api}{route}", json=body) as response:
                error = (await response.json())["error"]
                assert response.status == 422 and error["code"] == "translation_unsupported", error
                assert "serves no multilingual model" in error["message"] and "--model base" in error["hint"]


async def test_a_starting_temperature_samples_there_or_hotter_and_still_hears_the_speech(
    keyed_api: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="longscribe.pipeline"):
        answer = await transcribed(keyed_api, JFK, temperature=0.5, prompt="Kennedy's inaugural address")
    assert answer["segments"] and all(s["temperature"] >= 0.5 for s in answer["segments"])
    assert wer(JFK.reference, answer["text"]) <= 0.35
    used = [r.getMessage() for r in caplog.records if r.name == "longscribe.pipeline"]
    assert any("model=tiny.en task=transcribe language=en temperature=0.5 prompt=given" in line for line in used), used


async def test_temperature_zero_decodes_greedily_as_before(keyed_api: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="longscribe.pipeline"):
        answer = await transcribed(keyed_api, JFK)
    assert [s["temperature"] for s in answer["segments"]] == [0.0] * len(answer["segments"])
    assert wer(JFK.reference, answer["text"]) <= JFK_MAX_WER
    used = [r.getMessage() for r in caplog.records if r.name == "longscribe.pipeline"]
    assert any("task=transcribe language=en temperature=0 prompt=none" in line for line in used), used


async def test_an_english_only_model_the_catalogue_cannot_name_is_refused_by_the_engine(
    two_models_grpc_url: str,
) -> None:
    """A directory or Hub id without `.en` in its name: the engine itself refuses, and the pool says why."""
    pool = TritonPool([two_models_grpc_url], "micro_chunker", "whisper", ["micro_chunker", "whisper"], 120.0)
    try:
        pcm = decode_pcm(JFK.path)
        with pytest.raises(TranslationUnsupported, match="English-only"):
            await pool.transcribe_chunk(pcm, 30.0, 1600, None, None, "whisper", "translate")
        sampled = await pool.transcribe_chunk(pcm, 30.0, 1600, None, None, "whisper", "transcribe", 0.2)
        assert sampled.segments and {s.temperature for s in sampled.segments} <= {0.2, 0.4, 0.6, 0.8, 1.0}
    finally:
        await pool.close()
