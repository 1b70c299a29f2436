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
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tests.corpus import Recording, long_form_recording, wer

from .harness import faster_whisper_results, longscribe_service, threads, transcribe

RESULTS = Path(__file__).resolve().parent / "results" / "accuracy.json"
DEFAULT = {"macro_chunk_size_sec": 300, "micro_chunk_size_sec": 30}
FORCED_CUTS = {"macro_chunk_size_sec": 20, "micro_chunk_size_sec": 8}


def clip_start_error(segments: list[tuple[float, str]], recording: Recording) -> tuple[float, float]:
    """Mean and max distance from each clip's true start to the nearest segment start."""
    starts = np.array([s for s, _ in segments]) if segments else np.array([np.inf])
    errors = [float(np.abs(starts - truth).min()) for truth in recording.clip_starts_s]
    return float(np.mean(errors)), float(np.max(errors))


async def longscribe(recording: Recording) -> dict[str, dict[str, Any]]:
    """Whisper in Triton shares every core among its instances, as the peers here use every core."""
    rows: dict[str, dict[str, Any]] = {}
    async with longscribe_service(recording.path.parent) as (api, media, _):
        for name, params in (("default sizes", DEFAULT), ("forced cuts (20 s / 8 s)", FORCED_CUTS)):
            out, wall = await transcribe(api, f"{media}/{recording.path.name}", params)
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


def faster_whisper(recording: Recording) -> dict[str, dict[str, Any]]:
    return {r.name: row(recording, r.text, r.wall_s, r.segments) for r in faster_whisper_results(recording.path)}


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
    with tempfile.TemporaryDirectory() as tmp:
        recording = long_form_recording(Path(tmp) / "long-form.wav")
        rows = asyncio.run(longscribe(recording))
        rows.update(faster_whisper(recording))
    print(table(recording, rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"duration_s": recording.duration_s, "threads": threads(), "rows": rows}, indent=2))
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
