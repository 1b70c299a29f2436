"""Diarization's model half through a real Triton: `speaker_encoder`, and `micro_chunker` with diarize."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from longscribe_core import speakers
from longscribe_core.segments import ChunkResult, decode_result

from ..conversations import build_conversation, der, turns_of
from ..corpus import decode_pcm, manifest
from .test_whisper_model import micro_chunker_inputs

pytestmark = pytest.mark.integration

TWO_VOICES = {"lj": ("ljspeech/",), "austen": ("sense_and_sensibility/",)}


async def infer_chunk(url: str, pcm: np.ndarray, diarize: bool | None) -> ChunkResult:
    inputs = micro_chunker_inputs(pcm, 30.0)
    if diarize is not None:
        flag = grpcclient.InferInput("diarize", [1], "BOOL")
        flag.set_data_from_numpy(np.array([diarize]))
        inputs.append(flag)
    async with grpcclient.InferenceServerClient(url) as client:
        response = await client.infer("micro_chunker", inputs, client_timeout=600)
    return decode_result(response.as_numpy("result").reshape(-1)[0])


async def test_the_speaker_encoder_serves_the_embedding_the_core_computes(triton_grpc_url: str) -> None:
    clip = next(c for c in manifest() if c.path.name == "jfk.flac")
    audio = decode_pcm(clip.path).astype(np.float32) / 32768.0
    tensor = grpcclient.InferInput("audio", [1, len(audio)], "FP32")
    tensor.set_data_from_numpy(audio[None, :])
    async with grpcclient.InferenceServerClient(triton_grpc_url) as client:
        response = await client.infer("speaker_encoder", [tensor])
    served = response.as_numpy("embedding").reshape(-1)
    assert served.shape == (256,)
    assert abs(float(np.linalg.norm(served)) - 1.0) < 1e-4
    assert np.abs(served - speakers.embed(audio)).max() < 1e-4


async def test_the_speaker_encoder_refuses_an_empty_clip(triton_grpc_url: str) -> None:
    tensor = grpcclient.InferInput("audio", [1, 0], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 0), np.float32))
    async with grpcclient.InferenceServerClient(triton_grpc_url) as client:
        with pytest.raises(InferenceServerException, match="clip must hold"):
            await client.infer("speaker_encoder", [tensor])


async def test_a_diarized_chunk_carries_voices_that_tell_its_two_speakers_apart(triton_grpc_url: str) -> None:
    conversation = build_conversation(TWO_VOICES, duration_s=45.0, seed=3)
    result = await infer_chunk(triton_grpc_url, conversation.pcm, diarize=True)
    assert result.segments, "the chunk is still transcribed"
    voices = result.voices
    speech_s = sum(t.end_s - t.start_s for t in conversation.turns)
    assert sum(v.end_s - v.start_s for v in voices) >= 0.8 * speech_s, "the voices cover the speech"
    assert all(0 <= v.start_s < v.end_s <= conversation.duration_s for v in voices)
    embeddings = np.array([v.embedding for v in voices])
    labels = speakers.cluster_voices(embeddings, durations=np.array([v.end_s - v.start_s for v in voices]))
    assert labels.max() + 1 == 2
    names = [speakers.speaker_name(int(k)) for k in labels]
    hypothesis = turns_of([v.start_s for v in voices], [v.end_s for v in voices], names, bridge_s=2.0)
    assert der(conversation.turns, hypothesis).der <= 0.10
    labelled = speakers.label_segments(result.segments, voices, labels)
    assert {s.speaker for s in labelled} == {"SPEAKER_00", "SPEAKER_01"}


async def test_without_diarize_a_chunk_has_no_voices(triton_grpc_url: str) -> None:
    conversation = build_conversation(TWO_VOICES, duration_s=20.0, seed=4)
    for flag in (None, False):
        result = await infer_chunk(triton_grpc_url, conversation.pcm, diarize=flag)
        assert result.segments and result.voices == ()
