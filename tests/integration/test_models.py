"""Two models served at once (tiny.en and base): each chosen by name through both APIs, listed,
seen by Triton as models of their own, and English-only refusing another language."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import tritonclient.grpc.aio as grpcclient

from ..conftest import TWO_MODELS
from ..corpus import manifest, speech_dir, synthetic_speech, wer
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration


def jfk_url(media_url: str) -> tuple[str, str]:
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    return f"{media_url}/speech/{jfk.path.relative_to(speech_dir()).as_posix()}", jfk.reference


async def transcribe(service: str, media: str, **params: Any) -> tuple[int, dict[str, Any]]:
    body = {"media_url": media, "params": params, "response_format": "verbose_json"}
    async with aiohttp.ClientSession() as session, session.post(f"{service}/v1/transcribe", json=body) as response:
        return response.status, await response.json()


async def openai(service: str, media: str, model: str) -> tuple[int, dict[str, Any]]:
    form = aiohttp.FormData({"url": media, "model": model, "response_format": "verbose_json"})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{service}/v1/audio/transcriptions", data=form) as response:
            return response.status, await response.json()


@pytest.mark.parametrize("model", TWO_MODELS)
async def test_each_model_is_chosen_by_name_through_both_apis_and_the_answer_says_which(
    two_models_service_url: str, media_url: str, model: str
) -> None:
    url, reference = jfk_url(media_url)
    status, answer = await transcribe(two_models_service_url, url, model=model)
    assert status == 200, answer
    assert answer["model"] == model
    assert wer(reference, answer["text"]) <= JFK_MAX_WER
    status, answer = await openai(two_models_service_url, url, model)
    assert status == 200, answer
    assert answer["model"] == model and wer(reference, answer["text"]) <= JFK_MAX_WER


async def test_no_model_or_whisper_1_is_the_first(two_models_service_url: str, media_url: str) -> None:
    url, _ = jfk_url(media_url)
    status, answer = await transcribe(two_models_service_url, url)
    assert (status, answer["model"]) == (200, TWO_MODELS[0])
    status, answer = await openai(two_models_service_url, url, "whisper-1")
    assert (status, answer["model"]) == (200, TWO_MODELS[0])


async def test_both_are_listed_and_an_unknown_name_answers_404(two_models_service_url: str, media_url: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{two_models_service_url}/v1/models") as response:
        assert [m["id"] for m in (await response.json())["data"]] == [*TWO_MODELS, "whisper-1"]
    url, _ = jfk_url(media_url)
    for status, answer in (
        await transcribe(two_models_service_url, url, model="large-v3"),
        await openai(two_models_service_url, url, "large-v3"),
    ):
        assert status == 404, answer
        assert all(name in answer["error"]["message"] for name in TWO_MODELS)


async def test_each_model_is_a_triton_model_of_its_own(two_models_grpc_url: str) -> None:
    client = grpcclient.InferenceServerClient(two_models_grpc_url)
    try:  # by readiness: the repository index is closed to callers without Triton's admin secret
        for model in ("whisper", "whisper-base", "micro_chunker"):
            assert await client.is_model_ready(model), model
    finally:
        await client.close()


async def test_spanish_is_refused_by_the_english_only_model_and_transcribed_by_base(
    two_models_service_url: str, media_url: str, media_root: Path
) -> None:
    clip = synthetic_speech("es")
    served = media_root / "models-espeak-es.flac"
    if not served.exists():
        served.symlink_to(clip.path)
    url = f"{media_url}/{served.name}"
    status, answer = await transcribe(two_models_service_url, url, model="tiny.en", language="es")
    assert 400 <= status < 500, answer
    assert "language" in answer["error"]["message"]
    status, answer = await transcribe(two_models_service_url, url, model="base", language="es")
    assert status == 200, answer
    assert answer["model"] == "base" and {s["language_code"] for s in answer["segments"]} == {"es"}
    assert wer(clip.reference, answer["text"], english=False) <= 0.35
