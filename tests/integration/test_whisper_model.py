"""The `whisper` and `micro_chunker` Triton models, called directly over gRPC."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from longscribe_core.segments import decode_result

from ..corpus import decode_pcm, manifest, wer
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration


def jfk() -> tuple[np.ndarray, str]:
    clip = next(c for c in manifest() if c.path.name == "jfk.flac")
    return decode_pcm(clip.path).astype(np.float32) / 32768.0, clip.reference


async def infer_whisper(client: grpcclient.InferenceServerClient, audio: np.ndarray) -> str:
    tensor = grpcclient.InferInput("audio", [1, len(audio)], "FP32")
    tensor.set_data_from_numpy(audio[None, :].astype(np.float32))
    response = await client.infer("whisper", [tensor])
    result = decode_result(response.as_numpy("result").reshape(-1)[0])
    return " ".join(s.text for s in result.segments)


async def test_a_bad_item_fails_alone_in_a_shared_batch(triton_grpc_url: str) -> None:
    audio, reference = jfk()
    too_long = np.zeros(31 * 16_000, dtype=np.float32)
    async with grpcclient.InferenceServerClient(triton_grpc_url) as client:
        good, bad = await asyncio.gather(
            infer_whisper(client, audio), infer_whisper(client, too_long), return_exceptions=True
        )
    assert isinstance(good, str) and wer(reference, good) <= JFK_MAX_WER
    assert isinstance(bad, InferenceServerException)
    assert "30 s" in bad.message()


STATS_SETTLE_S = 10.0


def counts(stats: dict) -> tuple[int, int]:
    model = stats["model_stats"][0]
    return int(model.get("inference_count", 0)), int(model.get("execution_count", 0))


async def test_concurrent_requests_share_engine_calls(triton_grpc_url: str) -> None:
    audio, _ = jfk()
    async with grpcclient.InferenceServerClient(triton_grpc_url) as client:
        before = await client.get_inference_statistics("whisper", as_json=True)
        # a 30 s item keeps the instance busy, so the next six queue up behind it
        busy = asyncio.create_task(infer_whisper(client, np.tile(audio, 3)[: 30 * 16_000]))
        # a head start, not a synchronisation: had the six arrived before it ran, all seven would be
        # decoded together, which the bound below holds to as well
        await asyncio.sleep(0.2)
        await asyncio.gather(busy, *(infer_whisper(client, audio[: (5 + i) * 16_000]) for i in range(6)))
        # Triton records a batch's statistics after its responses are sent: on a loaded machine the
        # last batch can be missing from an immediate read, so read until they settle
        deadline = asyncio.get_running_loop().time() + STATS_SETTLE_S
        while True:
            after = await client.get_inference_statistics("whisper", as_json=True)
            if counts(after)[0] - counts(before)[0] >= 7 or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)

    (inf0, exe0), (inf1, exe1) = counts(before), counts(after)
    assert inf1 - inf0 == 7
    assert exe1 - exe0 <= 3, "the queued requests should be decoded together"


def micro_chunker_inputs(pcm: np.ndarray, micro_s: float) -> list[grpcclient.InferInput]:
    inputs = [
        grpcclient.InferInput("audio", [len(pcm)], "INT16"),
        grpcclient.InferInput("micro_chunk_size_sec", [1], "FP32"),
        grpcclient.InferInput("silence_detection_smoothing_num_samples", [1], "INT32"),
    ]
    inputs[0].set_data_from_numpy(pcm.astype(np.int16))
    inputs[1].set_data_from_numpy(np.array([micro_s], np.float32))
    inputs[2].set_data_from_numpy(np.array([1600], np.int32))
    return inputs


async def test_micro_chunker_returns_times_relative_to_the_macro_chunk(triton_grpc_url: str) -> None:
    audio, reference = jfk()
    pcm = (np.concatenate([np.zeros(3 * 16_000, np.float32), audio]) * 32767).astype(np.int16)
    async with grpcclient.InferenceServerClient(triton_grpc_url) as client:
        response = await client.infer("micro_chunker", micro_chunker_inputs(pcm, 8.0))
    result = decode_result(response.as_numpy("result").reshape(-1)[0])
    assert wer(reference, " ".join(s.text for s in result.segments)) <= JFK_MAX_WER
    assert result.segments[0].start_s >= 2.5, "the 3 s of leading silence must shift the first segment"
    assert all(a.end_s <= b.start_s + 1e-6 for a, b in zip(result.segments, result.segments[1:]))


async def test_micro_chunker_refuses_a_micro_size_over_30_s(triton_grpc_url: str) -> None:
    async with grpcclient.InferenceServerClient(triton_grpc_url) as client:
        with pytest.raises(InferenceServerException, match="micro_chunk_size_sec"):
            await client.infer("micro_chunker", micro_chunker_inputs(np.zeros(16_000, np.int16), 31.0))
