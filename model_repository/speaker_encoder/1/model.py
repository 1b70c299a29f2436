"""Triton adapter for the speaker encoder: audio clips in, speaker embeddings out."""

import os
import site
import sys

# See whisper/1/model.py: the stub ignores PYTHONPATH.
for _dir in filter(None, os.environ.get("LONGSCRIBE_SITE_DIRS", "").split(os.pathsep)):
    sys.path.insert(0, _dir)
    site.addsitedir(_dir)

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402  (scikit-learn's, which librosa brings)

from longscribe_core import weights  # noqa: E402
from longscribe_core.speakers import encoder  # noqa: E402

MAX_CLIP_S = 600  # a reference clip longer than this is refused: 10 minutes of audio tell no more


class TritonPythonModel:
    def initialize(self, args):
        # One BLAS thread: the encoder runs beside whisper's instances, which have the cores; OpenBLAS's
        # spinning threads on cores already busy slowed the whole chunk more than the encoder's own work
        threadpool_limits(1, user_api="blas")
        # Missing weights leave the model loaded but refusing requests with the reason, so a server
        # without them still transcribes; weights that fail their digest stop the load
        try:
            self.net = encoder.network()
            self.missing = None
        except weights.WeightsNotInstalled as exc:
            self.net, self.missing = None, str(exc)
        if self.net is not None:
            encoder.embed_batch([np.zeros(encoder.PARTIAL_SAMPLES, dtype=np.float32)], self.net)  # librosa's first call

    def execute(self, requests):
        if self.missing is not None:
            error = pb_utils.TritonError(self.missing, pb_utils.TritonError.UNAVAILABLE)
            return [pb_utils.InferenceResponse(error=error) for _ in requests]
        clips, owners, responses = [], [], [None] * len(requests)
        for i, request in enumerate(requests):
            audio = pb_utils.get_input_tensor_by_name(request, "audio").as_numpy()
            rows = audio.reshape(1, -1) if audio.ndim == 1 else audio.reshape(audio.shape[0], -1)
            if rows.shape[1] == 0 or rows.shape[1] > MAX_CLIP_S * encoder.SAMPLE_RATE:
                message = f"a clip must hold 1 to {MAX_CLIP_S * encoder.SAMPLE_RATE} samples, got {rows.shape[1]}"
                responses[i] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(message, pb_utils.TritonError.INVALID_ARG)
                )
                continue
            clips.extend(np.asarray(row, dtype=np.float32) for row in rows)
            owners.append((i, len(rows)))
        try:
            vectors = encoder.embed_batch(clips, self.net) if clips else np.zeros((0, encoder.EMBEDDING_DIM))
        except Exception as exc:  # a bad clip fails its batch's requests, not the model
            error = pb_utils.TritonError(f"speaker encoder failed: {exc}", pb_utils.TritonError.INTERNAL)
            return [r or pb_utils.InferenceResponse(error=error) for r in responses]
        at = 0
        for i, count in owners:
            out = vectors[at : at + count].astype(np.float32)
            at += count
            responses[i] = pb_utils.InferenceResponse([pb_utils.Tensor("embedding", out)])
        return responses
