"""Long-form accuracy: cuts cost nothing, timestamps are true, nothing is invented, every format holds."""

from __future__ import annotations

import io
import json
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import srt
import webvtt

from ..corpus import Recording, long_form_recording, manifest, wer
from ..wer_bounds import JFK_MAX_WER
from .test_transcribe_api import assert_well_formed, post

pytestmark = pytest.mark.integration

DEFAULT = {"macro_chunk_size_sec": 300, "micro_chunk_size_sec": 30}
MANY_CUTS = {"macro_chunk_size_sec": 20, "micro_chunk_size_sec": 8}
# Clip-start error, measured 2026-12-03 over the 42 clips of the long form (segment start nearest the truth):
#   from where each clip's file begins:     default sizes mean 0.123 s, p90 0.251 s, max 0.451 s;
#                                           forced cuts   mean 0.117 s, p90 0.206 s, max 0.451 s.
#   from where each clip's speech begins:   default sizes mean 0.110 s, p90 0.134 s, max 0.137 s;
#                                           forced cuts   mean 0.105 s, p90 0.134 s, max 0.137 s.
# The file-start max is LibriSpeech 1089-134686-0000, whose speech begins 0.57 s into its file: the segment
# starts 0.12 s before the speech, as every clip's does (Whisper's word timing leads the onset). So the
# issue's bound from the file start has only the 0.05 s left by that file's own silence; the bound from the
# speech is the measured max plus a margin of 0.11 s (five 20 ms frames and change), and is the tighter test.
TRUE_START_TOLERANCE_S = 0.5  # the bound, for every clip, from where its file begins
SPEECH_START_TOLERANCE_S = 0.25  # from where its speech begins: measured max 0.137 s + 0.11 s margin
ONSET_WINDOW_S = 0.02  # the envelope that finds where speech begins: 20 ms mean of |x|
ONSET_PEAK_FRACTION = 0.05  # speech begins where that envelope first reaches 5 % of the clip's peak


@pytest.fixture(scope="module")
def long_form(media_root: Path) -> Recording:
    """Every referenced clip of the shared speech, joined with 0.4-1.5 s low-noise gaps (about 5 minutes)."""
    return long_form_recording(media_root / "long-form.wav")


@pytest.fixture(scope="module")
async def default_out(service_url: str, media_url: str, long_form: Recording) -> dict[str, Any]:
    status, out = await post(service_url, {"media_url": f"{media_url}/long-form.wav", "params": DEFAULT})
    assert status == 200, out
    return out


@pytest.fixture(scope="module")
async def many_cuts_out(service_url: str, media_url: str, long_form: Recording) -> dict[str, Any]:
    params = {**MANY_CUTS, "word_timestamps": True}
    status, out = await post(service_url, {"media_url": f"{media_url}/long-form.wav", "params": params})
    assert status == 200, out
    return out


def clip_start_errors(out: dict[str, Any], truths_s: tuple[float, ...] | list[float]) -> list[float]:
    """For each clip, how far the nearest segment start is from its truth (where its file or speech begins)."""
    starts = np.array([s["start_time_sec"] for s in out["segments"]])
    return [float(np.abs(starts - truth).min()) for truth in truths_s]


def speech_onsets_s(recording: Recording) -> list[float]:
    """Where each clip's speech begins in the recording: its file's start plus the file's own leading silence."""
    with wave.open(str(recording.path), "rb") as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float64)
    window = int(ONSET_WINDOW_S * rate)
    bounds = [*recording.clip_starts_s, recording.duration_s]
    onsets = []
    for start_s, end_s in zip(bounds, bounds[1:]):
        span = pcm[int(start_s * rate) : int(end_s * rate)]
        envelope = np.convolve(np.abs(span), np.ones(window) / window, mode="same")
        onsets.append(start_s + int(np.argmax(envelope >= ONSET_PEAK_FRACTION * envelope.max())) / rate)
    return onsets


def spread(errors: list[float]) -> str:
    return f"mean {np.mean(errors):.3f} s, p90 {np.percentile(errors, 90):.3f} s, max {max(errors):.3f} s"


def test_the_long_form_recording_is_transcribed_accurately(default_out: dict[str, Any], long_form: Recording) -> None:
    error_rate = wer(long_form.reference, default_out["text"])
    print(f"long form {long_form.duration_s:.0f} s, defaults: WER {error_rate:.3f}")
    assert error_rate <= 0.08
    assert_well_formed(default_out, long_form.duration_s)


def test_forcing_many_cuts_costs_at_most_one_and_a_half_points(
    default_out: dict[str, Any], many_cuts_out: dict[str, Any], long_form: Recording
) -> None:
    default_wer = wer(long_form.reference, default_out["text"])
    cut_wer = wer(long_form.reference, many_cuts_out["text"])
    print(f"WER defaults {default_wer:.3f}, macro 20 s / micro 8 s {cut_wer:.3f}")
    assert cut_wer - default_wer <= 0.015
    assert_well_formed(many_cuts_out, long_form.duration_s)


@pytest.mark.parametrize("which", ["default_out", "many_cuts_out"])
def test_clips_start_a_segment_within_half_a_second_of_their_true_start(
    which: str, request: pytest.FixtureRequest, long_form: Recording
) -> None:
    out = request.getfixturevalue(which)
    errors = clip_start_errors(out, long_form.clip_starts_s)
    from_speech = clip_start_errors(out, speech_onsets_s(long_form))
    measured = f"{which}, {len(errors)} clips: from the file {spread(errors)}; from the speech {spread(from_speech)}"
    print(measured)
    late = [(round(t, 2), round(e, 2)) for t, e in zip(long_form.clip_starts_s, errors) if e > TRUE_START_TOLERANCE_S]
    assert not late, f"clips whose start no segment matches within {TRUE_START_TOLERANCE_S} s: {late}; {measured}"
    late = [
        (round(t, 2), round(e, 2)) for t, e in zip(long_form.clip_starts_s, from_speech) if e > SPEECH_START_TOLERANCE_S
    ]
    assert not late, (
        f"clips whose speech no segment start matches within {SPEECH_START_TOLERANCE_S} s: {late}; {measured}"
    )


def test_word_timestamps_are_in_media_time_and_monotonic(many_cuts_out: dict[str, Any], long_form: Recording) -> None:
    previous_end = 0.0
    n_words = 0
    for seg in many_cuts_out["segments"]:
        words = seg["words"]
        assert words, seg
        assert "".join(w["word"] for w in words).replace(" ", "") == seg["text"].replace(" ", "")
        for w in words:
            assert seg["start_time_sec"] - 1e-6 <= w["start_time_sec"] <= w["end_time_sec"]
            assert w["end_time_sec"] <= seg["end_time_sec"] + 1e-6
            assert w["start_time_sec"] >= previous_end - 1e-6, "words overlap or go back in time"
            assert 0.0 <= w["probability"] <= 1.0
            previous_end = w["end_time_sec"]
            n_words += 1
    assert n_words >= 0.9 * len(long_form.reference.split())
    assert previous_end <= long_form.duration_s


def write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(pcm.astype(np.int16).tobytes())


def non_speech(seconds_each: float = 30.0, seed: int = 0) -> np.ndarray:
    """Digital silence, low hiss, loud pink noise, a chord progression and a drum-like pulse."""
    rng = np.random.default_rng(seed)
    n = int(seconds_each * 16_000)
    t = np.arange(n) / 16_000
    pink = np.cumsum(rng.standard_normal(n))
    pink -= np.convolve(pink, np.ones(400) / 400, mode="same")
    chords = sum(np.sin(2 * np.pi * f * t * (1 + (t // 2 % 4) / 8)) for f in (262.0, 330.0, 392.0)) / 3
    pulse = rng.standard_normal(n) * np.exp(-((t % 0.5) * 30))
    parts = [
        np.zeros(n),
        rng.standard_normal(n) * 0.001,
        pink / np.abs(pink).max() * 0.1,
        chords * 0.3,
        pulse * 0.2,
    ]
    return (np.concatenate(parts) * 32767).clip(-32768, 32767)


async def test_silence_noise_and_music_give_no_invented_text(
    service_url: str, media_url: str, media_root: Path
) -> None:
    write_wav(media_root / "non-speech.wav", non_speech())
    params = {"macro_chunk_size_sec": 60, "micro_chunk_size_sec": 30}
    status, out = await post(service_url, {"media_url": f"{media_url}/non-speech.wav", "params": params})
    assert status == 200, out
    print(f"non-speech 150 s -> {out['text']!r}")
    assert out["input_duration_sec"] >= 120.0  # several macro chunks
    assert len(out["text"].split()) <= 3


async def fetch(service_url: str, body: dict[str, Any], query: str = "") -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{service_url}/v1/transcribe{query}", json=body) as response:
            return response.status, response.content_type, await response.text()


async def test_srt_and_vtt_parse_with_real_parsers_and_match_the_json(
    service_url: str, media_url: str, lj_recording: Recording
) -> None:
    body = {"media_url": f"{media_url}/lj001.wav", "params": {"macro_chunk_size_sec": 60}}
    status, _, raw = await fetch(service_url, body)
    assert status == 200
    segments = json.loads(raw)["segments"]
    expected = [(s["start_time_sec"], s["end_time_sec"], s["text"]) for s in segments]

    status, content_type, text = await fetch(service_url, {**body, "response_format": "srt"})
    assert (status, content_type) == (200, "application/x-subrip")
    subs = list(srt.parse(text))
    got = [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subs]
    assert got == [(pytest.approx(a, abs=1e-3), pytest.approx(b, abs=1e-3), t) for a, b, t in expected]

    status, content_type, text = await fetch(service_url, body, query="?response_format=vtt")
    assert (status, content_type) == (200, "text/vtt")
    captions = webvtt.from_buffer(io.StringIO(text))
    got = [(c.start_in_seconds + c.start_time.milliseconds / 1000, c.text) for c in captions]
    assert [g[1] for g in got] == [e[2] for e in expected]
    assert [g[0] for g in got] == [pytest.approx(e[0], abs=1e-3) for e in expected]


async def test_text_and_verbose_json_formats(service_url: str, media_url: str) -> None:
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    body = {"media_url": f"{media_url}/speech/jfk.flac"}
    status, content_type, text = await fetch(service_url, {**body, "response_format": "text"})
    assert (status, content_type) == (200, "text/plain")
    assert wer(jfk.reference, text) <= JFK_MAX_WER

    status, _, raw = await fetch(service_url, {**body, "response_format": "verbose_json"})
    verbose = json.loads(raw)
    assert status == 200 and verbose["language_code"] == "en"
    for seg in verbose["segments"]:
        assert 0.0 <= seg["confidence"] <= 1.0
        assert seg["avg_logprob"] <= 0.0 and 0.0 <= seg["no_speech_prob"] <= 1.0
        assert seg["compression_ratio"] > 0 and seg["temperature"] >= 0.0
    status, _, raw = await fetch(service_url, body)
    assert "confidence" not in raw and "words" not in raw, "plain json keeps the seed's shape"


async def test_an_english_only_model_refuses_another_language_clearly(service_url: str, media_url: str) -> None:
    body = {"media_url": f"{media_url}/speech/jfk.flac", "params": {"language": "fr"}}
    status, out = await post(service_url, body)
    assert status == 422, out
    assert "english-only" in out["error"]["message"].lower()

    status, out = await post(service_url, {**body, "params": {"language": "xx"}})
    assert status == 422 and "language" in out["error"]["message"]
    status, out = await post(service_url, {**body, "params": {"language": "en"}})
    assert status == 200, out
