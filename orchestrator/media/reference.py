"""A known speaker's reference clip: a data URL -> 16 kHz mono float audio of 2-10 s, read by FFmpeg.

The clip is decoded from base64 (its size bounded by the request's schema), written to a private
temporary file that is deleted on every path out, and read by FFmpeg under the same demuxer whitelist
as any media (local files only: no network protocol). Anything that is not 2-10 s of audio is the
caller's mistake: SpeakerReferenceInvalid (422; OpenAI's routes answer 400).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import tempfile
from pathlib import Path

import numpy as np

from longscribe_core.audio import SAMPLE_RATE, FloatAudio
from orchestrator.common import proc
from orchestrator.errors import SpeakerReferenceInvalid
from orchestrator.media.guard import DEMUXERS

MIN_REFERENCE_S = 2.0  # OpenAI's bounds for known_speaker_references[]: shorter is too little to tell a voice by
MAX_REFERENCE_S = 10.0
READ_LIMIT_S = MAX_REFERENCE_S + 1.0  # FFmpeg stops here: a clip claiming hours costs no more than this
TIMEOUT_S = 30.0


def clip_bytes(data_url: str, position: int) -> bytes:
    """The bytes a data URL carries (base64 only: a reference clip is binary)."""
    head, sep, body = data_url.partition(",")
    if not head.startswith("data:") or not head.endswith(";base64") or not sep:
        raise SpeakerReferenceInvalid(f"known_speaker_references[{position}] is not a base64 data URL")
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SpeakerReferenceInvalid(f"known_speaker_references[{position}] is not valid base64: {exc}") from exc


def decode_args(ffmpeg_bin: str, path: Path) -> list[str]:
    return [
        ffmpeg_bin, "-nostdin", "-hide_banner", "-loglevel", "error",
        "-protocol_whitelist", "file", "-format_whitelist", DEMUXERS,
        "-t", f"{READ_LIMIT_S:.1f}", "-i", str(path),
        "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "pipe:1",
    ]  # fmt: skip


async def read_clip(data_url: str, position: int, ffmpeg_bin: str, tmp_dir: Path | None = None) -> FloatAudio:
    """The clip as float32 16 kHz mono [n], 2-10 s long; SpeakerReferenceInvalid otherwise."""
    data = clip_bytes(data_url, position)
    handle, name = tempfile.mkstemp(prefix="longscribe-reference-", dir=tmp_dir)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        try:
            done = await proc.run(decode_args(ffmpeg_bin, path), TIMEOUT_S)
        except TimeoutError as exc:
            raise SpeakerReferenceInvalid(f"known_speaker_references[{position}] took too long to decode") from exc
    finally:
        path.unlink(missing_ok=True)
    if done.returncode != 0:
        raise SpeakerReferenceInvalid(
            f"known_speaker_references[{position}] is not audio FFmpeg can read: {done.last_error_line()}"
        )
    audio = np.frombuffer(done.stdout[: len(done.stdout) - len(done.stdout) % 4], dtype=np.float32)
    seconds = len(audio) / SAMPLE_RATE
    if not MIN_REFERENCE_S <= seconds <= MAX_REFERENCE_S:
        longer = " or more" if seconds >= READ_LIMIT_S - 0.01 else ""
        raise SpeakerReferenceInvalid(
            f"known_speaker_references[{position}] lasts {seconds:.1f} s{longer}; a reference clip lasts "
            f"{MIN_REFERENCE_S:g}-{MAX_REFERENCE_S:g} s"
        )
    return audio


async def read_clips(
    named: list[tuple[str, str]], ffmpeg_bin: str, slots: asyncio.Semaphore, tmp_dir: Path | None = None
) -> list[tuple[str, FloatAudio]]:
    """Each (name, data URL) read in turn, each read holding one of `slots`: the orchestrator process's, so that
    a burst of submissions with clips runs no more FFmpeg decodes at once than it has slots (per process: a
    fleet of N orchestrators runs up to N times as many)."""
    read: list[tuple[str, FloatAudio]] = []
    for position, (name, data_url) in enumerate(named):
        async with slots:
            read.append((name, await read_clip(data_url, position, ffmpeg_bin, tmp_dir)))
    return read
