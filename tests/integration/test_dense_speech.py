"""A window whose speech needs more tokens than the decoder may write loses nothing: real model, real speech."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from longscribe_core import weights
from longscribe_core.audio import MAX_WINDOW_SAMPLES, SAMPLE_RATE
from longscribe_core.engines.base import EngineConfig
from longscribe_core.engines.ct2 import CTranslate2Engine
from longscribe_core.segmentation.micro import transcribe_macro_chunk
from longscribe_core.segments import ChunkResult

from ..corpus import clips_under, decode_pcm, wer

pytestmark = pytest.mark.integration

TIGHT_MAX_LENGTH = 80  # 40 generated tokens: a 30 s window of read speech needs about 100


def dense_window() -> tuple[np.ndarray, str]:
    """30 s of LJ Speech clips joined with short pauses, and their reference."""
    pieces, words = [], []
    for clip in clips_under("ljspeech"):
        pcm = decode_pcm(clip.path)
        if sum(len(p) for p in pieces) + len(pcm) + 4000 > MAX_WINDOW_SAMPLES:
            break
        pieces += [pcm, np.zeros(4000, np.int16)]
        words.append(clip.reference)
    return np.concatenate(pieces), " ".join(words)


def transcribe_with(engine: CTranslate2Engine, pcm: np.ndarray) -> tuple[ChunkResult, list[ChunkResult]]:
    raw: list[ChunkResult] = []

    async def whisper(audio: np.ndarray, temperature: float) -> ChunkResult:
        result = engine.transcribe([audio], None, temperature)[0]
        assert isinstance(result, ChunkResult)
        raw.append(result)
        return result

    out = asyncio.run(transcribe_macro_chunk(pcm, 30.0, 1600, whisper))
    return out, raw


def test_a_window_cut_short_by_the_token_limit_is_finished_without_losing_words() -> None:
    pcm, reference = dense_window()
    tight = CTranslate2Engine(EngineConfig(weights.resolve("tiny.en"), threads=2, max_length=TIGHT_MAX_LENGTH))
    out, raw = transcribe_with(tight, pcm)
    assert raw[0].truncated, "the first decode must really hit the token limit"
    assert len(raw) >= 2
    text = " ".join(s.text for s in out.segments)
    print(f"{len(pcm) / SAMPLE_RATE:.1f} s in {len(raw)} decodes: WER {wer(reference, text):.3f}")
    assert wer(reference, text) <= 0.1
    ends = [s.end_s for s in out.segments]
    assert ends == sorted(ends)
