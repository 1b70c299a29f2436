"""Which windows the engine aligns, counted, not timed.

The rule: every window with text is aligned exactly once, whether or not the request asks for words.
CTranslate2 decodes without timestamp tokens (tiny.en skipped speech in long windows with them), so a
window's segment times come from its words: the alignment replaces the timestamp tokens, it is not
an extra. Dropping it, with timestamp tokens back, put segment starts 0.69 s from the true clip
starts on the long form instead of 0.12 s (bench/accuracy.py's clip-start error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from longscribe_core import weights
from longscribe_core.audio import SAMPLE_RATE
from longscribe_core.engines import load_engine
from longscribe_core.engines.base import EngineConfig
from longscribe_core.segments import ChunkResult

from ..corpus import decode_pcm, long_form_recording, manifest
from .test_transcribe_api import post

pytestmark = pytest.mark.integration


class CountingModel:
    """CTranslate2's Whisper model, with every align call's batch recorded."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.aligned_items: list[int] = []

    def align(self, features: Any, start: Any, texts: list[list[int]], frames: list[int], **kw: Any) -> Any:
        self.aligned_items.append(len(texts))
        return self.model.align(features, start, texts, frames, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def test_every_window_with_text_is_aligned_once_and_the_work_report_says_so() -> None:
    engine = load_engine(EngineConfig(model_path=weights.resolve("tiny.en"), threads=2))
    counting = CountingModel(engine._model)  # type: ignore[attr-defined]
    engine._model = counting  # type: ignore[attr-defined]
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    speech = decode_pcm(jfk.path).astype(np.float32) / 32768.0
    silence = np.zeros(5 * SAMPLE_RATE, dtype=np.float32)
    results = engine.transcribe([speech, silence, speech[: 4 * SAMPLE_RATE]], None)
    assert all(isinstance(r, ChunkResult) for r in results)
    with_text = [r for r in results if isinstance(r, ChunkResult) and r.segments]
    assert sum(counting.aligned_items) == len(with_text) >= 2  # one align per window with text, none twice
    assert sum(r.work.windows for r in results if isinstance(r, ChunkResult)) == 3
    assert len(counting.aligned_items) == 1  # the batch's windows in one call
    assert sum(r.work.aligned for r in results if isinstance(r, ChunkResult)) == sum(counting.aligned_items)


async def test_a_request_without_words_aligns_each_window_once_and_no_more(
    service_url: str, media_url: str, media_root: Path
) -> None:
    recording = long_form_recording(media_root / "long-form.wav")
    body = {"media_url": f"{media_url}/long-form.wav", "response_format": "verbose_json"}
    status, out = await post(service_url, {**body, "params": {"word_timestamps": False}})
    assert status == 200, out
    timings = out["timings"]
    assert all("words" not in s for s in out["segments"])
    assert 0 < timings["whisper_aligned"] <= timings["whisper_windows"]
    # windows with text, each once: only a window that heard nothing goes unaligned (measured: all of them,
    # 66 of 66 on the 32-minute bench recording)
    assert timings["whisper_windows"] - timings["whisper_aligned"] <= 1
    # fuller windows: 2.06 per audio minute measured here (2.6 before; faster-whisper batched 2.06)
    assert timings["whisper_windows"] / (recording.duration_s / 60) <= 3.0
