"""Languages on the multilingual `base` model: detected once per file, reported, or taken as requested."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
import tritonclient.grpc.aio as grpcclient

from longscribe_core.segments import decode_result
from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.infer.triton_server import FREE_PORTS, running_triton
from orchestrator.settings import Settings

from ..corpus import Clip, clips_under, decode_pcm, join_clips, speech_dir, synthetic_speech, wer
from ..media_servers import LOOPBACK
from ..wer_bounds import LJ001_0001_MAX_WER

pytestmark = pytest.mark.integration
MAX_SYNTHETIC_WER = 0.35  # espeak-ng's robotic voice through Whisper base, int8, greedy


@pytest_asyncio.fixture(scope="module")
async def base_grpc_url() -> AsyncIterator[str]:
    async with running_triton(Settings(whisper_weights="base", **FREE_PORTS)) as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def base_service_url(base_grpc_url: str) -> AsyncIterator[str]:
    async with serving(create_app(Settings(triton_grpc_urls=[base_grpc_url], allowed_media_hosts=LOOPBACK))) as base:
        yield base


async def transcribe(service: str, media: str, **params: object) -> dict:
    body = {"media_url": media, "params": params, "response_format": "verbose_json"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{service}/v1/transcribe", json=body) as response:
            answer = await response.json()
            assert response.status == 200, answer
            return answer


def twice(clip: Clip, out: Path, lead_s: float = 0.6) -> Clip:
    """The clip, a pause, the clip again: long enough to cut into several macro chunks."""
    rec = join_clips([clip, clip], out, gaps_s=[lead_s, 1.0])
    return Clip(rec.path, rec.reference, rec.duration_s)


@pytest.mark.parametrize("language", ["es", "de"])
async def test_the_language_of_each_file_is_detected_once_and_reported(
    base_service_url: str, media_url: str, media_root: Path, language: str
) -> None:
    # 15 s of low noise first: detection listens where the speech is; small chunks, and every one agrees
    clip = twice(synthetic_speech(language), media_root / f"twice-{language}.wav", lead_s=15.0)
    answer = await transcribe(
        base_service_url, f"{media_url}/{clip.path.name}", macro_chunk_size_sec=20, micro_chunk_size_sec=10
    )
    assert answer["language_code"] == language
    assert {s["language_code"] for s in answer["segments"]} == {language}
    assert answer["segments"][0]["start_time_sec"] >= 14.0


async def test_english_speech_is_detected_as_english(base_service_url: str, media_url: str) -> None:
    clip = clips_under("ljspeech")[0]
    answer = await transcribe(base_service_url, f"{media_url}/speech/{clip.path.relative_to(speech_dir())}")
    assert answer["language_code"] == "en" and answer["language"] == "english"
    assert wer(clip.reference, answer["text"]) <= LJ001_0001_MAX_WER


async def test_a_requested_language_is_used_as_given(base_service_url: str, media_url: str, media_root: Path) -> None:
    clip = twice(synthetic_speech("de"), media_root / "twice-de-asked.wav")
    answer = await transcribe(base_service_url, f"{media_url}/{clip.path.name}", language="de")
    assert {s["language_code"] for s in answer["segments"]} == {"de"}
    assert wer(clip.reference, answer["text"], english=False) <= MAX_SYNTHETIC_WER


async def test_whisper_detects_languages_without_transcribing(base_grpc_url: str) -> None:
    windows = [decode_pcm(synthetic_speech(lang).path).astype(np.float32) / 32768 for lang in ("es", "de")]
    longest = max(len(w) for w in windows)
    batch = np.stack([np.pad(w, (0, longest - len(w))) for w in windows])
    audio = grpcclient.InferInput("audio", list(batch.shape), "FP32")
    audio.set_data_from_numpy(batch)
    lengths = grpcclient.InferInput("n_samples", [2, 1], "INT32")
    lengths.set_data_from_numpy(np.array([[len(w)] for w in windows], dtype=np.int32))
    task = grpcclient.InferInput("task", [2, 1], "BYTES")
    task.set_data_from_numpy(np.array([[b"detect_language"]] * 2, dtype=np.object_))
    async with grpcclient.InferenceServerClient(base_grpc_url) as client:
        response = await client.infer("whisper", [audio, lengths, task])
    results = [decode_result(raw) for raw in response.as_numpy("result").reshape(-1)]
    assert [r.language for r in results] == ["es", "de"]
    for result in results:
        assert result.segments == () and result.language_probability is not None
        assert 0.5 < result.language_probability <= 1.0
