"""Speed, side by side: longscribe end to end against faster-whisper on the same cores.

One run builds a >= 30-minute podcast-like MP3 from ../shared/data/speech
(the long-form recording repeated), serves it over a local Range-honouring
server, and transcribes it with longscribe (REST -> orchestrator -> Triton)
and with faster-whisper's `transcribe` and `BatchedInferencePipeline` on the
same weights (tiny.en), compute type (int8), greedy decoding and threads.
Every system gets one warm-up call first. It prints one table (audio and wall
seconds, speedup, longscribe's speedup over each, WER) and longscribe's time
split, and writes bench/results/speed.json.

    make bench                                  # or: .venv/bin/python -m bench.speed
    .venv/bin/python -m bench.speed --replicas  # also 2 Triton processes, each pinned to half the cores
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tritonclient.grpc.aio as grpcclient

from tests.corpus import Recording, manifest, wer

from .harness import (
    Result,
    faster_whisper_results,
    longscribe_result,
    longscribe_service,
    repeated_mp3,
    save_results,
    threads,
    transcribe,
)

RESULTS = Path(__file__).resolve().parent / "results" / "speed.json"
DEFAULTS = {"macro_chunk_size_sec": 300, "micro_chunk_size_sec": 30}
MODELS = ("whisper", "micro_chunker")


async def triton_seconds(grpc_urls: list[str]) -> dict[str, dict[str, float]]:
    """Cumulative queueing and compute seconds per model, summed over the replicas."""
    totals: dict[str, dict[str, float]] = {m: {"queue_s": 0.0, "compute_s": 0.0, "executions": 0} for m in MODELS}
    for url in grpc_urls:
        async with grpcclient.InferenceServerClient(url) as client:
            for model in MODELS:
                stats = (await client.get_inference_statistics(model, as_json=True))["model_stats"][0]
                ns = {key: int(value.get("ns", 0)) for key, value in stats.get("inference_stats", {}).items()}
                totals[model]["queue_s"] += ns.get("queue", 0) / 1e9
                compute = ns.get("compute_input", 0) + ns.get("compute_infer", 0) + ns.get("compute_output", 0)
                totals[model]["compute_s"] += compute / 1e9
                totals[model]["executions"] += int(stats.get("execution_count", 0))
    return totals


async def run_longscribe(recording: Recording, warm_up: Path, replicas: int) -> Result:
    media_dir = recording.path.parent
    async with longscribe_service(media_dir, replicas=replicas) as (api, media, grpc_urls):
        await transcribe(api, f"{media}/{warm_up.name}", DEFAULTS)
        before = await triton_seconds(grpc_urls)
        out, wall = await transcribe(api, f"{media}/{recording.path.name}", DEFAULTS)
        after = await triton_seconds(grpc_urls)
    triton = {m: {k: after[m][k] - before[m][k] for k in after[m]} for m in MODELS}
    name = "longscribe" if replicas == 1 else f"longscribe, {replicas} Triton processes"
    return longscribe_result(name, out, wall, {"triton": triton, "replicas": replicas})


def table(recording: Recording, results: list[Result]) -> str:
    ours = results[0]
    speed = {r.name: recording.duration_s / r.wall_s for r in results}
    lines = [
        f"recording: {recording.duration_s / 60:.1f} min MP3 (44.1 kHz stereo 128 kb/s) of real speech; "
        f"tiny.en int8 greedy, {threads()} cores",
        "",
        "| system | audio s | wall s | speedup | longscribe's speedup ÷ this | WER |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {recording.duration_s:.0f} | {r.wall_s:.1f} | {speed[r.name]:.1f}x "
            f"| {speed[ours.name] / speed[r.name]:.2f} | {100 * wer(recording.reference, r.text):.1f} % |"
        )
    t, triton = ours.extra["timings"], ours.extra["triton"]
    lines += [
        "",
        f"longscribe's time split (wall {ours.wall_s:.1f} s; chunk sums overlap, so they exceed it):",
        "",
        "| stage | seconds |",
        "|---|---|",
        f"| probe (range check + ffprobe) | {t['probe_sec']:.2f} |",
        f"| silence search for macro cuts | {t['silence_search_sec']:.2f} |",
        f"| FFmpeg decode of macro chunks, summed | {t['decode_sec']:.2f} |",
        f"| inference calls, summed over chunks | {t['inference_sec']:.2f} |",
        f"| whisper: queueing, summed over requests | {triton['whisper']['queue_s']:.2f} |",
        f"| whisper: compute, summed per request (a batch counts for each) | {triton['whisper']['compute_s']:.2f} |",
        f"| whisper executions (batches) | {triton['whisper']['executions']:.0f} |",
        f"| micro_chunker: compute incl. waiting on whisper | {triton['micro_chunker']['compute_s']:.2f} |",
        f"| merge | {t['merge_sec']:.3f} |",
    ]
    batched = next((r for r in results if "Batched" in r.name), None)
    if batched:
        ratio = speed[ours.name] / speed[batched.name]
        lines += ["", f"goal: longscribe ÷ BatchedInferencePipeline >= 1.2; this run: {ratio:.2f}"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the recording (default 30)")
    parser.add_argument("--replicas", action="store_true", help="also run 2 Triton processes, each on half the cores")
    parser.add_argument("--no-peers", action="store_true", help="longscribe only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        recording = repeated_mp3(work, args.minutes)
        warm_up = work / "jfk.flac"
        shutil.copy(next(c.path for c in manifest() if c.path.name == "jfk.flac"), warm_up)
        results = [asyncio.run(run_longscribe(recording, warm_up, replicas=1))]
        if args.replicas:
            results.append(asyncio.run(run_longscribe(recording, warm_up, replicas=2)))
        if not args.no_peers:
            results += faster_whisper_results(recording.path, warm_up)
        report = table(recording, results)
    print(report)
    payload: dict[str, Any] = {
        "audio_s": recording.duration_s,
        "threads": threads(),
        "rows": {
            r.name: {
                "wall_s": r.wall_s,
                "speedup": recording.duration_s / r.wall_s,
                "wer": wer(recording.reference, r.text),
                **r.extra,
            }
            for r in results
        },
    }
    save_results(RESULTS, payload)


if __name__ == "__main__":
    main()
