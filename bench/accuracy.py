"""Long-form accuracy, side by side: longscribe (REST -> orchestrator -> Triton) and faster-whisper.

One run builds two recordings from ../shared/data/speech, each joined with
0.4-1.5 s low-noise gaps: the long form (every clip with a reference) and the
cased one (only the clips whose reference keeps case and punctuation: LJ
Speech and jfk). It serves them over a local Range-honouring server and
prints one table for longscribe at the default sizes and with forced cuts
(macro 20 s, micro 8 s), faster-whisper's sequential `transcribe` and its
`BatchedInferencePipeline` on the same weights, compute type and threads:
WER after Whisper's English normaliser on both recordings, and on the cased
one formatted WER (case and `. , ? !` kept) and join artifacts per 1,000
words (`tests.readability`); plus the speedup, the windows decoded per audio
minute (30 s encoder passes) and the clip-start timestamp error on the long
form. Results also go to bench/results/accuracy.json.

    make bench-accuracy        # or: .venv/bin/python -m bench.accuracy
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tests.corpus import Recording, long_form_recording, wer
from tests.readability import formatted_wer, join_artifacts

from .harness import faster_whisper_results, longscribe_service, save_results, threads, transcribe
from .work import per_audio_minute

RESULTS = Path(__file__).resolve().parent / "results" / "accuracy.json"
DEFAULT = {"macro_chunk_size_sec": 300, "micro_chunk_size_sec": 30}
FORCED_CUTS = {"macro_chunk_size_sec": 20, "micro_chunk_size_sec": 8}


def clip_start_error(segments: list[tuple[float, str]], recording: Recording) -> tuple[float, float]:
    """Mean and max distance from each clip's true start to the nearest segment start."""
    starts = np.array([s for s, _ in segments]) if segments else np.array([np.inf])
    errors = [float(np.abs(starts - truth).min()) for truth in recording.clip_starts_s]
    return float(np.mean(errors)), float(np.max(errors))


SYSTEMS = ("longscribe, default sizes", "longscribe, forced cuts (20 s / 8 s)")


async def longscribe(recordings: dict[str, Recording]) -> dict[str, dict[str, dict[str, Any]]]:
    """Whisper in Triton shares every core among its instances, as the peers here use every core."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    media_dir = next(iter(recordings.values())).path.parent
    async with longscribe_service(media_dir) as (api, media, _):
        for name, params in zip(SYSTEMS, (DEFAULT, FORCED_CUTS), strict=True):
            for which, recording in recordings.items():
                out, wall = await transcribe(api, f"{media}/{recording.path.name}", params)
                segments = [(s["start_time_sec"], s["text"]) for s in out["segments"]]
                windows = int(out.get("timings", {}).get("whisper_windows", 0))
                rows.setdefault(name, {})[which] = row(recording, out["text"], wall, segments, windows)
    return rows


def row(
    recording: Recording, text: str, wall_s: float, segments: list[tuple[float, str]], windows: int
) -> dict[str, Any]:
    """`windows`: 30 s encoder passes (longscribe's timings; faster-whisper's counted `encode` rows)."""
    mean_err, max_err = clip_start_error(segments, recording)
    artifacts = join_artifacts(recording.reference, text)
    return {
        "wer": wer(recording.reference, text),
        "formatted_wer": formatted_wer(recording.reference, text),
        "join_artifacts_per_1000_words": artifacts.per_1000_words,
        "join_artifacts": [artifacts.lower_sentence_starts, artifacts.capitalised_mid_sentence],
        "text": text,  # to diff runs
        "wall_s": wall_s,
        "speedup": recording.duration_s / wall_s,
        "start_error_mean_s": mean_err,
        "start_error_max_s": max_err,
        "windows": windows,
        "windows_per_audio_minute": per_audio_minute(windows, recording.duration_s),
    }


def faster_whisper(recordings: dict[str, Recording]) -> dict[str, dict[str, dict[str, Any]]]:
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    for which, recording in recordings.items():
        for r in faster_whisper_results(recording.path):
            rows.setdefault(r.name, {})[which] = row(recording, r.text, r.wall_s, r.segments, r.extra["windows"])
    return rows


def table(recordings: dict[str, Recording], rows: dict[str, dict[str, dict[str, Any]]]) -> str:
    long, cased = recordings["long form"], recordings["cased"]
    lines = [
        f"long form: {long.duration_s:.0f} s, {len(long.clip_starts_s)} clips; "
        f"cased: {cased.duration_s:.0f} s, {len(cased.clip_starts_s)} clips; tiny.en int8 greedy",
        "",
        "| system | WER long form | WER cased | formatted WER cased | join artifacts / 1000 words (cased) "
        "| speedup (long form) | windows / audio min (long form) | clip start error mean / max (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lf, c = r["long form"], r["cased"]
        lines.append(
            f"| {name} | {100 * lf['wer']:.1f} % | {100 * c['wer']:.1f} % | {100 * c['formatted_wer']:.1f} % "
            f"| {c['join_artifacts_per_1000_words']:.1f} | {lf['speedup']:.0f}x | {lf['windows_per_audio_minute']:.2f} "
            f"| {lf['start_error_mean_s']:.2f} / {lf['start_error_max_s']:.2f} |"
        )
    peers = {n: r for n, r in rows.items() if n.startswith("faster-whisper")}
    ours, cuts = rows[SYSTEMS[0]], rows[SYSTEMS[1]]
    best_peer_wer = min(r["long form"]["wer"] for r in peers.values())
    best_peer_fwer = min(r["cased"]["formatted_wer"] for r in peers.values())
    sequential = next(r for n, r in peers.items() if "sequential" in n)
    lines += [
        "",
        f"longscribe WER - better peer's: {100 * (ours['long form']['wer'] - best_peer_wer):+.1f} points (goal: <= 0)",
        f"longscribe formatted WER - better peer's: {100 * (ours['cased']['formatted_wer'] - best_peer_fwer):+.1f} "
        "points (goal: <= 0)",
        f"join artifacts / 1000 words, longscribe - sequential faster-whisper: "
        f"{ours['cased']['join_artifacts_per_1000_words'] - sequential['cased']['join_artifacts_per_1000_words']:+.1f}"
        " (goal: <= 0)",
        f"forced cuts - default sizes: {100 * (cuts['long form']['wer'] - ours['long form']['wer']):+.1f} WER points "
        f"(bound: <= 1.5); join artifacts / 1000 words {cuts['cased']['join_artifacts_per_1000_words']:.1f} "
        "(bound: <= 5)",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recordings = {
            "long form": long_form_recording(Path(tmp) / "long-form.wav"),
            "cased": long_form_recording(Path(tmp) / "cased.wav", cased_only=True),
        }
        rows = asyncio.run(longscribe(recordings))
        rows.update(faster_whisper(recordings))
    print(table(recordings, rows))
    durations = {which: r.duration_s for which, r in recordings.items()}
    save_results(RESULTS, {"duration_s": durations, "threads": threads(), "rows": rows})


if __name__ == "__main__":
    main()
