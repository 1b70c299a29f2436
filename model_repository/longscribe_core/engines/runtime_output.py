"""TensorRT-LLM's outputs, checked rather than assumed.

Three things the runtime was trusted with and could get silently wrong:
- `output_ids` echo the prompt before the generated tokens (its Python
  `ModelRunnerCpp`); sliced off unchecked, a runtime that did not echo it would
  lose real tokens. `generated_part` compares, and raises when they differ.
- its own log-probs: at greedy decoding they have been reported as all zeros
  (tensorrtllm_backend#276, TensorRT-LLM#983), and an `avg_logprob` of 0 passes
  every guard built on it (fallback, stock phrases, the kept-text cut). The
  engine computes log-probs from the generation logits instead
  (`mean_log_prob`); `reports_zero_log_probs` tells `make gpu-smoke` whether the
  runtime's own would have been usable.
- no no-speech probability at all: `no_speech_probability` reads it from the
  logits after `<|startoftranscript|>`, as CTranslate2 and openai/whisper do.

Pure, on small arrays the engine brings back from the GPU: tested on the CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MIN_TOKENS_TO_JUDGE = 3  # a decode this long whose every log-prob is exactly 0.0 was not scored at all


class RuntimeContractError(RuntimeError):
    """The runtime returned something the engine's results would silently be wrong on."""


def generated_part(output: Sequence[int], prompt: Sequence[int]) -> list[int]:
    """The tokens after the prompt, which `output` must start with."""
    head = [int(t) for t in output[: len(prompt)]]
    if head != [int(t) for t in prompt]:
        raise RuntimeContractError(
            f"TensorRT-LLM's output_ids do not start with the prompt ({head[:8]}... vs {list(prompt)[:8]}...): "
            "cutting the prompt's length off them would drop real tokens"
        )
    return [int(t) for t in output[len(prompt) :]]


def mean_log_prob(chosen_logits: Sequence[float], log_normalizers: Sequence[float]) -> float:
    """Mean log p(token) over a decode's steps: each step's chosen logit minus the logsumexp of its logits."""
    if len(chosen_logits) == 0:
        return 0.0
    chosen = np.asarray(chosen_logits, dtype=np.float64)
    return float(np.mean(chosen - np.asarray(log_normalizers, dtype=np.float64)))


def no_speech_probability(no_speech_logit: float, log_normalizer: float) -> float:
    """softmax(logits)[<|nospeech|>] at the step after <|startoftranscript|>, from that logit and the logsumexp."""
    return min(1.0, math.exp(float(no_speech_logit) - float(log_normalizer)))


def reports_zero_log_probs(rows: Sequence[Sequence[float]]) -> bool:
    """Whether a runtime's own per-token log-probs are the zeros it reports when it does not score (greedy).

    Judged only on decodes of at least MIN_TOKENS_TO_JUDGE tokens: one very sure
    token can round to exactly 0.0, every token of several hardly ever does."""
    judged = [row for row in rows if len(row) >= MIN_TOKENS_TO_JUDGE]
    return bool(judged) and all(float(x) == 0.0 for row in judged for x in row)
