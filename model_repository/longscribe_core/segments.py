"""The record that flows from the model to the transcript, and its wire form."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Segment:
    """One stretch of recognised speech; times in seconds from the owner's start."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float = 0.0  # mean token log-probability of the decoded text
    no_speech_prob: float = 0.0  # the decoder's belief that the window held no speech

    def shifted(self, offset_s: float) -> Segment:
        """The same segment with both times moved by `offset_s`."""
        return replace(self, start_s=self.start_s + offset_s, end_s=self.end_s + offset_s)


@dataclass(frozen=True)
class ChunkResult:
    """What a model returns for one piece of audio."""

    segments: tuple[Segment, ...]
    language: str | None


def encode_result(result: ChunkResult) -> bytes:
    """ChunkResult -> UTF-8 JSON, the BYTES tensor element the models exchange."""
    payload = {"language": result.language, "segments": [asdict(s) for s in result.segments]}
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def decode_result(raw: bytes | str) -> ChunkResult:
    """Inverse of `encode_result`."""
    payload = json.loads(raw)
    segments = tuple(Segment(**s) for s in payload["segments"])
    return ChunkResult(segments=segments, language=payload.get("language"))
