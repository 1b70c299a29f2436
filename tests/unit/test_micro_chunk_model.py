"""The micro-chunk model: a macro chunk -> pieces cut at pauses -> segments, with a fake Whisper."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longscribe_core.audio import MAX_WINDOW_SAMPLES, SAMPLE_RATE, int16_to_float
from longscribe_core.quality import FALLBACK_TEMPERATURES
from longscribe_core.segmentation.micro import (
    CUT_OVERLAP_S,
    CUT_SEARCH_S,
    MAX_TAIL_ROUNDS,
    TRAIL_PAD,
    decode_with_fallback,
    transcribe_macro_chunk,
)
from longscribe_core.segments import ChunkResult, Segment, Word, Work, decode_result, encode_result

SMOOTHING = 1600


class FakeWhisper:
    """One segment per call, from 0 to `stop(call number, samples)` seconds; records calls and concurrency.

    The first call is always confident; later ones (tails, in the tail tests) use `avg_logprob`.
    """

    def __init__(self, stop: Callable[[int, int], float] | None = None, avg_logprob: float = -0.2) -> None:
        self.stop = stop or (lambda _call, n: n / SAMPLE_RATE)
        self.avg_logprob = avg_logprob
        self.calls: list[npt.NDArray[np.float32]] = []
        self.temperatures: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, audio: npt.NDArray[np.float32], temperature: float = 0.0) -> ChunkResult:
        call = len(self.calls)
        self.calls.append(audio.copy())
        self.temperatures.append(temperature)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        await asyncio.sleep(0.002)
        self.in_flight -= 1
        logprob = self.avg_logprob if call else -0.2
        segment = Segment(0.0, self.stop(call, len(audio)), f"piece {call}", avg_logprob=logprob)
        return ChunkResult(segments=(segment,), language="en")


def speech(seconds: float, seed: int = 0, pause_every_s: float = 3.7) -> npt.NDArray[np.int16]:
    """Loud int16 noise with 0.4 s pauses, so the cutter has somewhere to cut."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    pcm: npt.NDArray[np.int16] = (rng.integers(2000, 20_000, n) * rng.choice([-1, 1], n)).astype(np.int16)
    for start in np.arange(pause_every_s, seconds, pause_every_s):
        i = int(start * SAMPLE_RATE)
        pcm[i : i + int(0.4 * SAMPLE_RATE)] = 0
    return pcm


def run(pcm: npt.NDArray[np.int16], max_s: float, fake: FakeWhisper) -> ChunkResult:
    """Outside pytest-asyncio's loop, so hypothesis can drive it from a plain test."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(transcribe_macro_chunk(pcm, max_s, SMOOTHING, fake))
    finally:
        loop.close()


def located(pcm: npt.NDArray[np.int16], audio: npt.NDArray[np.float32]) -> int:
    """Where a piece sent to the fake starts in the chunk (the test audio is random, so a match is unique)."""
    whole = int16_to_float(pcm).tobytes()
    k = int(np.argmax(audio != 0))  # match from the first sound: pauses are all alike
    return whole.find(audio[k : k + 16].tobytes()) // 4 - k


class GridWhisper(FakeWhisper):
    """Hears the words of a global grid, one every 0.5 s and 0.3 s long, wholly inside the piece it is sent."""

    def __init__(self, pcm: npt.NDArray[np.int16]) -> None:
        super().__init__()
        self.pcm = pcm

    async def __call__(self, audio: npt.NDArray[np.float32], temperature: float = 0.0) -> ChunkResult:
        self.calls.append(audio.copy())
        start_s = located(self.pcm, audio) / SAMPLE_RATE
        end_s = start_s + len(audio) / SAMPLE_RATE
        first, last = int(np.ceil(start_s / 0.5)), int(np.floor((end_s - 0.3) / 0.5))
        words = tuple(Word(k * 0.5 - start_s, k * 0.5 + 0.3 - start_s, f" w{k}", 0.9) for k in range(first, last + 1))
        if not words:
            return ChunkResult(segments=(), language="en")
        text = "".join(w.text for w in words).strip()
        return ChunkResult(segments=(Segment(words[0].start_s, words[-1].end_s, text, words=words),), language="en")


def heard(result: ChunkResult) -> list[int]:
    return [int(w.text.strip()[1:]) for s in result.segments for w in s.words]


@given(st.floats(0.1, 40.0), st.floats(1.0, 30.0), st.integers(0, 1000))
@settings(max_examples=25, deadline=None)
def test_pieces_cover_the_chunk_and_segments_come_back_in_chunk_time_in_order(
    seconds: float, max_s: float, seed: int
) -> None:
    pcm = speech(seconds, seed)
    fake = FakeWhisper()
    out = run(pcm, max_s, fake)
    starts = [located(pcm, c) for c in fake.calls]
    covered = np.zeros(len(pcm), dtype=bool)
    for start, call in zip(starts, fake.calls):
        covered[start : start + len(call)] = True
        assert len(call) <= min(MAX_WINDOW_SAMPLES, int(max_s * SAMPLE_RATE) + 2 * int(CUT_OVERLAP_S * SAMPLE_RATE))
    assert (covered | (pcm == 0)).all()  # only pauses may go unheard
    assert all(0 <= s.start_s <= s.end_s <= seconds + 1e-6 for s in out.segments)
    assert [s.start_s for s in out.segments] == sorted(s.start_s for s in out.segments)
    assert out.language == "en"


@pytest.mark.parametrize("max_s", [3.0, 8.0, 13.0])
async def test_cuts_inside_speech_neither_lose_nor_double_a_word(max_s: float) -> None:
    """Speech without a single pause: every cut falls in a word, and every word comes back once."""
    pcm = speech(40.0, seed=7, pause_every_s=1000.0)
    fake = GridWhisper(pcm)
    out = await transcribe_macro_chunk(pcm, max_s, SMOOTHING, fake)
    every_word = list(range(0, int((40.0 - 0.3) / 0.5) + 1))
    assert heard(out) == every_word
    assert len(fake.calls) > 40.0 / max_s  # it really was cut


async def test_pieces_are_cut_at_a_pause_in_their_last_seconds_so_windows_are_nearly_full() -> None:
    pcm = speech(120.0, seed=3, pause_every_s=3.7)
    fake = FakeWhisper()
    await transcribe_macro_chunk(pcm, 20.0, SMOOTHING, fake)
    lengths = [len(c) / SAMPLE_RATE for c in fake.calls]
    assert all(20.0 - CUT_SEARCH_S <= n <= 20.0 for n in lengths[:-1]), lengths


async def test_a_window_ends_shortly_after_its_last_speech() -> None:
    """The word alignment's path runs to the window's end: a trailing pause would stretch the last word."""
    pcm = np.concatenate([speech(10.0, pause_every_s=100.0), np.zeros(5 * SAMPLE_RATE, dtype=np.int16)])
    fake = FakeWhisper()
    await transcribe_macro_chunk(pcm, 30.0, SMOOTHING, fake)
    (window,) = fake.calls
    assert 10.0 * SAMPLE_RATE + TRAIL_PAD <= len(window) <= 10.0 * SAMPLE_RATE + TRAIL_PAD + SMOOTHING


async def test_cuts_in_pauses_are_decoded_without_overlap() -> None:
    pcm = speech(40.0, seed=7, pause_every_s=3.7)
    fake = FakeWhisper()
    await transcribe_macro_chunk(pcm, 8.0, SMOOTHING, fake)
    np.testing.assert_array_equal(np.concatenate(fake.calls), int16_to_float(pcm))


async def test_a_tail_left_uncovered_while_loud_is_decoded_again() -> None:
    pcm = speech(10.0, pause_every_s=100.0)
    fake = FakeWhisper(stop=lambda call, n: 5.0 if call == 0 else n / SAMPLE_RATE)
    out = await transcribe_macro_chunk(pcm, 10.0, SMOOTHING, fake)
    assert len(fake.calls) == 2
    np.testing.assert_array_equal(fake.calls[1], int16_to_float(pcm[5 * SAMPLE_RATE :]))
    assert [(s.start_s, s.end_s) for s in out.segments] == [(0.0, 5.0), (5.0, 10.0)]


async def test_a_silent_tail_is_not_decoded_again() -> None:
    pcm = speech(10.0, pause_every_s=100.0)
    # room noise under the speech level, though not so far under it that the pause is shortened
    pcm[5 * SAMPLE_RATE :] = 820 * np.sign(pcm[5 * SAMPLE_RATE :])
    fake = FakeWhisper(stop=lambda _call, _n: 5.5)
    out = await transcribe_macro_chunk(pcm, 10.0, SMOOTHING, fake)
    assert len(fake.calls) == 1
    assert [(s.start_s, s.end_s) for s in out.segments] == [(0.0, 5.5)]


async def test_a_tail_under_a_second_is_not_decoded_again() -> None:
    fake = FakeWhisper(stop=lambda _call, n: n / SAMPLE_RATE - 0.9)
    await transcribe_macro_chunk(speech(10.0, pause_every_s=100.0), 10.0, SMOOTHING, fake)
    assert len(fake.calls) == 1


async def test_tail_decoding_stops_after_the_allowed_rounds() -> None:
    fake = FakeWhisper(stop=lambda _call, n: n / SAMPLE_RATE / 2)
    out = await transcribe_macro_chunk(speech(10.0, pause_every_s=100.0), 10.0, SMOOTHING, fake)
    assert len(fake.calls) == 1 + MAX_TAIL_ROUNDS
    assert [s.start_s for s in out.segments] == [0.0, 5.0, 7.5]


async def test_an_unconfident_tail_transcript_is_discarded_after_one_greedy_look() -> None:
    fake = FakeWhisper(stop=lambda call, n: 5.0 if call == 0 else n / SAMPLE_RATE, avg_logprob=-2.5)
    out = await transcribe_macro_chunk(speech(10.0, pause_every_s=100.0), 10.0, SMOOTHING, fake)
    # a second look is decoded greedily once, not up the whole fallback ladder
    assert fake.temperatures == [0.0, 0.0]
    assert [(s.start_s, s.end_s) for s in out.segments] == [(0.0, 5.0)]


@pytest.mark.parametrize("max_s", [0.0, -1.0, 30.01, 31.0, float("nan")])
async def test_a_micro_size_outside_zero_to_thirty_seconds_is_refused(max_s: float) -> None:
    fake = FakeWhisper()
    with pytest.raises(ValueError):
        await transcribe_macro_chunk(speech(2.0), max_s, SMOOTHING, fake)
    assert fake.calls == []


async def test_a_thirty_second_micro_size_is_accepted() -> None:
    fake = FakeWhisper()
    out = await transcribe_macro_chunk(speech(31.0), 30.0, SMOOTHING, fake)
    assert len(fake.calls) == 2
    assert len(out.segments) == 2


async def test_pieces_are_transcribed_concurrently() -> None:
    fake = FakeWhisper()
    await transcribe_macro_chunk(speech(60.0), 5.0, SMOOTHING, fake)
    assert len(fake.calls) >= 12
    assert fake.max_in_flight == len(fake.calls)


async def test_an_empty_chunk_gives_no_segments_and_no_calls() -> None:
    fake = FakeWhisper()
    out = await transcribe_macro_chunk(np.zeros(0, dtype=np.int16), 30.0, SMOOTHING, fake)
    assert out == ChunkResult(segments=(), language=None)
    assert fake.calls == []


async def test_the_chunk_language_is_the_first_pieces_even_when_it_answers_last() -> None:
    async def slow_first(audio: npt.NDArray[np.float32], temperature: float) -> ChunkResult:
        first = len(audio) and audio[0] == int16_to_float(pcm[:1])[0] and not answered
        await asyncio.sleep(0.05 if first else 0.0)
        answered.append(True)
        return ChunkResult(segments=(Segment(0.0, len(audio) / SAMPLE_RATE, "x"),), language="de" if first else "en")

    answered: list[bool] = []
    pcm = speech(70.0, seed=3)
    pcm[0] = 12_345  # marks the first piece
    result = await transcribe_macro_chunk(pcm, 30.0, SMOOTHING, slow_first)
    assert result.language == "de"


async def test_a_piece_the_decoder_calls_silence_is_dropped() -> None:
    async def hallucinating(audio: npt.NDArray[np.float32], temperature: float) -> ChunkResult:
        seg = Segment(0.0, len(audio) / SAMPLE_RATE, "you", avg_logprob=-1.3, no_speech_prob=0.8)
        return ChunkResult(segments=(seg,), language="en")

    result = await transcribe_macro_chunk(speech(20.0), 30.0, SMOOTHING, hallucinating)
    assert result.segments == ()


def scripted(*answers: tuple[str, float, float, float]) -> Callable[..., Awaitable[ChunkResult]]:
    """A Whisper that answers (text, avg_logprob, no_speech_prob, compression_ratio) per temperature."""
    by_temperature = dict(zip(FALLBACK_TEMPERATURES, answers))

    async def whisper(audio: npt.NDArray[np.float32], temperature: float) -> ChunkResult:
        text, logprob, no_speech, ratio = by_temperature.get(temperature, answers[-1])
        seg = Segment(0.0, len(audio) / SAMPLE_RATE, text, logprob, no_speech, ratio, temperature)
        return ChunkResult(segments=(seg,), language="en")

    return whisper


LOOP = ("go on. " * 30, -0.2, 0.1, 9.0)
GOOD = ("the real words", -0.3, 0.1, 1.2)


async def test_a_repetition_loop_is_decoded_again_hotter_and_the_clean_decode_kept() -> None:
    result = await decode_with_fallback(np.ones(16_000, np.float32), scripted(LOOP, GOOD))
    assert result is not None
    assert [(s.text, s.temperature) for s in result.segments] == [("the real words", 0.2)]


async def test_a_loop_that_survives_every_temperature_is_dropped() -> None:
    assert await decode_with_fallback(np.ones(16_000, np.float32), scripted(LOOP)) is None


async def test_a_window_the_decoder_calls_silent_is_not_sampled_hotter() -> None:
    calls: list[float] = []
    inner = scripted(("Thank you for watching.", -1.4, 0.9, 1.1))

    async def whisper(audio: npt.NDArray[np.float32], temperature: float) -> ChunkResult:
        calls.append(temperature)
        return await inner(audio, temperature)

    assert await decode_with_fallback(np.ones(16_000, np.float32), whisper) is None
    assert calls == [0.0]


async def test_a_hot_sample_that_is_still_unsure_never_replaces_the_greedy_decode() -> None:
    babble = ("a", -2.9, 0.3, 0.1)
    stock_phrase = ("I'm going to go back to the next video.", -1.8, 0.3, 0.9)
    assert await decode_with_fallback(np.ones(16_000, np.float32), scripted(babble, stock_phrase, babble)) is None

    hard_speech = ("the words we could make out", -1.3, 0.2, 1.1)
    result = await decode_with_fallback(np.ones(16_000, np.float32), scripted(hard_speech, stock_phrase))
    assert result is not None
    assert [(s.text, s.temperature) for s in result.segments] == [(hard_speech[0], 0.0)]


async def test_text_without_a_letter_or_digit_is_not_speech() -> None:
    result = await decode_with_fallback(np.ones(16_000, np.float32), scripted((". . . ♪", -0.3, 0.1, 1.2)))
    assert result is not None and result.segments == ()


async def test_a_window_cut_short_by_the_token_limit_is_finished_from_its_last_closed_time() -> None:
    pcm = speech(20.0, pause_every_s=100.0)
    calls: list[int] = []

    async def whisper(audio: npt.NDArray[np.float32], temperature: float) -> ChunkResult:
        calls.append(len(audio))
        if len(calls) == 1:  # ran out of tokens after 8 s of a 20 s window
            return ChunkResult(segments=(Segment(0.0, 8.0, "first part"),), language="en", truncated=True)
        return ChunkResult(segments=(Segment(0.0, len(audio) / SAMPLE_RATE, "the rest"),), language="en")

    out = await transcribe_macro_chunk(pcm, 30.0, SMOOTHING, whisper)
    assert [s.text for s in out.segments] == ["first part", "the rest"]
    assert calls == [len(pcm), len(pcm) - 8 * SAMPLE_RATE]


async def test_a_chunks_work_sums_every_decode_it_ran_including_the_ones_it_dropped() -> None:
    class CostedWhisper(FakeWhisper):
        async def __call__(self, audio: npt.NDArray[np.float32], temperature: float = 0.0) -> ChunkResult:
            result = await super().__call__(audio, temperature)
            return replace(result, work=Work(windows=1, aligned=1, encoder_s=0.5, decoder_s=0.25))

    fake = CostedWhisper(avg_logprob=-3.0, stop=lambda call, n: 1.0 if call == 0 else n / SAMPLE_RATE)
    out = await transcribe_macro_chunk(speech(50), 20.0, SMOOTHING, fake)
    calls = len(fake.calls)
    assert calls > 3  # pieces, and the unsure tails decoded once and dropped
    assert out.work == Work(windows=calls, aligned=calls, encoder_s=0.5 * calls, decoder_s=0.25 * calls)


def test_work_travels_with_the_result_and_an_older_sender_without_it_reads_as_none() -> None:
    result = ChunkResult(segments=(), language="en", work=Work(windows=3, aligned=1, mel_s=0.1))
    assert decode_result(encode_result(result)) == result
    assert decode_result(b'{"segments": [], "language": "en"}').work == Work()


class FakeSpeakerEncoder:
    """Embeds each clip as a unit vector of its loudness; records the clips and when they were sent."""

    def __init__(self, whisper: FakeWhisper) -> None:
        self.whisper = whisper
        self.clips: list[npt.NDArray[np.float32]] = []
        self.whisper_calls_before = -1

    async def __call__(self, clips: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        self.whisper_calls_before = len(self.whisper.calls)
        self.clips = clips
        await asyncio.sleep(0.01)
        vectors = np.zeros((len(clips), 256), dtype=np.float32)
        vectors[:, 0] = 1.0
        return vectors


async def test_a_diarized_chunk_embeds_its_speech_while_whisper_decodes() -> None:
    pcm = speech(20.0)
    whisper = FakeWhisper()
    encoder = FakeSpeakerEncoder(whisper)
    result = await transcribe_macro_chunk(pcm, 8.0, SMOOTHING, whisper, embed_clips=encoder)
    assert result.segments and len(result.voices) == len(encoder.clips) >= 5
    assert all(len(c) == int(1.6 * SAMPLE_RATE) for c in encoder.clips), "one encoder partial each"
    assert encoder.whisper_calls_before < len(whisper.calls), "the clips went out before the decoding was done"
    assert all(0 <= v.start_s < v.end_s <= 20.0 for v in result.voices)
    covered = sum(v.end_s - v.start_s for v in result.voices)
    assert covered > 0.8 * 20.0 * (1 - 0.4 / 3.7), "the voices cover the speech, not the pauses"
    assert all(a.end_s <= b.start_s + 1e-9 for a, b in zip(result.voices, result.voices[1:]))
    sent = decode_result(encode_result(result)).voices
    assert [(v.start_s, v.end_s) for v in sent] == [(round(v.start_s, 3), round(v.end_s, 3)) for v in result.voices]


async def test_an_undiarized_chunk_has_no_voices() -> None:
    result = await transcribe_macro_chunk(speech(10.0), 8.0, SMOOTHING, FakeWhisper())
    assert result.voices == ()


async def test_a_failing_speaker_encoder_fails_the_chunk() -> None:
    async def broken(clips: list[npt.NDArray[np.float32]]) -> npt.NDArray[np.float32]:
        raise RuntimeError("speaker_encoder failed: gone")

    with pytest.raises(RuntimeError, match="speaker_encoder failed"):
        await transcribe_macro_chunk(speech(10.0), 8.0, SMOOTHING, FakeWhisper(), embed_clips=broken)
