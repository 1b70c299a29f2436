"""POST /v1/audio/translations through the official `openai` client: English text from German and Spanish
speech on the multilingual `base`, and a clear 400 naming a multilingual model on the English-only tiny.en.

One Triton serves both models; the service runs as deployed (keys on,
loopback media refused), and the speech is uploaded as `file`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import openai
import pytest
import pytest_asyncio

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.settings import Settings

from ..conftest import TWO_MODELS
from ..corpus import synthetic_speech

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")]
KEY = "openai-translations-key-81c0"
# what the sentences are about (tests/data/synthetic/espeak-*.txt), in English: a translation names most of them
ENGLISH = {"morning", "today", "history", "printing", "europe", "books", "monasteries", "hand", "city", "weeks"}
SPOKEN = {  # words of each recording that a translation into English leaves behind
    "de": {"morgen", "heute", "geschichte", "bücher", "klöstern", "stadt", "wochen", "und", "wurden"},
    "es": {"días", "hoy", "historia", "libros", "monasterios", "mano", "ciudad", "semanas", "los"},
}


@pytest_asyncio.fixture(scope="module")
async def api(two_models_grpc_url: str) -> AsyncIterator[str]:
    settings = Settings(models=TWO_MODELS, triton_grpc_urls=[two_models_grpc_url], api_keys=[KEY])
    async with serving(create_app(settings)) as base:
        yield base


def client(api: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{api}/v1", api_key=KEY, max_retries=0)


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


# On some CPUs `base`'s greedy translation of the Spanish clip stops 7 s early, and its second look at the
# tail ("... and to be able to have a few weeks") scores a mean log-probability of -1.556 against the -1.5 a
# kept decode needs (quality.MIN_KEPT_LOGPROB), so the tail is dropped and 3 of the 4 English words are left;
# on the machine of the last stop it was kept. The same clip's translation through /v1/transcribe
# (test_translate_and_temperature) passes here. Not strict: where the tail is kept, this passes.
DROPPED_TAIL = pytest.mark.xfail(strict=False, reason="a translated tail at the log-probability bound (see above)")


@pytest.mark.parametrize("language", ["de", pytest.param("es", marks=DROPPED_TAIL)])
async def test_speech_in_another_language_comes_back_in_english(api: str, language: str) -> None:
    clip = synthetic_speech(language)
    with clip.path.open("rb") as audio:
        translated = await client(api).audio.translations.create(model="base", file=audio)
    with clip.path.open("rb") as audio:
        transcribed = await client(api).audio.transcriptions.create(model="base", file=audio)
    assert len(words(translated.text) & ENGLISH) >= 4, translated.text
    assert len(words(translated.text) & SPOKEN[language]) <= 2, translated.text
    assert len(words(transcribed.text) & SPOKEN[language]) >= 4, transcribed.text  # the same speech, as spoken


async def test_verbose_json_says_it_is_a_translation_into_english(api: str) -> None:
    with synthetic_speech("de").path.open("rb") as audio:
        result = await client(api).audio.translations.create(model="base", file=audio, response_format="verbose_json")
    assert result.language == "english" and result.segments  # type: ignore[union-attr]
    assert len(words(result.text) & ENGLISH) >= 4


async def test_an_english_only_model_is_a_clear_400_naming_a_multilingual_one(api: str) -> None:
    with synthetic_speech("de").path.open("rb") as audio, pytest.raises(openai.BadRequestError) as raised:
        await client(api).audio.translations.create(model="tiny.en", file=audio)
    error = raised.value.body
    assert isinstance(error, dict) and error["type"] == "invalid_request_error" and error["param"] == "model"
    assert "base" in error["message"] + error["hint"]
