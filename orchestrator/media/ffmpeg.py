"""FFmpeg: one time range of the media -> 16 kHz mono s16le PCM, read by seeking."""

from __future__ import annotations

import numpy as np

from longscribe_core.audio import SAMPLE_RATE, Int16Audio
from orchestrator.common import proc
from orchestrator.errors import MediaUnreadable
from orchestrator.media.guard import INPUT_GUARD


def ffmpeg_args(ffmpeg_bin: str, url: str, start_s: float, duration_s: float) -> list[str]:
    """`-ss`/`-t` stand before `-i`: FFmpeg seeks the input (HTTP Range) instead
    of decoding from byte 0, then decodes accurately from the seek point."""
    args = [ffmpeg_bin, "-nostdin", "-hide_banner", "-loglevel", "error"]
    if start_s > 0:
        args += ["-ss", f"{start_s:.6f}"]
    args += [
        *INPUT_GUARD,
        "-t",
        f"{duration_s:.6f}",
        "-i",
        url,
        "-map",
        "0:a:0",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-f",
        "s16le",
        "pipe:1",
    ]
    return args


async def read_pcm(url: str, start_s: float, duration_s: float, ffmpeg_bin: str, timeout_s: float) -> Int16Audio:
    """PCM int16 [n] of [start_s, start_s + duration_s), shorter where the media ends first.

    Always bounded: a header can lie about the length, memory must not follow it."""
    try:
        done = await proc.run(ffmpeg_args(ffmpeg_bin, url, start_s, duration_s), timeout_s)
    except TimeoutError as exc:
        raise MediaUnreadable(f"FFmpeg did not finish reading {start_s:.1f} s.. within {timeout_s:g} s") from exc
    if done.returncode != 0:
        raise MediaUnreadable(f"FFmpeg failed at {start_s:.1f} s: {done.last_error_line()}")
    usable = len(done.stdout) - len(done.stdout) % 2
    return np.frombuffer(done.stdout[:usable], dtype=np.int16)
