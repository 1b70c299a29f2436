"""Speed, side by side: longscribe end to end against faster-whisper on the same cores, on two recordings.

One run builds two podcast-like MP3s (44.1 kHz stereo 128 kb/s) of about
`--minutes` each from ../shared/data/speech: the bench's recording (the
long-form recording repeated, mostly LJ Speech's reader) and a second one of
other speakers (the MIT lecture, which has no reference, then the LibriSpeech,
Austen and jfk clips in a new order each round; its WER is scored over the
referenced clips only). It serves them over a local Range-honouring server
and transcribes each with longscribe (REST -> orchestrator -> Triton) and with
faster-whisper's sequential `transcribe` and its `BatchedInferencePipeline` on
the same weights (tiny.en), compute type (int8), greedy decoding and threads.
Every system gets one warm-up call first.

Per recording it prints one table (wall seconds, speedup, longscribe's
speedup over each, WER, windows decoded: encoder passes, per audio minute),
the goal line longscribe / batched >= 1.2, and longscribe's time split in
CPU seconds (/proc/<pid>/stat of each process) with each stage's share:
encoder, decoder, alignment and mel (the whisper stubs' CPU, split by the
model's own timers in verbose_json's timings), orchestration (the
orchestrator's process), the micro chunker's stub, Triton's server and
FFmpeg. JSON in bench/results/speed.json.

    make bench                                  # or: .venv/bin/python -m bench.speed
    .venv/bin/python -m bench.speed --minutes 5 # a short smoke run
    .venv/bin/python -m bench.speed --replicas  # also 2 Triton processes, each pinned to half the cores
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import tritonclient.grpc.aio as grpcclient
from whisper_normalizer.english import EnglishTextNormalizer

from tests.corpus import Recording, manifest, wer

from .harness import (
    Result,
    faster_whisper_results,
    longscribe_result,
    longscribe_service,
    other_speakers_mp3,
    repeated_mp3,
    save_results,
    threads,
    transcribe,
)
from .memory import descendants
from .work import Goal, markdown, per_audio_minute, process_cpu, scored_runs, time_split, triton_part, verdict

RESULTS = Path(__file__).resolve().parent / "results" / "speed.json"
DEFAULTS = {"macro_chunk_size_sec": 300, "micro_chunk_size_sec": 30}
MODELS = ("whisper", "micro_chunker")
GOAL = 1.2  # longscribe's speedup over the batched pipeline's, on each recording
BATCHED = "BatchedInferencePipeline"


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


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far: this process (the orchestrator, with the bench's media server and client, which
    are light), its reaped children (FFmpeg, ffprobe) and the live ones: Triton's server and its stubs, by
    the model each runs."""
    me = os.getpid()
    own = process_cpu(me)
    seconds = {"orchestrator_s": own.own_s, "ffmpeg_s": own.children_s}
    for pid, name in descendants(me).items():
        if pid == me or name.startswith(("ffmpeg", "ffprobe")):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        except OSError:
            continue
        cpu, key = process_cpu(pid), f"{triton_part(cmdline)}_s"
        seconds[key] = seconds.get(key, 0.0) + cpu.own_s + cpu.children_s
    return seconds


async def run_longscribe(recordings: list[Recording], warm_up: Path, replicas: int) -> list[Result]:
    """Each recording in turn on one service, after one warm-up call; CPU and Triton's statistics per request."""
    media_dir = recordings[0].path.parent
    name = "longscribe" if replicas == 1 else f"longscribe, {replicas} Triton processes"
    results = []
    async with longscribe_service(media_dir, replicas=replicas) as (api, media, grpc_urls):
        await transcribe(api, f"{media}/{warm_up.name}", DEFAULTS)
        for recording in recordings:
            before, cpu_before = await triton_seconds(grpc_urls), cpu_seconds()
            out, wall = await transcribe(api, f"{media}/{recording.path.name}", DEFAULTS)
            after, cpu_after = await triton_seconds(grpc_urls), cpu_seconds()
            triton = {m: {k: after[m][k] - before[m][k] for k in after[m]} for m in MODELS}
            cpu = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
            results.append(longscribe_result(name, out, wall, {"triton": triton, "replicas": replicas, "cpu": cpu}))
    return results


def scored_wer(recording: Recording, result: Result) -> float:
    """WER over what the reference covers: everywhere, or each scored stretch against its best run of words."""
    if not recording.scored:
        return wer(recording.reference, result.text)
    stretches = [(s.start_s, s.end_s, s.reference) for s in recording.scored]
    pairs = scored_runs(result.segments, stretches, EnglishTextNormalizer())
    return wer(" ".join(r for r, _ in pairs), " ".join(h for _, h in pairs))


def speed_goal(recording: Recording, results: list[Result]) -> Goal | None:
    batched = next((r for r in results if BATCHED in r.name), None)
    if batched is None:
        return None
    return Goal(f"longscribe ÷ {BATCHED}", batched.wall_s / results[0].wall_s, GOAL, at_least=True)


def system_rows(recording: Recording, results: list[Result]) -> list[list[str]]:
    ours = results[0]
    rows = []
    for r in results:
        windows = r.extra.get("windows")
        rows.append(
            [
                r.name,
                f"{r.wall_s:.1f}",
                f"{recording.duration_s / r.wall_s:.1f}x",
                f"{r.wall_s / ours.wall_s:.2f}",
                f"{100 * scored_wer(recording, r):.1f} %",
                "?" if windows is None else str(windows),
                "?" if windows is None else f"{per_audio_minute(windows, recording.duration_s):.2f}",
            ]
        )
    return rows


def split_rows(result: Result) -> list[list[str]]:
    stages = time_split(result.extra["timings"], result.extra["cpu"])
    return [
        [s.name, f"{s.cpu_s:.2f}", f"{s.share:.2f}", "" if s.model_s is None else f"{s.model_s:.2f}"] for s in stages
    ]


def recording_report(title: str, recording: Recording, results: list[Result]) -> str:
    ours = results[0]
    t, triton, cpu = ours.extra["timings"], ours.extra["triton"], ours.extra["cpu"]
    head = ["system", "wall s", "speedup", "longscribe ÷ this", "WER", "windows", "windows / audio min"]
    scored = (
        "WER over the referenced clips only (each block against its best run of words); " if recording.scored else ""
    )
    lines = [
        f"## {title}: {recording.duration_s / 60:.1f} min, {len(recording.reference.split())} reference words",
        "",
        markdown(head, system_rows(recording, results)),
        "",
        f"{scored}windows: 30 s encoder passes (longscribe: its timings, fallbacks and second looks included; "
        "faster-whisper: its model's encode calls, a batch counting each row)",
    ]
    goal = speed_goal(recording, results)
    if goal is not None:
        lines += [goal.line()]
    windows = max(1, int(t.get("whisper_windows", 0)))
    lines += [
        "",
        "longscribe's time split in CPU seconds during the request (/proc/<pid>/stat of each process; the whisper "
        "stubs' split among its four stages by the model's own timers, shown as model s):",
        "",
        markdown(["stage", "CPU s", "share", "model s"], split_rows(ours)),
        "",
        f"aligned windows: {t.get('whisper_aligned', 0)} of {t.get('whisper_windows', 0)} "
        f"({t.get('whisper_aligned', 0) / windows:.2f}); CPU {sum(cpu.values()):.1f} s of wall {ours.wall_s:.1f} s "
        f"x {threads()} cores ({sum(cpu.values()) / (ours.wall_s * threads()):.2f} busy)",
        f"orchestrator's timers (summed over chunks): probe {t['probe_sec']:.2f}, silence search "
        f"{t['silence_search_sec']:.2f}, FFmpeg decode {t['decode_sec']:.2f}, "
        f"inference calls {t['inference_sec']:.2f}, "
        f"merge {t['merge_sec']:.3f}; whisper queueing {triton['whisper']['queue_s']:.2f}, "
        f"{triton['whisper']['executions']:.0f} executions",
    ]
    return "\n".join(lines)


def report(recordings: dict[str, Recording], results: dict[str, list[Result]]) -> str:
    parts = [f"tiny.en int8 greedy, {threads()} cores; MP3 44.1 kHz stereo 128 kb/s"]
    parts += [recording_report(title, recordings[title], results[title]) for title in recordings]
    goals = [g for title in recordings if (g := speed_goal(recordings[title], results[title]))]
    if goals:
        met = all(g.met for g in goals)
        each = ", ".join(f"{title} {g.value:.2f}" for title, g in zip(recordings, goals))
        parts.append(f"done when longscribe ÷ {BATCHED} >= {GOAL:g} on both recordings: {each} ({verdict(met)})")
    return "\n\n".join(parts)


def payload(recordings: dict[str, Recording], results: dict[str, list[Result]]) -> dict[str, Any]:
    return {
        "threads": threads(),
        "recordings": {
            title: {
                "audio_s": recording.duration_s,
                "reference_words": len(recording.reference.split()),
                "scored_s": [(s.start_s, s.end_s) for s in recording.scored],
                "rows": {
                    r.name: {
                        "wall_s": r.wall_s,
                        "speedup": recording.duration_s / r.wall_s,
                        "wer": scored_wer(recording, r),
                        "windows_per_audio_minute": per_audio_minute(r.extra.get("windows") or 0, recording.duration_s),
                        **r.extra,
                    }
                    for r in results[title]
                },
            }
            for title, recording in recordings.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0, help="length of each recording (default 30)")
    parser.add_argument("--replicas", action="store_true", help="also run 2 Triton processes, each on half the cores")
    parser.add_argument("--no-peers", action="store_true", help="longscribe only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        recordings = {
            "the bench's recording (long form repeated)": repeated_mp3(work, args.minutes),
            "other speakers (lecture, LibriSpeech, Austen, jfk)": other_speakers_mp3(work, args.minutes),
        }
        warm_up = work / "jfk.flac"
        shutil.copy(next(c.path for c in manifest() if c.path.name == "jfk.flac"), warm_up)
        ordered = list(recordings.values())
        ours = asyncio.run(run_longscribe(ordered, warm_up, replicas=1))
        results = {title: [r] for title, r in zip(recordings, ours)}
        if args.replicas:
            for title, r in zip(recordings, asyncio.run(run_longscribe(ordered, warm_up, replicas=2))):
                results[title].append(r)
        if not args.no_peers:
            for title, recording in recordings.items():
                results[title] += faster_whisper_results(recording.path, warm_up)
        text = report(recordings, results)
    print(text)
    save_results(RESULTS, payload(recordings, results))


if __name__ == "__main__":
    main()
