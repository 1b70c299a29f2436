"""Cut a macro chunk into micro chunks at pauses and transcribe them via whisper (BLS)."""

import os
import site
import sys

# See whisper/1/model.py: the stub ignores PYTHONPATH.
for _dir in filter(None, os.environ.get("LONGSCRIBE_SITE_DIRS", "").split(os.pathsep)):
    sys.path.insert(0, _dir)
    site.addsitedir(_dir)

import asyncio  # noqa: E402
import json  # noqa: E402

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from longscribe_core.engines.base import LANGUAGE_ERROR, TASK_ERROR, TASKS, TRANSCRIBE  # noqa: E402
from longscribe_core.segmentation.micro import transcribe_macro_chunk  # noqa: E402
from longscribe_core.segments import ChunkResult, decode_result, encode_result  # noqa: E402

CANCEL_POLL_S = 1.0  # how often a running chunk asks whether its caller gave up
SPEAKER_BATCH = 64  # voice windows per speaker_encoder request: its max_batch_size


def _scalar(request, name: str):
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    value = tensor.as_numpy().reshape(-1)[0]
    return value.decode("utf-8") if isinstance(value, bytes) else value


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self.whisper_model = params.get("whisper_model", {}).get("string_value") or "whisper"
        self.speaker_model = params.get("speaker_model", {}).get("string_value") or "speaker_encoder"

    async def execute(self, requests):
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    async def _one(self, request):
        try:  # parse inside the try: a bad request fails alone
            pcm = pb_utils.get_input_tensor_by_name(request, "audio").as_numpy().reshape(-1)
            max_s = float(_scalar(request, "micro_chunk_size_sec"))
            width = int(_scalar(request, "silence_detection_smoothing_num_samples"))
            language = _scalar(request, "language")
            prompt = _scalar(request, "prompt")
            whisper = _scalar(request, "whisper_model") or self.whisper_model
            # the caller's id (the orchestrator's job or request id) on each whisper call: Triton's
            # logs and traces join them to the job
            request_id = request.request_id()
            task = _scalar(request, "task") or TRANSCRIBE
            if task not in TASKS:
                raise ValueError(f"unknown task {task!r}; use one of {TASKS}")
            # the ladder's first rung, checked there; float32 on the wire: 0.2 arrives as 0.20000000298
            temperature = round(float(_scalar(request, "temperature") or 0.0), 6)
            diarize = bool(_scalar(request, "diarize") or False)
            work = asyncio.ensure_future(
                transcribe_macro_chunk(
                    pcm,
                    max_s,
                    width,
                    lambda piece, t: self._transcribe(whisper, piece, language, t, prompt, task, request_id),
                    temperature,
                    embed_clips=(lambda clips: self._embed(clips, request_id)) if diarize else None,
                )
            )
            # a client that hung up (or a replica's caller that timed out) stops the pieces not yet sent
            while not (await asyncio.wait({work}, timeout=CANCEL_POLL_S))[0]:
                if request.is_cancelled():
                    work.cancel()
                    error = pb_utils.TritonError("the caller cancelled the request", pb_utils.TritonError.CANCELLED)
                    return pb_utils.InferenceResponse(error=error)
            result = work.result()
        except Exception as exc:
            code = pb_utils.TritonError.INVALID_ARG if isinstance(exc, ValueError) else pb_utils.TritonError.INTERNAL
            return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc), code))
        out = np.array([encode_result(result)], dtype=np.object_)
        return pb_utils.InferenceResponse([pb_utils.Tensor("result", out)])

    async def _embed(self, clips: list, request_id: str = "") -> np.ndarray:
        """Voice windows -> embeddings [n, 256], in requests of up to SPEAKER_BATCH clips of one length.

        Batched here, not one clip per request: BLS requests reach the dynamic batcher one by one, so
        single clips ran through the LSTM in batches of one or two, 3 s of CPU for 4 minutes of
        speech instead of about 1 s."""

        async def batch(group: list) -> np.ndarray:
            request = pb_utils.InferenceRequest(
                model_name=self.speaker_model,
                inputs=[pb_utils.Tensor("audio", np.stack(group).astype(np.float32))],
                requested_output_names=["embedding"],
                request_id=request_id,
            )
            response = await request.async_exec()
            if response.has_error():
                raise RuntimeError(f"speaker_encoder failed: {response.error().message()}")
            return pb_utils.get_output_tensor_by_name(response, "embedding").as_numpy().reshape(len(group), -1)

        if not clips:
            return np.zeros((0, 256), dtype=np.float32)
        order = sorted(range(len(clips)), key=lambda i: len(clips[i]))  # one length per request
        groups: list[list[int]] = []
        for i in order:
            if groups and len(groups[-1]) < SPEAKER_BATCH and len(clips[groups[-1][0]]) == len(clips[i]):
                groups[-1].append(i)
            else:
                groups.append([i])
        parts = await asyncio.gather(*(batch([clips[i] for i in g]) for g in groups))
        out = np.empty((len(clips), parts[0].shape[1]), dtype=np.float32)
        for group, part in zip(groups, parts):
            out[group] = part
        return out

    async def _transcribe(
        self,
        whisper: str,
        piece: np.ndarray,
        language,
        temperature: float,
        prompt=None,
        task: str = TRANSCRIBE,
        request_id: str = "",
    ) -> ChunkResult:
        inputs = [pb_utils.Tensor("audio", piece[None, :].astype(np.float32))]
        if task != TRANSCRIBE:
            inputs.append(pb_utils.Tensor("task", np.array([[task.encode()]], dtype=np.object_)))
        if language:
            inputs.append(pb_utils.Tensor("language", np.array([[language.encode()]], dtype=np.object_)))
        if prompt:
            inputs.append(pb_utils.Tensor("prompt", np.array([[prompt.encode()]], dtype=np.object_)))
        if temperature:
            inputs.append(pb_utils.Tensor("temperature", np.array([[temperature]], dtype=np.float32)))
        request = pb_utils.InferenceRequest(
            model_name=whisper, inputs=inputs, requested_output_names=["result"], request_id=request_id
        )
        response = await request.async_exec()
        if response.has_error():
            error = response.error()
            # BLS may hand the error back as INTERNAL: the message's prefix still tells
            mistake = error.message().startswith((LANGUAGE_ERROR, TASK_ERROR))
            if error.code() == pb_utils.TritonError.INVALID_ARG or mistake:
                raise ValueError(error.message())  # the caller's mistake (a language or task the model lacks)
            raise RuntimeError(f"whisper failed: {error.message()}")
        return decode_result(pb_utils.get_output_tensor_by_name(response, "result").as_numpy().reshape(-1)[0])
