"""No stock phrases on short or quiet pieces: decoder signals and speech energy decide, a list only guards."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from longscribe_core.audio import SAMPLE_RATE
from longscribe_core.quality import STOCK_PHRASES, is_stock_phrase
from longscribe_core.segmentation.micro import transcribe_macro_chunk
from longscribe_core.segments import ChunkResult, Segment

from .test_micro_chunk_model import SMOOTHING, speech


def with_speech(speech_s: float, total_s: float = 8.0) -> npt.NDArray[np.int16]:
    """`speech_s` of loud noise standing in for speech, then quiet to `total_s`."""
    pcm = np.zeros(int(total_s * SAMPLE_RATE), dtype=np.int16)
    pcm[: int(speech_s * SAMPLE_RATE)] = speech(speech_s, pause_every_s=100.0)
    return pcm


def saying(text: str, avg_logprob: float, no_speech_prob: float):  # type: ignore[no-untyped-def]
    async def whisper(audio: npt.NDArray[np.float32], temperature: float = 0.0) -> ChunkResult:
        end_s = len(audio) / SAMPLE_RATE
        return ChunkResult((Segment(0.0, end_s, text, avg_logprob, no_speech_prob),), "en")

    return whisper


@pytest.mark.parametrize(
    "text", ["Thank you for watching, thank you for", "Thanks for watching!", "you.", "Please subscribe."]
)
async def test_a_stock_phrase_from_a_breath_is_dropped(text: str) -> None:
    out = await transcribe_macro_chunk(with_speech(0.4), 8.0, SMOOTHING, saying(text, -0.3, 0.05))
    assert out.segments == ()


async def test_a_stock_phrase_the_decoder_is_unsure_of_is_dropped_even_over_speech() -> None:
    out = await transcribe_macro_chunk(with_speech(3.0), 8.0, SMOOTHING, saying("Thanks for watching.", -0.8, 0.05))
    assert out.segments == ()
    out = await transcribe_macro_chunk(with_speech(3.0), 8.0, SMOOTHING, saying("Thanks for watching.", -0.2, 0.4))
    assert out.segments == ()


async def test_a_stock_phrase_said_clearly_is_kept() -> None:
    out = await transcribe_macro_chunk(with_speech(3.0), 8.0, SMOOTHING, saying("Thanks for watching.", -0.2, 0.02))
    assert [s.text for s in out.segments] == ["Thanks for watching."]


@pytest.mark.parametrize("text", ["Thank you.", "You know what I mean.", "Thank you for the food."])
async def test_ordinary_short_speech_is_no_stock_phrase(text: str) -> None:
    assert not is_stock_phrase(text)
    out = await transcribe_macro_chunk(with_speech(0.6), 8.0, SMOOTHING, saying(text, -0.3, 0.05))
    assert [s.text for s in out.segments] == [text]


def test_every_listed_phrase_and_its_beginnings_are_recognised() -> None:
    for phrase in STOCK_PHRASES:
        assert is_stock_phrase(phrase.capitalize() + ".")
    assert is_stock_phrase("Thank you for watching. Thank you for")
    assert not is_stock_phrase("Thank you for watching the kids while I was out.")
