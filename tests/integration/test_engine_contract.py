"""The contract every whisper engine keeps, so the Triton model and everything above it
do not care which one runs: one suite, run against each engine that can load here.

CI runs it on CTranslate2 (CPU). Each other engine runs where its own needs are met
(tests/engine_gates.py): CTranslate2 on CUDA, the GPU image's default, wherever
CTranslate2 sees a CUDA device; TensorRT-LLM with its package and
LONGSCRIBE_TRTLLM_ENGINE_DIR set to a `docker/build_engines.sh` output. Both are
marked `gpu` (`-m gpu` selects them, `-m "not gpu"` leaves them out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from longscribe_core import weights
from longscribe_core.audio import SAMPLE_RATE
from longscribe_core.engines import load_engine
from longscribe_core.engines.base import Engine, EngineConfig, InvalidAudio, UnsupportedLanguage
from longscribe_core.segments import ChunkResult

from ..corpus import decode_pcm, manifest, wer
from ..engine_gates import skip_reason, trtllm_engine_dir
from ..wer_bounds import JFK_MAX_WER


def gated(engine: str, gpu: bool) -> list[pytest.MarkDecorator]:
    """Each engine skips on its own missing need (engine_gates.skip_reason); the GPU ones carry `gpu`."""
    reason = skip_reason(engine)
    return [pytest.mark.skipif(reason is not None, reason=reason or "")] + ([pytest.mark.gpu] if gpu else [])


def configs() -> list[object]:
    tiny_en = weights.resolve("tiny.en")
    return [
        pytest.param(EngineConfig(model_path=tiny_en, threads=2), id="ctranslate2-cpu"),
        pytest.param(
            EngineConfig(model_path=trtllm_engine_dir(), engine="tensorrt_llm"),
            id="tensorrt_llm",
            marks=gated("tensorrt_llm", gpu=True),
        ),
        pytest.param(
            EngineConfig(model_path=tiny_en, device="cuda", compute_type="float16"),
            id="ctranslate2-cuda",
            marks=gated("ctranslate2-cuda", gpu=True),
        ),
    ]


@pytest.fixture(scope="module", params=configs())
def engine(request: pytest.FixtureRequest) -> Engine:
    return load_engine(request.param)


@pytest.fixture(scope="module")
def jfk() -> tuple[np.ndarray, str]:
    clip = next(c for c in manifest() if c.path.name == "jfk.flac")
    return decode_pcm(clip.path).astype(np.float32) / 32768.0, clip.reference


def test_real_speech_comes_back_as_timed_segments_inside_the_window(
    engine: Engine, jfk: tuple[np.ndarray, str]
) -> None:
    audio, reference = jfk
    (result,) = engine.transcribe([audio], None)
    assert isinstance(result, ChunkResult)
    assert wer(reference, " ".join(s.text for s in result.segments)) <= JFK_MAX_WER
    assert result.language == "en" and not result.truncated
    duration = len(audio) / SAMPLE_RATE
    for segment in result.segments:
        assert 0.0 <= segment.start_s <= segment.end_s <= duration + 0.5


def test_each_item_gets_its_own_answer_and_a_bad_item_fails_alone(engine: Engine, jfk: tuple[np.ndarray, str]) -> None:
    audio, _ = jfk
    nan = audio.copy()
    nan[100] = np.nan
    too_long = np.zeros(31 * SAMPLE_RATE, dtype=np.float32)
    results = engine.transcribe([audio[: 5 * SAMPLE_RATE], nan, too_long, audio], None)
    assert len(results) == 4
    assert isinstance(results[0], ChunkResult) and isinstance(results[3], ChunkResult)
    assert isinstance(results[1], InvalidAudio) and isinstance(results[2], InvalidAudio)
    assert results[3].segments and results[0].segments


def test_language_detection_names_a_language_with_its_probability(engine: Engine, jfk: tuple[np.ndarray, str]) -> None:
    audio, _ = jfk
    results = engine.detect_language([audio, audio[: 3 * SAMPLE_RATE]])
    assert len(results) == 2
    for result in results:
        assert isinstance(result, ChunkResult)
        assert result.language == "en" and result.language_probability is not None
        assert 0.0 < result.language_probability <= 1.0
        assert result.segments == ()


def test_a_language_the_model_lacks_is_refused_before_any_work(engine: Engine) -> None:
    with pytest.raises(UnsupportedLanguage):
        engine.check_language("xx")
    engine.check_language("en")
    engine.check_language(None)


def test_a_prompt_is_given_as_earlier_text_and_capped(engine: Engine, jfk: tuple[np.ndarray, str]) -> None:
    from tokenizers import Tokenizer

    from longscribe_core.engines.base import MAX_PROMPT_TOKENS, previous_text

    audio, reference = jfk
    (result,) = engine.transcribe([audio], None, 0.0, "President Kennedy's inaugural address.")
    assert isinstance(result, ChunkResult)
    assert wer(reference, " ".join(s.text for s in result.segments)) <= JFK_MAX_WER
    tokenizer = Tokenizer.from_file(str(Path(weights.resolve("tiny.en")) / "tokenizer.json"))
    tokens = previous_text(tokenizer, "word " * 1000)
    assert tokens[0] == tokenizer.token_to_id("<|startofprev|>") and len(tokens) == MAX_PROMPT_TOKENS + 1
    assert previous_text(tokenizer, "   ") == []


def test_an_english_only_engine_refuses_to_translate_before_any_work(
    engine: Engine, jfk: tuple[np.ndarray, str]
) -> None:
    from longscribe_core.engines.base import UnsupportedTask

    assert not engine.is_multilingual  # every engine here loads tiny.en (the TensorRT-LLM build: whichever it is)
    with pytest.raises(UnsupportedTask, match="English-only"):
        engine.transcribe([jfk[0]], None, 0.0, None, "translate")


def test_a_sampled_decode_reports_its_temperature_and_still_hears_the_speech(
    engine: Engine, jfk: tuple[np.ndarray, str]
) -> None:
    audio, reference = jfk
    (result,) = engine.transcribe([audio], None, 0.5)
    assert isinstance(result, ChunkResult) and result.segments
    assert {s.temperature for s in result.segments} == {0.5}
    assert wer(reference, " ".join(s.text for s in result.segments)) <= 0.5
