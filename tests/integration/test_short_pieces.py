"""No stock phrases at any micro size: real speech cut into short pieces, between silence, noise, hum and music.

The real micro chunker drives the real tiny.en (CTranslate2, in process:
the Triton path is the same code behind BLS, tested elsewhere).
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt
import pytest

from longscribe_core import weights
from longscribe_core.audio import FloatAudio
from longscribe_core.engines import load_engine
from longscribe_core.engines.base import EngineConfig
from longscribe_core.segmentation.micro import transcribe_macro_chunk
from longscribe_core.segments import ChunkResult

from ..corpus import SAMPLE_RATE, aligned, clips_under, decode_pcm

pytestmark = pytest.mark.integration

MICRO_SIZES_S = [5.0, 8.0, 12.0, 20.0, 30.0]
# Of the 162 words of the whole clips, how many the transcript has in their order (the alignment's hits):
# measured 152 at micro 5 s, 156 at 8 s, 157 at 12 s, 159 at 20 s and 30 s, on 2026-12-03 (0.938 the least).
# Headroom three words under the least: 149 / 162.
MIN_HEARD_IN_ORDER = 0.92
# what Whisper writes for a breath or room noise; checked independently of quality.STOCK_PHRASES
STOCK = re.compile(r"thank(s| you) for (watching|listening)|subscribe|see you (in the )?next|^\W*you\W*$", re.I)


def not_speech(kind: str, seconds: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind == "silence":
        return rng.standard_normal(n) * 30
    if kind == "room noise":
        return rng.standard_normal(n) * 600
    if kind == "hum":
        return 1500 * np.sin(2 * np.pi * 50 * t) + 500 * np.sin(2 * np.pi * 150 * t) + rng.standard_normal(n) * 50
    chord = sum(np.sin(2 * np.pi * f * t) for f in rng.choice([220.0, 262.0, 330.0, 392.0, 440.0], 3))
    return 2500 * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) * chord / 3  # "music"


@pytest.fixture(scope="module")
def recording() -> tuple[npt.NDArray[np.int16], str]:
    """LJ Speech clips, every other one cut to its last 0.6-2 s (the end of a phrase), each followed by 2-6 s
    of silence, room noise, mains hum or music; and the reference of the clips kept whole."""
    rng = np.random.default_rng(5)
    kinds = ["silence", "room noise", "hum", "music"]
    parts, kept = [], []
    for i, clip in enumerate(clips_under("ljspeech")[:16]):
        pcm = decode_pcm(clip.path).astype(np.float64)
        if i % 2:
            pcm = pcm[-int(rng.uniform(0.6, 2.0) * SAMPLE_RATE) :]
        else:
            kept.append(clip.reference)
        parts += [pcm, not_speech(kinds[i % len(kinds)], rng.uniform(2.0, 6.0), rng)]
    audio = np.clip(np.concatenate(parts), -32768, 32767).astype(np.int16)
    return audio, " ".join(kept)


@pytest.fixture(scope="module")
def whisper():  # type: ignore[no-untyped-def]
    engine = load_engine(EngineConfig(model_path=weights.resolve("tiny.en"), threads=2))

    async def transcribe(audio: FloatAudio, temperature: float) -> ChunkResult:
        result = engine.transcribe([audio], "en", temperature)[0]
        if isinstance(result, Exception):
            raise result
        return result

    return transcribe


@pytest.mark.parametrize("micro_s", MICRO_SIZES_S)
async def test_short_pieces_and_pauses_give_no_stock_phrase(
    micro_s: float, recording: tuple[npt.NDArray[np.int16], str], whisper: object
) -> None:
    audio, reference = recording
    out = await transcribe_macro_chunk(audio, micro_s, 1600, whisper)  # type: ignore[arg-type]
    texts = [s.text for s in out.segments]
    print(f"micro {micro_s:g} s: {len(texts)} segments")
    assert not [t for t in texts if STOCK.search(t)]
    # and the guard costs no speech: every whole clip is still heard (fragments only add words)
    heard = " ".join(texts)
    assert len(heard.split()) >= 0.9 * len(reference.split())
    # and those words are the clips' words, in their order: the alignment's hits, not a word count
    hits = aligned(reference, heard).hits
    n_words = len(aligned(reference, reference).references[0])
    print(f"micro {micro_s:g} s: {hits} of {n_words} reference words heard in order")
    assert hits >= MIN_HEARD_IN_ORDER * n_words, f"{hits} of {n_words} reference words heard in order"
