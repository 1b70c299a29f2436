"""Long-form accuracy, side by side: longscribe (REST -> orchestrator -> Triton) and faster-whisper.

One run builds a recording from ../shared/data/speech (every clip with a
reference, joined with 0.4-1.5 s low-noise gaps), serves it over a local
Range-honouring server, and prints one table: WER after Whisper's English
normaliser for longscribe at the default sizes and with forced cuts (macro
20 s, micro 8 s), faster-whisper's sequential `transcribe` and its
`BatchedInferencePipeline` on the same weights, compute type and threads,
and longscribe's clip-start timestamp error. Results also go to
bench/results/accuracy.json.

    make bench-accuracy        # or: .venv/bin/python -m bench.accuracy
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from longscribe_core import weights
from orchestrator.app import create_app
from orchestrator.net import free_port
from orchestrator.range_server import file_app, serving
from orchestrator.settings import Settings
from orchestrator.triton_server import running_triton
from tests.corpus import Recording, long_form_recording, wer

RESULTS = Path(__file__).resolve().parent / "results" / "accuracy.json"
DEFAULT = {"macro_chunk_size_sec": 300, "micro_chunk_size_sec": 30}
FORCED_CUTS = {"macro_chunk_size_sec": 20, "micro_chunk_size_sec": 8}


def clip_start_error(segments: list[tuple[float, str]], recording: Recording) -> tuple[float, float]:
    """Mean and max distance from each clip's true start to the nearest segment start."""
    starts = np.array([s for s, _ in segments]) if segments else np.array([np.inf])
    errors = [float(np.abs(starts - truth).min()) for truth in recording.clip_starts_s]
    return float(np.mean(errors)), float(np.max(errors))


async def longscribe(recording: Recording) -> dict[str, dict[str, Any]]:
    """Whisper in Triton runs one intra-op thread per core (config.pbtxt `threads: 0`), as the peers here."""
    settings = Settings(triton_http_port=free_port(), triton_grpc_port=free_port(), triton_metrics_port=free_port())
    rows: dict[str, dict[str, Any]] = {}
    async with running_triton(settings) as grpc_url, serving(file_app(recording.path.parent)) as media:
        async with serving(create_app(settings.model_copy(update={"triton_grpc_urls": [grpc_url]}))) as api:
            async with aiohttp.ClientSession() as session:
                for name, params in (("default sizes", DEFAULT), ("forced cuts (20 s / 8 s)", FORCED_CUTS)):
                    body = {"media_url": f"{media}/{recording.path.name}", "params": params}
                    started = time.perf_counter()
                    async with session.post(f"{api}/v1/transcribe", json=body) as response:
                        out = await response.json()
                        assert response.status == 200, out
                    wall = time.perf_counter() - started
                    segments = [(s["start_time_sec"], s["text"]) for s in out["segments"]]
                    rows[f"longscribe, {name}"] = row(recording, out["text"], wall, segments)
    return rows


def row(recording: Recording, text: str, wall_s: float, segments: list[tuple[float, str]]) -> dict[str, Any]:
    mean_err, max_err = clip_start_error(segments, recording)
    return {
        "wer": wer(recording.reference, text),
        "text": text,  # to diff runs
        "wall_s": wall_s,
        "speedup": recording.duration_s / wall_s,
        "start_error_mean_s": mean_err,
        "start_error_max_s": max_err,
    }


def faster_whisper(recording: Recording, threads: int) -> dict[str, dict[str, Any]]:
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    model = WhisperModel(weights.resolve("tiny.en"), device="cpu", compute_type="int8", cpu_threads=threads)
    rows: dict[str, dict[str, Any]] = {}
    runs = (
        ("faster-whisper transcribe (sequential)", lambda: model.transcribe(str(recording.path), beam_size=1)),
        (
            "faster-whisper BatchedInferencePipeline (8)",
            lambda: BatchedInferencePipeline(model).transcribe(str(recording.path), beam_size=1, batch_size=8),
        ),
    )
    for name, run in runs:
        started = time.perf_counter()
        segments, _ = run()
        segments = [(s.start, s.text.strip()) for s in segments]
        wall = time.perf_counter() - started
        rows[name] = row(recording, " ".join(t for _, t in segments), wall, segments)
    return rows


def table(recording: Recording, rows: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"recording: {recording.duration_s:.0f} s, {len(recording.clip_starts_s)} clips; tiny.en int8 greedy",
        "",
        "| system | WER | speedup | clip start error mean / max (s) |",
        "|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {100 * r['wer']:.1f} % | {r['speedup']:.0f}x "
            f"| {r['start_error_mean_s']:.2f} / {r['start_error_max_s']:.2f} |"
        )
    peers = [r["wer"] for n, r in rows.items() if n.startswith("faster-whisper")]
    ours = rows["longscribe, default sizes"]["wer"]
    cuts = rows["longscribe, forced cuts (20 s / 8 s)"]["wer"]
    lines += [
        "",
        f"longscribe WER - better peer's: {100 * (ours - min(peers)):+.1f} points (goal: <= 0)",
        f"forced cuts - default sizes: {100 * (cuts - ours):+.1f} points (bound: <= 1.5)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        recording = long_form_recording(Path(tmp) / "long-form.wav")
        rows = asyncio.run(longscribe(recording))
        rows.update(faster_whisper(recording, threads))
    print(table(recording, rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"duration_s": recording.duration_s, "threads": threads, "rows": rows}, indent=2))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
