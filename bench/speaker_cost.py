"""What diarization costs the model half: one macro chunk through micro_chunker with and without `diarize`.

A conversation of corpus speakers (tests/conversations.py, several minutes)
is sent as one macro chunk to a real Triton, alternately without and with
diarize, and the extra wall time is given as a share of the transcription's
(issue 22's goal: at most 15 % on 2 cores), and so is the extra CPU time of
Triton and its stubs, steadier where neighbours load the machine. The voices that come back are
clustered and scored (DER, 0.25 s collar; speaker count). Results also go to
bench/results/speaker_cost.json.

    .venv/bin/python -m bench.speaker_cost [--minutes 4] [--rounds 2] [--set readers]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient

from longscribe_core import speakers
from longscribe_core.segments import ChunkResult, decode_result
from orchestrator.common.net import free_port
from orchestrator.infer.triton_server import running_triton
from orchestrator.settings import Settings
from tests.conversations import SPEAKER_SETS, build_conversation, der, turns_of

RESULTS = Path(__file__).resolve().parent / "results" / "speaker_cost.json"
TICK = os.sysconf("SC_CLK_TCK")


def descendants_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's descendants: Triton and its model stubs.

    On a shared machine wall time moves with the neighbours' load; CPU time much less."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    ours, total, grew = {os.getpid()}, 0.0, True
    while grew:
        grew = False
        for pid, (parent, cpu) in stats.items():
            if parent in ours and pid not in ours:
                ours.add(pid)
                total += cpu
                grew = True
    return total


async def chunk(url: str, pcm: np.ndarray, diarize: bool) -> tuple[float, float, ChunkResult]:
    values = {
        "audio": (pcm.astype(np.int16), "INT16"),
        "micro_chunk_size_sec": (np.array([30.0], np.float32), "FP32"),
        "silence_detection_smoothing_num_samples": (np.array([1600], np.int32), "INT32"),
        "diarize": (np.array([diarize]), "BOOL"),
    }
    inputs = []
    for name, (value, kind) in values.items():
        tensor = grpcclient.InferInput(name, list(value.shape), kind)
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    async with grpcclient.InferenceServerClient(url) as client:
        started, cpu = time.perf_counter(), descendants_cpu_s()
        response = await client.infer("micro_chunker", inputs, client_timeout=1800)
        elapsed, cpu = time.perf_counter() - started, descendants_cpu_s() - cpu
    return elapsed, cpu, decode_result(response.as_numpy("result").reshape(-1)[0])


async def measure(minutes: float, rounds: int, speaker_set: str) -> dict[str, Any]:
    conversation = build_conversation(SPEAKER_SETS[speaker_set], duration_s=minutes * 60, seed=7)
    ports = {"triton_http_port": free_port(), "triton_grpc_port": free_port(), "triton_metrics_port": free_port()}
    async with running_triton(Settings(**ports)) as url:
        warm = conversation.pcm[: 20 * 16_000]
        await chunk(url, warm, False)
        await chunk(url, warm, True)
        times: dict[bool, list[float]] = {False: [], True: []}
        cpus: dict[bool, list[float]] = {False: [], True: []}
        result = None
        for _ in range(rounds):
            for diarize in (False, True):
                elapsed, cpu, out = await chunk(url, conversation.pcm, diarize)
                times[diarize].append(elapsed)
                cpus[diarize].append(cpu)
                result = out if diarize else result
                print(f"diarize={diarize}: {elapsed:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    assert result is not None
    voices = result.voices
    labels = speakers.cluster_voices(
        np.array([v.embedding for v in voices]), durations=np.array([v.end_s - v.start_s for v in voices])
    )
    names = [speakers.speaker_name(int(k)) for k in labels]
    score = der(conversation.turns, turns_of([v.start_s for v in voices], [v.end_s for v in voices], names, 2.0))
    plain, diarized = float(np.median(times[False])), float(np.median(times[True]))
    plain_cpu, diarized_cpu = float(np.median(cpus[False])), float(np.median(cpus[True]))
    return {
        "audio_s": round(conversation.duration_s, 1),
        "speaker_set": speaker_set,
        "voices": len(voices),
        "transcribe_s": [round(t, 2) for t in times[False]],
        "diarized_s": [round(t, 2) for t in times[True]],
        "extra_share": round((diarized - plain) / plain, 3),  # of wall time, medians
        "transcribe_cpu_s": [round(t, 2) for t in cpus[False]],
        "diarized_cpu_s": [round(t, 2) for t in cpus[True]],
        "extra_cpu_share": round((diarized_cpu - plain_cpu) / plain_cpu, 3),
        "der": round(score.der, 4),
        "speakers": {"reference": len(conversation.speakers), "found": int(labels.max()) + 1 if len(labels) else 0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--set", dest="speaker_set", default="readers", choices=sorted(SPEAKER_SETS))
    args = parser.parse_args()
    out = asyncio.run(measure(args.minutes, args.rounds, args.speaker_set))
    print(json.dumps(out, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
