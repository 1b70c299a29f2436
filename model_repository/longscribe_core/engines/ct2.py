"""Whisper on CTranslate2 (CPU, or CUDA where the wheel has it): one `generate` call per batch."""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from longscribe_core.audio import SAMPLE_RATE, FloatAudio
from longscribe_core.engines.base import (
    MAX_INITIAL_TIMESTAMP_INDEX,
    MEDIAN_FILTER_WIDTH,
    TRANSCRIBE,
    EngineConfig,
    UnsupportedLanguage,
    checked,
    english_only,
    previous_text,
    start_sequence,
    text_language,
    window_segments,
)
from longscribe_core.engines.timestamps import TokenSpan, apply_timestamp_rules, split_on_timestamps
from longscribe_core.engines.words import assign_to_spans, sentence_spans, timed_words
from longscribe_core.mel import HOP_LENGTH, N_FRAMES, log_mel
from longscribe_core.segments import ChunkResult, Word, Work


class _Clock:
    """Wall seconds per stage of one batch, shared evenly among its items as their `Work`."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now

    def share(self, n: int, aligned: int) -> Work:
        return Work(windows=1, aligned=aligned, **{k: v / n for k, v in self.seconds.items()})


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
        self._config = config
        self._eot = self._token_id("<|endoftext|>")
        # timestamp ids follow <|notimestamps|>; tokenizer.json does not list them
        self._no_timestamps = self._token_id("<|notimestamps|>")
        self._timestamp_begin = self._no_timestamps + 1
        self.is_multilingual = bool(self._model.is_multilingual)
        self.n_mels = int(self._model.n_mels)

    def _token_id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token}")
        return int(token_id)

    def _prompt(self, language: str | None, task: str = TRANSCRIBE) -> list[int]:
        return start_sequence(self._token_id, self.is_multilingual, language, task)

    def check_language(self, language: str | None) -> None:
        """See `Engine.check_language`."""
        if not language:
            return
        if not self.is_multilingual and language != "en":
            raise UnsupportedLanguage(
                f"the loaded Whisper model is English-only and cannot transcribe language {language!r}; "
                "omit `language` or configure a multilingual model"
            )
        if self._tokenizer.token_to_id(f"<|{language}|>") is None:
            raise UnsupportedLanguage(f"Whisper does not know the language code {language!r}")

    def _languages(self, features: object, requested: str | None, n: int) -> list[str]:
        if not self.is_multilingual:
            return ["en"] * n
        if requested:
            return [requested] * n
        detected = self._model.detect_language(features)
        return [best[0][0].strip("<|>") for best in detected]

    def _encode(self, good: list[tuple[int, FloatAudio]], clock: _Clock | None = None) -> object:
        clock = clock or _Clock()
        mels = np.stack([log_mel(item, self.n_mels) for _, item in good])
        clock.lap("mel_s")
        encoded = self._model.encode(self._ct2.StorageView.from_array(np.ascontiguousarray(mels)))
        clock.lap("encoder_s")
        return encoded

    def detect_language(self, audio: list[FloatAudio]) -> list[ChunkResult | Exception]:
        """See `Engine.detect_language`."""
        results, good = checked(audio)
        if not self.is_multilingual:
            return english_only(results, good)
        if good:
            for (i, _), best in zip(good, self._model.detect_language(self._encode(good))):
                token, probability = best[0]
                results[i] = ChunkResult(segments=(), language=token.strip("<|>"), language_probability=probability)
        return results

    def transcribe(
        self,
        audio: list[FloatAudio],
        language: str | None,
        temperature: float = 0.0,
        prompt: str | None = None,
        task: str = TRANSCRIBE,
    ) -> list[ChunkResult | Exception]:
        """See `Engine.transcribe`."""
        self.check_language(language)
        self._prompt(language, task)  # an unknown task, or translate on an English-only model: before any work
        results, good = checked(audio)
        if not good:
            return results
        # encoded once, for language detection, decoding and word alignment alike
        clock = _Clock()
        encoded = self._encode(good, clock)
        languages = self._languages(encoded, language, len(good))
        previous = previous_text(self._tokenizer, prompt)
        # times from the words: no timestamp tokens to decode (see EngineConfig.align_words); a translation's
        # English words cannot be aligned to the speech, so it keeps Whisper's timestamp tokens
        by_words = self._config.align_words and task == TRANSCRIBE
        no_timestamps = [self._no_timestamps] if by_words else []
        prompts = [previous + self._prompt(lang, task) + no_timestamps for lang in languages]
        config = self._config
        if temperature > 0:
            # the same audio sampled at the same temperature gives the same text, whatever the process decoded
            # before: a transcript does not depend on which replica or how many requests came first
            self._ct2.set_random_seed(sampling_seed([item for _, item in good], temperature))
        outputs = self._model.generate(
            encoded,
            prompts,
            beam_size=config.beam_size if temperature == 0 else 1,
            max_length=config.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=[-1],
            max_initial_timestamp_index=MAX_INITIAL_TIMESTAMP_INDEX,
            # greedy at 0; otherwise sample from the whole distribution, as openai/whisper
            sampling_topk=1 if temperature == 0 else 0,
            sampling_temperature=temperature if temperature > 0 else 1.0,
        )
        decoded = [self._spans(out, len(item) / SAMPLE_RATE, by_words) for (_, item), out in zip(good, outputs)]
        clock.lap("decoder_s")
        timed = self._align(encoded, [d[0] for d in decoded], [len(item) for _, item in good], languages, task)
        clock.lap("alignment_s")
        for (i, _), out, (spans, truncated), lang, item_timed in zip(good, outputs, decoded, languages, timed):
            if by_words:
                spans, words = _sentences(spans, item_timed, truncated)
            else:
                words = assign_to_spans(item_timed, [len(span.tokens) for span in spans])
            result = self._to_result(out, spans, truncated, lang, temperature, words)
            results[i] = replace(result, work=clock.share(len(good), aligned=1 if item_timed else 0))
        return results

    def _spans(self, out: object, duration_s: float, by_words: bool = False) -> tuple[list[TokenSpan], bool]:
        """Timed token spans, and whether the decoder ran out of tokens before the window's end.

        Decoded without timestamp tokens, the text is one span over the whole window until its words are timed."""
        tokens = list(out.sequences_ids[0])  # type: ignore[attr-defined]
        # the rules CTranslate2 already decoded under (the identity here; TensorRT-LLM needs them after the fact)
        rules = (self._timestamp_begin, self._eot, MAX_INITIAL_TIMESTAMP_INDEX)
        ruled = tokens if by_words else apply_timestamp_rules(tokens, *rules)
        spans = split_on_timestamps(ruled, self._timestamp_begin, self._eot, duration_s)
        # CTranslate2 generates at most max_length // 2 tokens (openai/whisper's sample_len is n_ctx // 2)
        truncated = len(tokens) >= self._config.max_length // 2
        unclosed = bool(tokens) and tokens[-1] < self._timestamp_begin
        if truncated and unclosed and spans and not by_words:
            spans = spans[:-1]  # its end is unknown: the caller decodes again from the last closed time
        return spans, truncated

    def _align(
        self,
        encoded: object,
        spans: list[list[TokenSpan]],
        n_samples: list[int],
        languages: list[str],
        task: str = TRANSCRIBE,
    ) -> list[list[tuple[Word, int]]]:
        """Each item's words in order, timed, with their token counts; empty where alignment is off."""
        empty: list[list[tuple[Word, int]]] = [[] for _ in spans]
        texts = [[t for span in item for t in span.tokens] for item in spans]
        todo = [i for i, tokens in enumerate(texts) if tokens]
        if not self._config.align_words or not todo:
            return empty
        # the path must end where the text ends, or DTW stretches the last word over the trailing audio
        mel_frames_per_s = SAMPLE_RATE // HOP_LENGTH
        frames = {
            i: min(N_FRAMES, -(-n_samples[i] // HOP_LENGTH), int(spans[i][-1].end_s * mel_frames_per_s) + 1)
            for i in todo
        }
        # the start sequence names the language, as decoding did: one align call per language in the batch
        for language in {languages[i] for i in todo}:
            group = [i for i in todo if languages[i] == language]
            rows = encoded  # align only the items with text
            if len(group) < len(texts):
                rows = self._ct2.StorageView.from_array(np.asarray(encoded)[group])
            aligned = self._model.align(
                rows,
                self._prompt(language, task),
                [texts[i] for i in group],
                [frames[i] for i in group],
                median_filter_width=MEDIAN_FILTER_WIDTH,
            )
            for i, result in zip(group, aligned):
                decode, written_in = self._tokenizer.decode, text_language(language, task)
                empty[i] = timed_words(texts[i], result.alignments, result.text_token_probs, decode, written_in)
        return empty

    def _to_result(
        self,
        out: object,
        spans: list[TokenSpan],
        truncated: bool,
        language: str,
        temperature: float,
        words: list[tuple[Word, ...]],
    ) -> ChunkResult:
        avg_logprob = float(out.scores[0])  # type: ignore[attr-defined]  # length-normalised
        no_speech_prob = float(out.no_speech_prob)  # type: ignore[attr-defined]
        texts = [self._tokenizer.decode(list(span.tokens)).strip() for span in spans]
        segments = window_segments(spans, texts, avg_logprob, no_speech_prob, temperature, words)
        return ChunkResult(segments=segments, language=language, truncated=truncated)


def sampling_seed(audio: list[FloatAudio], temperature: float) -> int:
    """A seed from the samples and the temperature: reproducible sampling per batch."""
    digest = hashlib.blake2b(repr(temperature).encode(), digest_size=4)
    for item in audio:
        digest.update(np.ascontiguousarray(item).tobytes())
    return int.from_bytes(digest.digest(), "little")


def _sentences(
    spans: list[TokenSpan], timed: list[tuple[Word, int]], truncated: bool
) -> tuple[list[TokenSpan], list[tuple[Word, ...]]]:
    """A window decoded without timestamp tokens: one span per sentence, timed by its words.

    Cut short by the token limit, its last sentence (or, when it has one, its last word) may be
    unfinished: it goes, and the caller decodes again from the end of what is kept."""
    if not spans or not timed:
        return [], []
    tokens = spans[0].tokens
    if truncated:
        sentences, _ = sentence_spans(tokens, timed)
        cut = len(tokens) - len(sentences[-1].tokens) if len(sentences) > 1 else len(tokens) - timed[-1][1]
        kept = list(itertools.takewhile(lambda n: n <= cut, itertools.accumulate(n for _, n in timed)))
        timed, tokens = timed[: len(kept)], tokens[:cut]
    return sentence_spans(tokens, timed)
