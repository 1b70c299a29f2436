"""ffprobe: the media's duration and whether it has an audio stream."""

from __future__ import annotations

import json
from dataclasses import dataclass

from orchestrator.common import proc
from orchestrator.errors import MediaNoAudio, MediaUnreachable, MediaUnreadable
from orchestrator.media.guard import INPUT_GUARD


@dataclass(frozen=True)
class MediaInfo:
    duration_s: float
    audio_codec: str
    sample_rate_hz: int
    channels: int


async def probe(url: str, ffprobe_bin: str, timeout_s: float) -> MediaInfo:
    """Read the container header over HTTP (a few range requests, not the file)."""
    args = [
        ffprobe_bin, "-v", "error", "-print_format", "json",
        "-show_entries", "format=duration:stream=codec_type,codec_name,sample_rate,channels,duration",
        *INPUT_GUARD, url,
    ]  # fmt: skip
    try:
        done = await proc.run(args, timeout_s)
    except TimeoutError as exc:
        raise MediaUnreachable(f"ffprobe could not read media_url within {timeout_s:g} s") from exc
    if done.returncode != 0:
        raise MediaUnreadable(f"FFmpeg cannot read the media: {done.last_error_line()}")
    info = json.loads(done.stdout or b"{}")
    audio = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    if not audio:
        raise MediaNoAudio("the media has no audio stream")
    duration = _first_float(info.get("format", {}).get("duration"), audio[0].get("duration"))
    if duration is None or duration <= 0:
        raise MediaUnreadable("the media's duration is unknown or zero (a live stream or an empty file?)")
    return MediaInfo(
        duration_s=duration,
        audio_codec=str(audio[0].get("codec_name", "unknown")),
        sample_rate_hz=int(audio[0].get("sample_rate") or 0),
        channels=int(audio[0].get("channels") or 0),
    )


def _first_float(*values: object) -> float | None:
    for value in values:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
    return None
