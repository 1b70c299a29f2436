"""gRPC clients for one or many Triton endpoints; chunks go to the least busy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient
from numpy.typing import NDArray
from tritonclient.utils import InferenceServerException

from longscribe_core.audio import FloatAudio, Int16Audio
from longscribe_core.engines.base import TASK_ERROR
from longscribe_core.segments import ChunkResult, decode_result
from orchestrator.common.observability import trace_id
from orchestrator.errors import InferenceError, InferenceUnavailable, InvalidRequest, TranslationUnsupported
from orchestrator.infer.capacity import instance_count

# "this endpoint is not there": worth trying another. A deadline is not in
# here: a chunk that timed out would only be run again elsewhere.
_UNREACHABLE = ("StatusCode.UNAVAILABLE",)
_TIMED_OUT = "StatusCode.DEADLINE_EXCEEDED"
_INVALID = "StatusCode.INVALID_ARGUMENT"  # the models' word for the caller's mistake (a language the model lacks)
READINESS_TIMEOUT_S = 5.0  # a health probe must not wait on a busy server
SHUNNED_S = 10.0  # an endpoint that just failed is tried last for this long
# When every endpoint is unreachable, keep trying this long before answering 503:
# a replica that is restarting, or a channel between reconnect attempts, is back within it.
ALL_DOWN_GRACE_S = 5.0
ALL_DOWN_RETRY_S = 1.0
# A replica that dies is noticed within seconds, and one that comes back is
# reconnected within seconds: gRPC's defaults (20 s connect timeout, backoff up to
# 2 minutes) would keep a restarted replica idle, and a silent one would hold
# calls until their deadline.
# Triton must be told to accept these pings (triton_server.keepalive_args, docker/triton_entrypoint.sh):
# by default it closes a connection that pings idle more often than every 5 minutes.
KEEPALIVE_TIME_MS = 10_000
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", 2**31 - 1),  # a macro chunk's PCM is tens of MB
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.min_reconnect_backoff_ms", 2_000),  # also gRPC's connect timeout
    ("grpc.max_reconnect_backoff_ms", 2_000),
]


@dataclass
class Endpoint:
    url: str
    client: grpcclient.InferenceServerClient
    in_flight: int = 0
    failed_at: float = -SHUNNED_S  # monotonic time of its last unreachable answer
    instances: int | None = None  # the chunk model's instance count, read once it is first ready

    def order(self) -> tuple[bool, int]:
        """Healthy and least busy first; a recently failed one only as a last resort."""
        return time.monotonic() - self.failed_at < SHUNNED_S, self.in_flight


@dataclass
class TritonPool:
    """Spread micro-chunker calls over endpoints; an unreachable one is skipped."""

    urls: list[str]
    model: str  # the model each chunk is sent to
    whisper_model: str  # the Whisper model language detection asks, and chunks use, unless a call names another
    required_models: list[str]  # every model that must be ready for `model` to work
    timeout_s: float
    # told each endpoint's instance count of `model` once, when it is first ready (the capacity check)
    on_instances: Callable[[str, int], None] = lambda url, instances: None
    endpoints: list[Endpoint] = field(init=False)

    retired: list[Endpoint] = field(init=False, default_factory=list)  # removed, closed once idle

    def __post_init__(self) -> None:
        self.endpoints = [_endpoint(url) for url in self.urls]

    async def set_urls(self, urls: list[str]) -> None:
        """Serve from `urls` from now on: new endpoints are added, missing ones retired.

        A retired endpoint's calls in flight finish; its client closes when idle."""
        known = {e.url: e for e in self.endpoints}
        self.retired += [e for e in self.endpoints if e.url not in urls]
        self.endpoints = [known.get(url) or _endpoint(url) for url in dict.fromkeys(urls)]
        self.urls = [e.url for e in self.endpoints]
        idle = [e for e in self.retired if e.in_flight == 0]
        self.retired = [e for e in self.retired if e.in_flight > 0]
        await asyncio.gather(*(e.client.close() for e in idle), return_exceptions=True)

    async def close(self) -> None:
        clients = [e.client for e in self.endpoints + self.retired]
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

    async def readiness(self) -> dict[str, bool]:
        """Each endpoint: every required model ready (the micro chunker is useless without whisper)."""

        async def one(endpoint: Endpoint) -> bool:
            try:
                states = [
                    await endpoint.client.is_model_ready(model, client_timeout=READINESS_TIMEOUT_S)
                    for model in self.required_models
                ]
                if all(states) and endpoint.instances is None:
                    config = await endpoint.client.get_model_config(self.model, client_timeout=READINESS_TIMEOUT_S)
                    endpoint.instances = instance_count(config.config)
                    self.on_instances(endpoint.url, endpoint.instances)
            except InferenceServerException:
                return False
            return all(states)

        endpoints = list(self.endpoints)
        states = await asyncio.gather(*(one(e) for e in endpoints))
        return {e.url: state for e, state in zip(endpoints, states)}

    async def queue_stats(self) -> dict[tuple[str, str], tuple[int, int]]:
        """Per (endpoint, model): Triton's cumulative queue microseconds and successful requests.

        The queue users' chunks wait in on the far side; an endpoint that does not answer is left out."""

        async def one(endpoint: Endpoint) -> dict[tuple[str, str], tuple[int, int]]:
            try:
                answer = await endpoint.client.get_inference_statistics(client_timeout=READINESS_TIMEOUT_S)
            except InferenceServerException:
                return {}
            totals: dict[tuple[str, str], tuple[int, int]] = {}
            for model in answer.model_stats:
                if model.name in self.required_models:
                    queue_us, n = totals.get((endpoint.url, model.name), (0, 0))
                    stats = model.inference_stats
                    totals[endpoint.url, model.name] = (queue_us + stats.queue.ns // 1000, n + stats.success.count)
            return totals

        answers = await asyncio.gather(*(one(e) for e in list(self.endpoints)))
        return {key: value for answer in answers for key, value in answer.items()}

    async def transcribe_chunk(
        self,
        pcm: Int16Audio,
        micro_chunk_size_s: float,
        smoothing_samples: int,
        language: str | None = None,
        prompt: str | None = None,
        whisper_model: str | None = None,
        task: str = "transcribe",
        temperature: float = 0.0,
        diarize: bool = False,
    ) -> ChunkResult:
        """int16 PCM of one macro chunk -> segments relative to its start, from `whisper_model`'s pieces.

        `task` translate gives English text; `temperature` starts each piece's fallback ladder; `diarize`
        asks for the voices of its speech too (`ChunkResult.voices`)."""
        inputs = _inputs(pcm, micro_chunk_size_s, smoothing_samples, language, prompt, task, temperature)
        inputs.append(_text("whisper_model", whisper_model or self.whisper_model))
        if diarize:
            flag = grpcclient.InferInput("diarize", [1], "BOOL")
            flag.set_data_from_numpy(np.array([True], dtype=np.bool_))
            inputs.append(flag)
        results = await self._infer(self.model, inputs, "a chunk")
        return results[0]

    async def serves(self, model: str) -> bool:
        """Whether any endpoint has `model` ready (asked each time: a replica may be added or replaced)."""
        for endpoint in sorted(self.endpoints, key=Endpoint.order):
            try:
                if await endpoint.client.is_model_ready(model, client_timeout=READINESS_TIMEOUT_S):
                    return True
            except InferenceServerException:
                continue
        return False

    async def embed_voice(self, audio: FloatAudio, model: str) -> NDArray[np.float32]:
        """16 kHz mono float audio -> the speaker embedding `model` (the speaker encoder) hears in it [d]."""
        clip = grpcclient.InferInput("audio", [1, len(audio)], "FP32")  # a batch of one (the model batches)
        clip.set_data_from_numpy(np.ascontiguousarray(audio, dtype=np.float32)[None, :])
        answer = await self._call(model, [clip], "a speaker reference", "embedding")
        return np.asarray(answer, dtype=np.float32).reshape(-1)

    async def detect_language(self, windows: list[FloatAudio], whisper_model: str | None = None) -> list[ChunkResult]:
        """Whisper's language guess for each window (<= 30 s): `language` and `language_probability`.

        One request per window: Triton batches them, and no request can exceed the model's batch size."""
        model = whisper_model or self.whisper_model
        answers = await asyncio.gather(*(self._infer(model, _detect_inputs(w), "language detection") for w in windows))
        return [result for answer in answers for result in answer]

    async def _infer(self, model: str, inputs: list[grpcclient.InferInput], what: str) -> list[ChunkResult]:
        """The `result` of one call: the chunk results it holds."""
        answer = await self._call(model, inputs, what, "result")
        return [decode_result(raw) for raw in answer.reshape(-1)]

    async def _call(self, model: str, inputs: list[grpcclient.InferInput], what: str, output: str) -> NDArray[Any]:
        """One call on the least busy endpoint; the next one when it is unreachable or dies mid-call.

        Retrying elsewhere is safe: a call has no effect but its answer."""
        deadline = time.monotonic() + ALL_DOWN_GRACE_S
        while True:
            answer, tried = await self._try_each(model, inputs, what, output)
            if answer is not None:
                return answer
            if time.monotonic() >= deadline:
                raise InferenceUnavailable("no Triton endpoint answered: " + "; ".join(tried))
            await asyncio.sleep(ALL_DOWN_RETRY_S)

    async def _try_each(
        self, model: str, inputs: list[grpcclient.InferInput], what: str, output: str
    ) -> tuple[NDArray[Any] | None, list[str]]:
        """The answer of the first endpoint that gives one, or None and why each failed."""
        tried: list[str] = []
        for endpoint in sorted(self.endpoints, key=Endpoint.order):
            endpoint.in_flight += 1
            try:
                response = await endpoint.client.infer(
                    model,
                    inputs,
                    outputs=[grpcclient.InferRequestedOutput(output)],
                    client_timeout=self.timeout_s,
                    request_id=trace_id(),  # the job's id, else the request's: in Triton's logs and traces
                )
            except InferenceServerException as exc:
                if str(exc.status()) in _UNREACHABLE:
                    endpoint.failed_at = time.monotonic()
                    tried.append(f"{endpoint.url}: {exc.message()}")
                    continue
                if str(exc.status()) == _INVALID:
                    message = exc.message() or "the model refused the request"
                    if TASK_ERROR in message:  # an English-only model the catalogue could not tell by its name
                        raise TranslationUnsupported(message) from exc
                    raise InvalidRequest(message) from exc
                if str(exc.status()) == _TIMED_OUT:
                    raise InferenceError(
                        f"{what} took longer than {self.timeout_s:g} s on {endpoint.url}",
                        hint="Raise LONGSCRIBE_CHUNK_TIMEOUT_SEC or add Triton replicas.",
                    ) from exc
                raise InferenceError(f"Triton failed on {what}: {exc.message()}") from exc
            finally:
                endpoint.in_flight -= 1
            return response.as_numpy(output), tried
        return None, tried


def _endpoint(url: str) -> Endpoint:
    return Endpoint(url, grpcclient.InferenceServerClient(url, channel_args=CHANNEL_ARGS))


def _detect_inputs(window: FloatAudio) -> list[grpcclient.InferInput]:
    """One window as a batch of one: [1, n] audio and the detect task."""
    audio = grpcclient.InferInput("audio", [1, len(window)], "FP32")
    audio.set_data_from_numpy(np.ascontiguousarray(window, dtype=np.float32)[None, :])
    task = grpcclient.InferInput("task", [1, 1], "BYTES")
    task.set_data_from_numpy(np.array([[b"detect_language"]], dtype=np.object_))
    return [audio, task]


def _inputs(
    pcm: Int16Audio,
    micro_chunk_size_s: float,
    smoothing_samples: int,
    language: str | None,
    prompt: str | None,
    task: str = "transcribe",
    temperature: float = 0.0,
) -> list[grpcclient.InferInput]:
    audio = grpcclient.InferInput("audio", [len(pcm)], "INT16")
    audio.set_data_from_numpy(np.ascontiguousarray(pcm, dtype=np.int16))
    micro = grpcclient.InferInput("micro_chunk_size_sec", [1], "FP32")
    micro.set_data_from_numpy(np.array([micro_chunk_size_s], dtype=np.float32))
    smoothing = grpcclient.InferInput("silence_detection_smoothing_num_samples", [1], "INT32")
    smoothing.set_data_from_numpy(np.array([smoothing_samples], dtype=np.int32))
    inputs = [audio, micro, smoothing]
    if language:
        inputs.append(_text("language", language))
    if prompt:
        inputs.append(_text("prompt", prompt))
    if task != "transcribe":  # the defaults travel as absent inputs, as before
        inputs.append(_text("task", task))
    if temperature:
        start = grpcclient.InferInput("temperature", [1], "FP32")
        start.set_data_from_numpy(np.array([temperature], dtype=np.float32))
        inputs.append(start)
    return inputs


def _text(name: str, value: str) -> grpcclient.InferInput:
    """One string as a [1] BYTES input of the micro chunker."""
    tensor = grpcclient.InferInput(name, [1], "BYTES")
    tensor.set_data_from_numpy(np.array([value.encode()], dtype=np.object_))
    return tensor
