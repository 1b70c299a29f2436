"""How a window's decoding starts, for each task, as openai/whisper's `sot_sequence`; both engines share it.

The TensorRT-LLM engine cannot run here (no GPU, no tensorrt_llm): its prompt building is checked on an
engine object built without its runtime, with the real Whisper tokenizers of `base` and `tiny.en`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from longscribe_core import weights
from longscribe_core.engines.base import UnsupportedTask, check_task, start_sequence, text_language
from longscribe_core.engines.trtllm import TensorRTLLMEngine

SOT, EN, DE, TRANSCRIBE, TRANSLATE = 50258, 50259, 50261, 50359, 50358  # multilingual ids, as openai/whisper's
SOT_EN_ONLY = 50257  # <|startoftranscript|> in the English-only vocabulary


@pytest.fixture(scope="module")
def multilingual() -> Tokenizer:
    return Tokenizer.from_file(str(Path(weights.resolve("base")) / "tokenizer.json"))


@pytest.fixture(scope="module")
def english_only() -> Tokenizer:
    return Tokenizer.from_file(str(Path(weights.resolve("tiny.en")) / "tokenizer.json"))


def ids(tokenizer: Tokenizer):  # type: ignore[no-untyped-def]
    return lambda token: int(tokenizer.token_to_id(token))


def test_translation_starts_with_the_spoken_language_and_the_translate_token(multilingual: Tokenizer) -> None:
    assert start_sequence(ids(multilingual), True, "de", "translate") == [SOT, DE, TRANSLATE]
    assert start_sequence(ids(multilingual), True, "de", "transcribe") == [SOT, DE, TRANSCRIBE]
    assert start_sequence(ids(multilingual), True, None, "transcribe") == [SOT, EN, TRANSCRIBE]


def test_an_english_only_model_starts_with_sot_alone_and_cannot_translate(english_only: Tokenizer) -> None:
    assert start_sequence(ids(english_only), False, None, "transcribe") == [SOT_EN_ONLY]
    with pytest.raises(UnsupportedTask, match="English-only.*multilingual model"):
        start_sequence(ids(english_only), False, "en", "translate")


def test_an_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        check_task("summarise", True)
    check_task("translate", True)
    check_task("transcribe", False)


def test_a_translation_is_written_in_english_whatever_was_spoken() -> None:
    assert text_language("ja", "translate") == "en"  # its words are split at spaces
    assert text_language("ja", "transcribe") == "ja"


def trtllm(tokenizer: Tokenizer, is_multilingual: bool) -> TensorRTLLMEngine:
    """The engine's prompt-building half: its tokenizer, without the GPU runtime."""
    engine = object.__new__(TensorRTLLMEngine)
    engine._tokenizer = tokenizer
    engine.is_multilingual = is_multilingual
    return engine


def test_tensorrt_llm_asks_for_translate_as_the_cpu_engine_does(multilingual: Tokenizer) -> None:
    engine = trtllm(multilingual, True)
    assert engine._prompt("es", "translate") == [SOT, multilingual.token_to_id("<|es|>"), TRANSLATE]
    assert engine._prompt("es") == [SOT, multilingual.token_to_id("<|es|>"), TRANSCRIBE]


def test_tensorrt_llm_on_an_english_only_build_refuses_translate_before_touching_the_gpu(
    english_only: Tokenizer,
) -> None:
    engine = trtllm(english_only, False)
    assert engine._prompt(None) == [SOT_EN_ONLY]
    with pytest.raises(UnsupportedTask):
        engine.transcribe([np.zeros(16_000, np.float32)], None, 0.0, None, "translate")
