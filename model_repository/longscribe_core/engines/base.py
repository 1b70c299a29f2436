"""Speech -> timestamped text with a CTranslate2 Whisper model.

An engine takes a batch of <= 30 s float32 waveforms and returns one
`ChunkResult` or one exception per item, so a bad item fails alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from longscribe_core.audio import MAX_WINDOW_SAMPLES, SAMPLE_RATE, FloatAudio
from longscribe_core.engines.timestamps import TokenSpan
from longscribe_core.quality import compression_ratio
from longscribe_core.segments import ChunkResult, Segment, Word

MAX_TOTAL_TOKENS = 448  # Whisper's decoder context: prompt + generated
# earlier text kept from a prompt: with <|startofprev|>, the 3-token start and 224 generated tokens,
# the whole stays inside the decoder's 448 positions (openai/whisper keeps 223 and stops early instead)
MAX_PROMPT_TOKENS = 200
MAX_INITIAL_TIMESTAMP_INDEX = 50  # first timestamp within 1 s, as in openai/whisper
MEDIAN_FILTER_WIDTH = 7  # smooths the attention before DTW, as openai/whisper


class InvalidAudio(ValueError):
    """An item the model cannot decode (too long, not finite)."""


LANGUAGE_ERROR = "unsupported language: "  # the prefix of UnsupportedLanguage's message, kept across BLS


TRANSCRIBE, TRANSLATE = "transcribe", "translate"  # Whisper's two decoding tasks, named as its task tokens
TASKS = (TRANSCRIBE, TRANSLATE)
TASK_ERROR = "unsupported task: "  # the prefix of UnsupportedTask's message, kept across BLS and gRPC


class UnsupportedTask(ValueError):
    """A task the loaded model cannot do: translate on an English-only model (it has no task tokens)."""

    def __init__(self, message: str) -> None:
        super().__init__(TASK_ERROR + message)


class UnsupportedLanguage(ValueError):
    """A language the loaded model cannot transcribe (any but English on a `.en` model)."""

    def __init__(self, message: str) -> None:
        super().__init__(LANGUAGE_ERROR + message)


@dataclass(frozen=True)
class EngineConfig:
    """How to load and run the model; filled from config.pbtxt parameters."""

    model_path: str  # a CTranslate2 Whisper directory (see weights.resolve), or a TensorRT-LLM build
    engine: str = "ctranslate2"  # or "tensorrt_llm" (GPU image only)
    device: str = "cpu"
    compute_type: str = "int8"  # int8 on CPU; float16 / int8_float16 on GPU
    threads: int = 0  # intra-op threads; 0 means one per core
    beam_size: int = 1  # greedy by default: the CPU speed/accuracy sweet spot
    max_length: int = MAX_TOTAL_TOKENS  # decoder tokens per window; lower only to test truncation
    # word times from cross-attention: true segment starts, clean cuts. CTranslate2 then transcribes without
    # timestamp tokens and times each sentence by its words: with them, tiny.en skipped speech in long windows
    # (more short re-decodes, more windows); without them it hears whole 30 s windows. False: Whisper's
    # timestamp tokens time the segments (and translations always: English words do not align to speech).
    align_words: bool = True
    max_batch_size: int = 16  # TensorRT-LLM sizes its buffers for this; the Triton model's max_batch_size


class Engine(Protocol):
    """What the `whisper` Triton model needs from an engine."""

    is_multilingual: bool  # False for English-only models (tiny.en, any `.en`): no language or task tokens

    def check_language(self, language: str | None) -> None:
        """Raise UnsupportedLanguage before any work for a language the model lacks."""

    def transcribe(
        self,
        audio: list[FloatAudio],
        language: str | None,
        temperature: float = 0.0,
        prompt: str | None = None,
        task: str = TRANSCRIBE,
    ) -> list[ChunkResult | Exception]:
        """float32 waveforms at 16 kHz, each <= 30 s -> one result or error per item; `prompt` guides spelling.

        `task` "translate" writes English text whatever the language spoken (multilingual models only);
        `language` is then the spoken one, given or detected, and the result reports it."""

    def detect_language(self, audio: list[FloatAudio]) -> list[ChunkResult | Exception]:
        """Each waveform's most likely language and its probability, no text; English on `.en` models."""


ENGINES = ("ctranslate2", "tensorrt_llm")


def _check(audio: FloatAudio) -> FloatAudio:
    if audio.ndim != 1:
        raise InvalidAudio(f"expected mono audio [n], got shape {audio.shape}")
    if len(audio) > MAX_WINDOW_SAMPLES:
        raise InvalidAudio(f"{len(audio) / SAMPLE_RATE:.2f} s is longer than Whisper's 30 s window")
    if not np.all(np.isfinite(audio)):
        raise InvalidAudio("audio holds NaN or infinite samples")
    return audio.astype(np.float32, copy=False)


def checked(audio: list[FloatAudio]) -> tuple[list[ChunkResult | Exception], list[tuple[int, FloatAudio]]]:
    """Results with each bad item's error in place, and the good items to run (every engine's first step)."""
    results: list[ChunkResult | Exception] = [InvalidAudio("not decoded")] * len(audio)
    good: list[tuple[int, FloatAudio]] = []
    for i, item in enumerate(audio):
        try:
            good.append((i, _check(item)))
        except InvalidAudio as exc:
            results[i] = exc
    return results, good


def check_task(task: str, multilingual: bool) -> None:
    """Raise before any work for a task the model cannot do (UnsupportedTask) or one Whisper lacks."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; use one of {TASKS}")
    if task == TRANSLATE and not multilingual:
        raise UnsupportedTask(
            "the loaded Whisper model is English-only and cannot translate; serve a multilingual model "
            "(such as `base`) and ask for it"
        )


def start_sequence(token_id: Callable[[str], int], multilingual: bool, language: str | None, task: str) -> list[int]:
    """The tokens a window's decoding starts from, as openai/whisper's `sot_sequence`.

    Multilingual: <|startoftranscript|> <|lang|> <|transcribe|> or <|translate|>; the language token is
    the spoken language (given or detected) for both tasks. English-only models have neither a
    language nor a task token: <|startoftranscript|> alone, and no translation."""
    check_task(task, multilingual)
    if not multilingual:
        return [token_id("<|startoftranscript|>")]
    return [token_id("<|startoftranscript|>"), token_id(f"<|{language or 'en'}|>"), token_id(f"<|{task}|>")]


def text_language(language: str | None, task: str) -> str | None:
    """The language the decoded text is written in: English for a translation (words split at spaces)."""
    return "en" if task == TRANSLATE else language


def previous_text(tokenizer: Any, prompt: str | None) -> list[int]:
    """`<|startofprev|>` and the prompt's last tokens: how Whisper is given earlier text (openai/whisper)."""
    if not prompt or not prompt.strip():
        return []
    tokens = tokenizer.encode(" " + prompt.strip(), add_special_tokens=False).ids
    return [int(tokenizer.token_to_id("<|startofprev|>")), *tokens[-MAX_PROMPT_TOKENS:]]


def english_only(
    results: list[ChunkResult | Exception], good: list[tuple[int, FloatAudio]]
) -> list[ChunkResult | Exception]:
    """Language detection on an English-only model: every good item is English, for sure."""
    for i, _ in good:
        results[i] = ChunkResult(segments=(), language="en", language_probability=1.0)
    return results


def window_segments(
    spans: list[TokenSpan],
    texts: list[str],
    avg_logprob: float,
    no_speech_prob: float,
    temperature: float,
    words: list[tuple[Word, ...]] | None = None,
) -> tuple[Segment, ...]:
    """One decoded window's spans -> segments, each with the window's scores; empty texts dropped."""
    ratio = compression_ratio(" ".join(texts))
    return tuple(
        Segment(
            span.start_s,
            max(span.start_s, span.end_s),
            text,
            avg_logprob=avg_logprob,
            no_speech_prob=no_speech_prob,
            compression_ratio=ratio,
            temperature=temperature,
            words=span_words,
        )
        for span, text, span_words in zip(spans, texts, words or [() for _ in spans])
        if text
    )
