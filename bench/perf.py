"""Load test of the Triton models with perf_analyzer, fed real speech.

Starts a Triton with the project's models, writes perf_analyzer input data
from ../shared/data/speech (JFK's 11 s for `whisper` (Whisper pads every window to 30 s, so its
audio seconds per second understate what full pieces reach), 60 s of LJ Speech for
`micro_chunker`), sweeps concurrency, and prints throughput (requests and
audio seconds per second) and latency percentiles per model.

    make perf                 # or: .venv/bin/python -m bench.perf

perf_analyzer comes from the tritonclient 2.51 wheel (later wheels dropped
it); it needs Debian's libb64-0d and libcudart.so.12 from the
nvidia-cuda-runtime-cu12 wheel, which `make perf` installs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from orchestrator.infer.triton_server import FREE_PORTS, running_triton
from orchestrator.settings import Settings
from tests.corpus import clips_under, decode_pcm, manifest

from .harness import save_results

RESULTS = Path(__file__).resolve().parent / "results" / "perf.json"
SAMPLE_RATE = 16_000
MACRO_S = 60.0  # the micro_chunker's input: one macro chunk of real speech


def perf_analyzer() -> Path:
    found = shutil.which("perf_analyzer", path=str(Path(sys.prefix) / "bin")) or shutil.which("perf_analyzer")
    if not found:
        raise SystemExit("perf_analyzer not found: run `make perf`, which installs it (tritonclient 2.51 wheel)")
    return Path(found)


def cuda_runtime_lib() -> str:
    """libcudart.so.12 from the nvidia-cuda-runtime-cu12 wheel: perf_analyzer links it even on a CPU."""
    import nvidia.cuda_runtime  # type: ignore[import-untyped]

    return str(Path(next(iter(nvidia.cuda_runtime.__path__))) / "lib")


def input_data(work: Path) -> dict[str, tuple[Path, float]]:
    """One JSON per model, with the audio seconds each request carries."""
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    speech = decode_pcm(jfk.path).astype(np.float32) / 32768.0
    whisper = {"data": [{"audio": {"content": speech.tolist(), "shape": [len(speech)]}}]}
    lj = np.concatenate([decode_pcm(c.path) for c in clips_under("ljspeech")])[: int(MACRO_S * SAMPLE_RATE)]
    micro = {
        "data": [
            {
                "audio": {"content": lj.astype(int).tolist(), "shape": [len(lj)]},
                "micro_chunk_size_sec": [30.0],
                "silence_detection_smoothing_num_samples": [1600],
            }
        ]
    }
    paths = {}
    for model, payload, seconds in (("whisper", whisper, len(speech)), ("micro_chunker", micro, len(lj))):
        path = work / f"{model}.json"
        path.write_text(json.dumps(payload))
        paths[model] = (path, seconds / SAMPLE_RATE)
    return paths


def sweep(grpc_url: str, model: str, data: Path, concurrency: str, out_csv: Path) -> list[dict[str, str]]:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [cuda_runtime_lib(), env.get("LD_LIBRARY_PATH")]))
    args = [
        str(perf_analyzer()),
        "-m", model,
        "-u", grpc_url,
        "-i", "grpc",
        "--input-data", str(data),
        "--concurrency-range", concurrency,
        "--measurement-mode", "count_windows",
        "--measurement-request-count", "12" if model == "whisper" else "4",
        # a shared 2-core machine is noisy: a level that never settles ends the sweep there
        "--stability-percentage", "50",
        "--max-trials", "6",
        "-f", str(out_csv),
    ]  # fmt: skip
    if model == "whisper":
        args += ["-b", "1"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"perf_analyzer failed on {model}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    with out_csv.open() as f:
        return list(csv.DictReader(f))


def table(rows: dict[str, list[dict[str, str]]], seconds: dict[str, float]) -> str:
    lines = [
        "| model | concurrency | requests/s | audio s per s | p50 latency ms | p95 latency ms |",
        "|---|---|---|---|---|---|",
    ]
    for model, measured in rows.items():
        for r in sorted(measured, key=lambda r: int(r["Concurrency"])):
            throughput = float(r["Inferences/Second"])
            lines.append(
                f"| {model} | {r['Concurrency']} | {throughput:.2f} | {throughput * seconds[model]:.1f} "
                f"| {float(r['p50 latency']) / 1000:.0f} | {float(r['p95 latency']) / 1000:.0f} |"
            )
    return "\n".join(lines)


async def main_async(whisper_range: str, micro_range: str) -> None:
    settings = Settings(**FREE_PORTS)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = input_data(work)
        async with running_triton(settings) as grpc_url:
            rows = {}
            for model, concurrency in (("whisper", whisper_range), ("micro_chunker", micro_range)):
                path, _ = data[model]
                rows[model] = await asyncio.to_thread(sweep, grpc_url, model, path, concurrency, work / f"{model}.csv")
    seconds = {model: s for model, (_, s) in data.items()}
    print(
        f"perf_analyzer, real speech: whisper {seconds['whisper']:.1f} s per request, "
        f"micro_chunker {seconds['micro_chunker']:.0f} s per request; {len(os.sched_getaffinity(0))} cores"
    )
    print()
    print(table(rows, seconds))
    save_results(RESULTS, {"audio_s_per_request": seconds, "rows": rows})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--whisper-concurrency", default="1:4:1", help="perf_analyzer range start:end:step")
    parser.add_argument("--micro-concurrency", default="1:2:1", help="perf_analyzer range start:end:step")
    args = parser.parse_args()
    asyncio.run(main_async(args.whisper_concurrency, args.micro_concurrency))


if __name__ == "__main__":
    main()
