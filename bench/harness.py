"""What the benchmarks share: recordings built from real speech, longscribe end to end, and the peers.

longscribe always runs the whole path (REST -> orchestrator -> Triton) on a
media server that honours Range; faster-whisper gets the same file, weights,
compute type and threads.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp

from longscribe_core import weights
from orchestrator.api.app import create_app
from orchestrator.common.fileserver import file_app
from orchestrator.common.net import serving
from orchestrator.infer.triton_server import FREE_PORTS, running_triton
from orchestrator.settings import Settings
from tests.corpus import Recording, other_speakers_recording, repeated_recording

from .work import EncodeCounter

LOOPBACK = ["127.0.0.0/8"]  # the benchmark's media server
MP3_ARGS = ["-ar", "44100", "-ac", "2", "-b:a", "128k"]  # what a podcast feed serves


@dataclass(frozen=True)
class Result:
    """One system on one recording."""

    name: str
    text: str
    wall_s: float
    segments: list[tuple[float, str]]  # (start, text)
    extra: dict[str, Any]


def save_results(path: Path, payload: Any) -> None:
    """Every benchmark's figures as JSON in bench/results/, and where they went."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2))
    print(f"\nwritten to {path}")


BENCH_KEY = "bench-key"  # the soak runs keyed, as a shared service does: LONGSCRIBE_API_KEYS names it
BENCH_AUTH = {"Authorization": f"Bearer {BENCH_KEY}"}


def serve_command(port: int, keyed: bool = False) -> list[str]:
    """`longscribe serve` on `port`, its managed Triton on free ports: the service as a user runs it.

    `keyed`: the caller puts BENCH_KEY in LONGSCRIBE_API_KEYS and sends BENCH_AUTH; otherwise without auth,
    said so (the speed and memory benchmarks measure the pipeline, not the keys)."""
    return [
        sys.executable, "-m", "orchestrator.cli", "serve", *([] if keyed else ["--no-auth"]), "--port", str(port),
        "--triton-http-port", "0", "--triton-grpc-port", "0", "--triton-metrics-port", "0",  # free ones
    ]  # fmt: skip


def keyed_env(**more: str) -> dict[str, str]:
    """The environment of a keyed `serve`: this one, BENCH_KEY as its only key, media from loopback allowed."""
    return {
        **os.environ,
        "LONGSCRIBE_API_KEYS": json.dumps([BENCH_KEY]),
        "LONGSCRIBE_ALLOWED_MEDIA_HOSTS": '["127.0.0.0/8"]',
        **more,
    }


def threads() -> int:
    return len(os.sched_getaffinity(0))


def repeated_mp3(work: Path, minutes: float, mp3_args: list[str] = MP3_ARGS) -> Recording:
    """The long-form recording (~5 min of real speech) as a podcast-like MP3, repeated to `minutes`."""
    return repeated_recording(work, minutes, mp3_args)


def other_speakers_mp3(work: Path, minutes: float, mp3_args: list[str] = MP3_ARGS) -> Recording:
    """`tests.corpus.other_speakers_recording` (the lecture and the clips not read by LJ Speech's reader)
    as a podcast-like MP3 of about `minutes`."""
    wav = other_speakers_recording(work / "other-speakers.wav", minutes)
    mp3 = work / "other-speakers.mp3"
    args = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav.path), *mp3_args, str(mp3)]
    subprocess.run(args, check=True)
    wav.path.unlink()
    return replace(wav, path=mp3)


@contextlib.asynccontextmanager
async def longscribe_service(media_dir: Path, replicas: int = 1) -> AsyncIterator[tuple[str, str, list[str]]]:
    """Triton replica(s), the media server and the REST API: yield (api URL, media URL, Triton gRPC URLs).

    Several replicas split the cores between them (CPU affinity), as separate machines or pods would."""
    cores = sorted(os.sched_getaffinity(0))
    async with contextlib.AsyncExitStack() as stack:
        grpc_urls = []
        for k in range(replicas):
            settings = Settings(
                **FREE_PORTS,
                triton_cpus=cores[k::replicas] if replicas > 1 else [],
            )
            grpc_urls.append(await stack.enter_async_context(running_triton(settings)))
        media = await stack.enter_async_context(serving(file_app(media_dir)))
        api = await stack.enter_async_context(
            serving(create_app(Settings(triton_grpc_urls=grpc_urls, allowed_media_hosts=LOOPBACK)))
        )
        yield api, media, grpc_urls


async def transcribe(api: str, media_url: str, params: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """POST one request (verbose_json, for the timings); the answer and the client-side wall time."""
    body = {"media_url": media_url, "params": params, "response_format": "verbose_json"}
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.post(f"{api}/v1/transcribe", json=body) as response:
            out = await response.json()
            if response.status != 200:
                raise RuntimeError(f"longscribe answered {response.status}: {out}")
    return out, time.perf_counter() - started


def longscribe_result(name: str, out: dict[str, Any], wall_s: float, extra: dict[str, Any] | None = None) -> Result:
    """`windows`: the encoder passes the whisper model reports in verbose_json's timings."""
    segments = [(s["start_time_sec"], s["text"]) for s in out["segments"]]
    timings = out.get("timings", {})
    return Result(
        name,
        out["text"],
        wall_s,
        segments,
        {"timings": timings, "windows": timings.get("whisper_windows"), **(extra or {})},
    )


def faster_whisper_results(
    path: Path, warm_up: Path | None = None, batched: bool = True, sequential: bool = True
) -> list[Result]:
    """faster-whisper as a user would call it: tiny.en, int8, greedy, every core; each run warmed up first.

    Each result's `windows` are the encoder passes its model made on `path` (`EncodeCounter`)."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(weights.resolve("tiny.en"), device="cpu", compute_type="int8", cpu_threads=threads())
    encodes = EncodeCounter(model)
    runs = []
    if sequential:
        runs.append(("faster-whisper transcribe (sequential)", lambda p: model.transcribe(str(p), beam_size=1)))
    if batched:
        pipeline = BatchedInferencePipeline(model)
        runs.append(
            (
                "faster-whisper BatchedInferencePipeline (8)",
                lambda p: pipeline.transcribe(str(p), beam_size=1, batch_size=8),
            )
        )
    results = []
    for name, run in runs:
        if warm_up is not None:
            list(run(warm_up)[0])
        encodes.reset()
        started = time.perf_counter()
        segments, _ = run(path)
        timed = [(s.start, s.text.strip()) for s in segments]  # the generator decodes as it is read
        wall = time.perf_counter() - started
        extra = {"windows": encodes.windows, "encode_calls": encodes.calls}
        results.append(Result(name, " ".join(t for _, t in timed), wall, timed, extra))
    return results
