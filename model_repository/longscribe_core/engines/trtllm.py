"""Whisper on TensorRT-LLM (GPU): the same `Engine` contract as CTranslate2.

Written against TensorRT-LLM 0.16 (the runtime in Triton's 24.12-trtllm image)
and NVIDIA's Whisper example (`examples/whisper/run.py`: `ModelRunnerCpp` with
`is_enc_dec=True`). Engines come from `docker/build_engines.sh`. Not exercised
in CI (no GPU, no TensorRT-LLM there): the contract suite in
`tests/integration/test_engine_contract.py` runs it wherever it imports.

Differences from the CTranslate2 engine, by design of the runtime:
- the prompt keeps timestamps (no `<|notimestamps|>`), so segments are timed as
  on the CPU path; greedy at temperature 0, sampled above it (one
  `SamplingConfig` per call, and the Triton model calls once per temperature);
  `avg_logprob` is the mean log-probability of the generated tokens, computed
  from the generation logits (the runtime's own log-probs have been reported as
  zeros at greedy), and `no_speech_prob` comes from the logits after
  `<|startoftranscript|>`, so the caller's unsure, loop and silence guards work
  as on the CPU path. Both need the decoder built with `--gather_context_logits
  --gather_generation_logits` (`build_engines.sh` does): an engine without them
  fails to load rather than pass every guard (`runtime_output`);
- no word alignment (no cross-attention DTW in the runtime): segments carry no
  words, so the micro chunker's skipped-speech check has nothing to check;
- no timestamp rules in decoding (first within
  1 s, paired, never earlier than the last) nor blank suppression: the rules are
  applied to what the runtime returns (`apply_timestamp_rules`, the same function
  the CTranslate2 path calls), so a backwards timestamp is dropped and its text
  runs on into the next span. Logits processors could apply them while decoding;
  not done.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any

from longscribe_core.audio import SAMPLE_RATE, FloatAudio
from longscribe_core.engines.base import (
    MAX_INITIAL_TIMESTAMP_INDEX,
    MAX_TOTAL_TOKENS,
    TRANSCRIBE,
    EngineConfig,
    UnsupportedLanguage,
    checked,
    english_only,
    previous_text,
    start_sequence,
    window_segments,
)
from longscribe_core.engines.runtime_output import (
    RuntimeContractError,
    generated_part,
    mean_log_prob,
    no_speech_probability,
)
from longscribe_core.engines.timestamps import apply_timestamp_rules, split_on_timestamps
from longscribe_core.engines.torch_mel import torch_log_mel
from longscribe_core.mel import N_FFT, N_FRAMES, mel_filters
from longscribe_core.segments import ChunkResult, Work

LANGUAGE_CODE = re.compile(r"[a-z]{2,3}")  # Whisper's language tokens: <|en|>, <|haw|>, <|yue|>
KV_CACHE_FRACTION = 0.9  # of free GPU memory, as NVIDIA's example
CROSS_KV_CACHE_FRACTION = 0.5  # of that, for the encoder output the decoder attends to
GATHERED_LOGITS = ("gather_context_logits", "gather_generation_logits")  # the decoder's build flags this needs


def missing_logits(decoder_config: dict[str, Any]) -> list[str]:
    """The logits a decoder engine does not gather, of those the scores are computed from."""
    build = decoder_config.get("build_config", {})
    return [flag for flag in GATHERED_LOGITS if not build.get(flag)]


class TensorRTLLMEngine:
    """`model_path` is the build's output: `encoder/`, `decoder/` and the Whisper `tokenizer.json`."""

    def __init__(self, config: EngineConfig) -> None:
        import torch
        from tensorrt_llm.runtime import ModelRunnerCpp
        from tokenizers import Tokenizer

        root = Path(config.model_path)
        decoder_config = json.loads((root / "decoder" / "config.json").read_text())
        missing = missing_logits(decoder_config)
        if missing:  # before the GPU work: without them avg_logprob and no_speech_prob would be made up
            flags = " ".join(f"--{flag}" for flag in missing)
            raise RuntimeContractError(
                f"the decoder engine in {root / 'decoder'} was built without {flags}: rebuild it with "
                "docker/build_engines.sh, whose scores and silence check come from those logits"
            )
        encoder_config = json.loads((root / "encoder" / "config.json").read_text())
        self.n_mels = int(encoder_config["pretrained_config"]["n_mels"])  # 128 for large-v3(-turbo), else 80
        self._torch = torch
        self._config = config
        # newer runtimes ask for generation logits here too; 0.16's may not take the argument
        gather = {"gather_generation_logits": True}
        if "gather_generation_logits" not in inspect.signature(ModelRunnerCpp.from_dir).parameters:
            gather = {}
        self._runner = ModelRunnerCpp.from_dir(
            engine_dir=str(root),
            is_enc_dec=True,
            max_batch_size=config.max_batch_size,
            max_input_len=N_FRAMES,
            max_output_len=config.max_length // 2,
            max_beam_width=config.beam_size,  # at most what the engine was built for (build_engines.sh)
            kv_cache_free_gpu_memory_fraction=KV_CACHE_FRACTION,
            cross_kv_cache_fraction=CROSS_KV_CACHE_FRACTION,
            **gather,
        )
        self._tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        self._eot = self._id("<|endoftext|>")
        self._sot = self._id("<|startoftranscript|>")
        no_speech = self._tokenizer.token_to_id("<|nospeech|>")  # <|nocaptions|> before large-v3
        self._no_speech = int(no_speech if no_speech is not None else self._id("<|nocaptions|>"))
        self._timestamp_begin = self._id("<|notimestamps|>") + 1
        # from the engine, as NVIDIA's run.py: tokenizer.json may omit the timestamp tokens
        self.is_multilingual = int(decoder_config["pretrained_config"]["vocab_size"]) >= 51865
        device = torch.device("cuda")
        self._filters = torch.from_numpy(mel_filters(self.n_mels)).to(device)
        self._window = torch.hann_window(N_FFT, device=device)

    def _id(self, token: str) -> int:
        token_id = self._tokenizer.token_to_id(token)
        if token_id is None:
            raise ValueError(f"tokenizer has no {token}")
        return int(token_id)

    def check_language(self, language: str | None) -> None:
        if language and not self.is_multilingual and language != "en":
            raise UnsupportedLanguage(f"the loaded Whisper engine is English-only and cannot transcribe {language!r}")
        if language and self._tokenizer.token_to_id(f"<|{language}|>") is None:
            raise UnsupportedLanguage(f"Whisper does not know the language code {language!r}")

    def _mel(self, audio: FloatAudio) -> Any:
        """log-mel [n_mels, 3000] on the GPU, float16, the same math as `mel.log_mel`."""
        return torch_log_mel(self._torch, audio, self._filters, self._window, "cuda").half()

    def _prompt(self, language: str | None, task: str = TRANSCRIBE) -> list[int]:
        return start_sequence(self._id, self.is_multilingual, language, task)

    def detect_language(self, audio: list[FloatAudio]) -> list[ChunkResult | Exception]:
        """One decoder step after <|startoftranscript|>: the language token it picks (probability not exposed)."""
        results, good = checked(audio)
        if not self.is_multilingual:
            return english_only(results, good)
        if not good:
            return results
        ids, _, _ = self._generate([item for _, item in good], [[self._sot]] * len(good), 1, 0.0)
        for (i, _), tokens in zip(good, ids):
            # free decoding, not limited to language tokens: anything else means "not sure", not a language
            token = str(self._tokenizer.id_to_token(tokens[0])) if tokens else ""
            code = token.strip("<|>")
            known = token.startswith("<|") and LANGUAGE_CODE.fullmatch(code) is not None
            results[i] = ChunkResult(segments=(), language=code if known else None, language_probability=None)
        return results

    def _generate(
        self, audio: list[FloatAudio], prompts: list[list[int]], max_new_tokens: int, temperature: float
    ) -> tuple[list[list[int]], list[float], list[float]]:
        """Per item: generated token ids (prompt excluded), their mean log-probability, the no-speech probability."""
        torch = self._torch
        mels = [self._mel(item).transpose(0, 1).contiguous() for item in audio]  # [frames, n_mels] each
        lengths = torch.full((len(audio),), N_FRAMES, dtype=torch.int32, device="cuda")
        outputs = self._runner.generate(
            batch_input_ids=[torch.tensor(p, dtype=torch.int32) for p in prompts],
            encoder_input_features=mels,
            encoder_output_lengths=lengths // 2,
            max_new_tokens=max_new_tokens,
            end_id=self._eot,
            pad_id=self._eot,
            num_beams=self._config.beam_size if temperature == 0 else 1,
            # greedy at 0; otherwise sample from the whole distribution, as openai/whisper
            **({"temperature": temperature, "top_k": 0, "top_p": 1.0} if temperature > 0 else {}),
            output_sequence_lengths=True,
            output_generation_logits=True,
            return_dict=True,
        )
        torch.cuda.synchronize()
        if "generation_logits" not in outputs or "context_logits" not in outputs:
            raise RuntimeContractError(f"TensorRT-LLM returned no logits to score with ({sorted(outputs)})")
        ids = outputs["output_ids"].cpu().numpy()
        ends = outputs["sequence_lengths"].cpu().numpy()
        steps_logits = outputs["generation_logits"]  # [batch, beams, steps, vocab], on the GPU
        prompt_logits = outputs["context_logits"]  # [batch, prompt length, vocab]
        tokens, scores, no_speech = [], [], []
        for b, prompt in enumerate(prompts):
            generated = generated_part(ids[b][0][: int(ends[b][0])], prompt)
            tokens.append([t for t in generated if t != self._eot])
            # log p(token) = logit - logsumexp(logits), reduced on the GPU to two numbers a step
            steps = steps_logits[b, 0, : len(generated)].float()
            scored = torch.tensor(generated[: steps.shape[0]], device=steps.device, dtype=torch.long)
            chosen = steps.gather(1, scored[:, None])[:, 0]
            scores.append(mean_log_prob(chosen.cpu().numpy(), torch.logsumexp(steps, 1).cpu().numpy()))
            after_sot = prompt_logits[b, prompt.index(self._sot)].float()
            no_speech.append(
                no_speech_probability(float(after_sot[self._no_speech]), float(torch.logsumexp(after_sot, 0)))
            )
        return tokens, scores, no_speech

    def transcribe(
        self,
        audio: list[FloatAudio],
        language: str | None,
        temperature: float = 0.0,
        prompt: str | None = None,
        task: str = TRANSCRIBE,
    ) -> list[ChunkResult | Exception]:
        self.check_language(language)
        self._prompt(language, task)  # an unknown task, or translate on an English-only model: before any work
        results, good = checked(audio)
        if not good:
            return results
        languages = (
            [language] * len(good)
            if language or not self.is_multilingual
            else [
                r.language if isinstance(r, ChunkResult) else None for r in self.detect_language([a for _, a in good])
            ]
        )
        previous = previous_text(self._tokenizer, prompt)  # the decoder engine takes up to 208 input tokens
        prompts = [previous + self._prompt(lang, task) for lang in languages]
        budget = min(self._config.max_length, MAX_TOTAL_TOKENS) // 2
        generated, scores, no_speech = self._generate([item for _, item in good], prompts, budget, temperature)
        for (i, item), tokens, score, silent, lang in zip(good, generated, scores, no_speech, languages):
            # decoded without Whisper's timestamp rules: applied here, as CTranslate2 applies them while decoding
            ruled = apply_timestamp_rules(tokens, self._timestamp_begin, self._eot, MAX_INITIAL_TIMESTAMP_INDEX)
            spans = split_on_timestamps(ruled, self._timestamp_begin, self._eot, len(item) / SAMPLE_RATE)
            truncated = len(tokens) >= budget
            if truncated and tokens and tokens[-1] < self._timestamp_begin and spans:
                spans = spans[:-1]
            texts = [self._tokenizer.decode(list(span.tokens)).strip() for span in spans]
            segments = window_segments(spans, texts, score, silent, temperature)
            # one window each; the encoder and decoder run inside one engine call, untimed apart
            results[i] = ChunkResult(
                segments=segments, language=lang or "en", truncated=truncated, work=Work(windows=1)
            )
        return results
