"""Translate needs a multilingual model: an English-only one is refused from settings alone, naming one that can."""

from __future__ import annotations

import pytest

from orchestrator.errors import InvalidRequest, TranslationUnsupported
from orchestrator.infer.catalogue import Catalogue, ServedModel
from orchestrator.settings import Settings


@pytest.mark.parametrize(
    "source",
    ["tiny.en", "base.en", "distil-small.en", "Systran/faster-whisper-small.en@abc123", "/models/whisper-tiny.en/"],
)
def test_models_named_dot_en_are_english_only(source: str) -> None:
    assert ServedModel("m", source, "whisper").english_only
    assert ServedModel(source.split("@")[0], "/models/plain", "whisper").english_only


@pytest.mark.parametrize("source", ["base", "large-v3", "turbo", "Systran/faster-whisper-small", "/models/english"])
def test_multilingual_names_are_not(source: str) -> None:
    assert not ServedModel("m", source, "whisper").english_only


def test_translate_on_the_english_only_default_names_the_served_multilingual_model() -> None:
    catalogue = Catalogue.from_settings(Settings(models=["tiny.en", "base"]))
    with pytest.raises(TranslationUnsupported) as refused:
        catalogue.pick(None, "translate")
    assert refused.value.status == 422 and isinstance(refused.value, InvalidRequest)
    assert "'tiny.en' is English-only" in refused.value.message and "'base'" in refused.value.message
    assert "params.model='base'" in refused.value.hint
    assert catalogue.pick("base", "translate").name == "base"
    assert catalogue.pick(None, "transcribe").name == "tiny.en"


def test_a_service_with_no_multilingual_model_is_told_to_serve_one() -> None:
    with pytest.raises(TranslationUnsupported) as refused:
        Catalogue.from_settings(Settings()).pick(None, "translate")
    assert "serves no multilingual model" in refused.value.message and "'base'" in refused.value.message
    assert "--model base" in refused.value.hint and "LONGSCRIBE_MODELS" in refused.value.hint
