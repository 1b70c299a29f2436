"""Merged timed text -> the API's answer, every field filled; `formats` decides what is shown. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from longscribe_core.assembly import TimedText, join_text
from orchestrator.assemble.speakers import speaker_of
from orchestrator.languages import language_name
from orchestrator.schemas import Segment, TranscribeOutput, WordOut

TIME_DECIMALS = 3  # milliseconds, as SRT and WebVTT write them


def _confidence(t: TimedText) -> float | None:
    """Mean word probability; without words, the window's mean token probability."""
    if t.words:
        return sum(w.probability for w in t.words) / len(t.words)
    return math.exp(t.scores.avg_logprob) if t.scores is not None else None


def segment(t: TimedText, with_words: bool) -> Segment:
    scores = t.scores
    return Segment(
        start_time_sec=round(t.start_s, TIME_DECIMALS),
        end_time_sec=round(t.end_s, TIME_DECIMALS),
        text=t.text,
        language=language_name(t.language),
        language_code=t.language,
        speaker=speaker_of(t),
        words=[
            WordOut(
                word=w.text,
                start_time_sec=round(w.start_s, TIME_DECIMALS),
                end_time_sec=round(w.end_s, TIME_DECIMALS),
                probability=round(w.probability, 4),
                speaker=w.speaker,
            )
            for w in t.words
        ]
        if with_words
        else None,
        avg_logprob=scores.avg_logprob if scores else None,
        no_speech_prob=scores.no_speech_prob if scores else None,
        compression_ratio=scores.compression_ratio if scores else None,
        temperature=scores.temperature if scores else None,
        confidence=_confidence(t),
    )


def main_language(timed: Sequence[TimedText]) -> str | None:
    """The language spoken longest."""
    spoken: dict[str, float] = {}
    for t in timed:
        if t.language:
            spoken[t.language] = spoken.get(t.language, 0.0) + t.end_s - t.start_s
    return max(spoken, key=spoken.__getitem__) if spoken else None


def build(timed: Sequence[TimedText], duration_s: float, elapsed_s: float, with_words: bool) -> TranscribeOutput:
    code = main_language(timed)
    return TranscribeOutput(
        segments=[segment(t, with_words) for t in timed],
        input_duration_sec=duration_s,
        processing_duration_sec=elapsed_s,
        speedup=duration_s / elapsed_s if elapsed_s > 0 else 0.0,
        text=join_text(timed),
        language=language_name(code),
        language_code=code,
    )
