"""TensorRT-LLM's outputs are checked, not assumed: the prompt echo, the scores, the no-speech probability.

The GPU engine reduces the logits to a few numbers a decode and hands them to these pure
functions; here they run on made-up logits and are compared with the textbook formulas.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from longscribe_core.engines.runtime_output import (
    MIN_TOKENS_TO_JUDGE,
    RuntimeContractError,
    generated_part,
    mean_log_prob,
    no_speech_probability,
    reports_zero_log_probs,
)
from longscribe_core.engines.trtllm import GATHERED_LOGITS, missing_logits

from .test_build_engines import build

SOT, EN, TRANSCRIBE, EOT = 50258, 50259, 50360, 50257


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def logsumexp(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1)
    return top + np.log(np.exp(logits - top[..., None]).sum(axis=-1))


def test_the_prompt_is_cut_off_only_when_the_output_starts_with_it() -> None:
    prompt = [SOT, EN, TRANSCRIBE]
    assert generated_part([SOT, EN, TRANSCRIBE, 11, 12, EOT], prompt) == [11, 12, EOT]
    assert generated_part(np.array([SOT, EN, TRANSCRIBE]), prompt) == []


def test_output_without_the_prompt_fails_loudly_instead_of_losing_tokens() -> None:
    with pytest.raises(RuntimeContractError, match="do not start with the prompt"):
        generated_part([11, 12, 13, 14, EOT], [SOT, EN, TRANSCRIBE])  # a runtime that leaves the prompt out
    with pytest.raises(RuntimeContractError):
        generated_part([SOT, 11], [SOT, EN, TRANSCRIBE])


def test_the_mean_log_prob_is_that_of_the_tokens_chosen() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 4.0, size=(5, 300)).astype(np.float32)
    tokens = rng.integers(0, 300, size=5)
    expected = float(np.mean(log_softmax(logits.astype(np.float64))[np.arange(5), tokens]))
    chosen = logits[np.arange(5), tokens]
    assert mean_log_prob(chosen, logsumexp(logits.astype(np.float64))) == pytest.approx(expected, abs=1e-5)
    assert mean_log_prob([], []) == 0.0
    assert mean_log_prob(chosen, logsumexp(logits.astype(np.float64))) < 0.0  # never the zeros of #276


def test_the_no_speech_probability_is_the_softmax_after_the_start_token() -> None:
    logits = np.array([2.0, 0.5, -1.0, 3.0])
    expected = math.exp(3.0) / np.exp(logits).sum()
    assert no_speech_probability(3.0, float(logsumexp(logits))) == pytest.approx(expected)
    assert no_speech_probability(50.0, 50.0) == 1.0  # one sure token: rounding never takes it past 1


def test_the_runtime_s_greedy_zeros_are_recognised_and_real_scores_are_not() -> None:
    zeros = [[0.0] * MIN_TOKENS_TO_JUDGE, [0.0] * 7]
    assert reports_zero_log_probs(zeros)
    assert not reports_zero_log_probs([[0.0] * MIN_TOKENS_TO_JUDGE, [-0.2, 0.0, -1.3]])
    assert not reports_zero_log_probs([[0.0], [0.0, 0.0]])  # too short to tell a sure token from no score
    assert not reports_zero_log_probs([])


def test_an_engine_that_gathers_no_logits_is_refused_and_build_engines_gathers_them(tmp_path: Path) -> None:
    assert missing_logits({"build_config": {}}) == list(GATHERED_LOGITS)
    assert missing_logits({"build_config": {"gather_context_logits": True}}) == ["gather_generation_logits"]
    done = build("tiny.en", tmp_path)
    assert done.returncode == 0, done.stderr
    decoder_args = [line for line in (tmp_path / "builds.txt").read_text().splitlines() if "/decoder" in line][0]
    flags = {flag.removeprefix("--") for flag in decoder_args.split() if flag.startswith("--gather_")}
    assert missing_logits({"build_config": dict.fromkeys(flags, True)}) == []
