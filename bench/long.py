"""Hours through every path: a long recording as a job, followed by the CLI and by a bare SSE client.

Runs `longscribe serve` as a child process (the orchestrator, its managed
Triton and stubs, and Redis where the service manages one), then
`longscribe transcribe <url> --server ... --format verbose_json` as a second
child: the CLI starts the job, follows its events and downloads the
transcript. A bare SSE client (httpx-sse) follows the same job's events from
the start and notes the size of each. Every process is sampled twice a
second for its memory (PSS). The orchestrator's loop-lag probe
(`longscribe_event_loop_lag_max_seconds` on /metrics) gives the worst time
its event loop was blocked.

    make bench-long                       # 1 and 10 hours, about 10 minutes of the whole machine
    .venv/bin/python -m bench.long --hours 0.1
    .venv/bin/python -m bench.long --hours 1 --slow-callbacks   # what blocked the loop (asyncio debug mode)

`--slow-callbacks` runs the service in asyncio's debug mode, which logs every
callback that held the loop over 100 ms, and prints the slowest; debug mode
costs speed, so its wall times are not the benchmark's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from orchestrator.common.fileserver import file_app
from orchestrator.common.net import free_port, serving, wait_until_ready
from tests.corpus import repeated_recording

from .harness import save_results, serve_command
from .memory import (
    SAMPLE_EVERY_S,
    SMALL_MP3,
    MiB,
    descendants,
    ordered_roles,
    pss_bytes,
    role,
    triton_bytes,
)
from .work import flat_memory_goals, peak_ratios, verdict

RESULTS = Path(__file__).resolve().parent / "results" / "long.json"
LAG_METRIC = "longscribe_event_loop_lag_max_seconds"
FLAT_BOUND = 1.10  # every process's longest-run peak over its shortest-run peak
CONCURRENT_FFMPEG = "FFmpeg together"
# Redis holds results by design; the FFmpeg children's sum depends on how many overlap at a sample (the chunk
# slots bound it), and a longer run catches more overlaps: each FFmpeg process's own peak is the goal's
ASIDE = ("redis", CONCURRENT_FFMPEG)


@dataclass
class Watch:
    """Peak PSS by role over the service's and the CLI's process trees."""

    peaks: dict[str, int] = field(default_factory=dict)

    def sample(self, service: int, cli: int | None) -> None:
        now: dict[str, int] = {}
        trees = descendants(service) | (descendants(cli) if cli else {})
        for pid, name in trees.items():
            r, pss = role(pid, name, service, cli), pss_bytes(pid)
            if r == "ffmpeg":  # one process each: the largest, and all of them together aside
                now[CONCURRENT_FFMPEG] = now.get(CONCURRENT_FFMPEG, 0) + pss
                now[r] = max(now.get(r, 0), pss)
            else:
                now[r] = now.get(r, 0) + pss
        for r, value in now.items():
            self.peaks[r] = max(self.peaks.get(r, 0), value)


@dataclass
class Stream:
    """What the bare SSE client saw."""

    events: int = 0
    largest_bytes: int = 0
    largest_name: str = ""
    end: dict[str, Any] = field(default_factory=dict)


async def follow(api: str, job_id: str, stream: Stream) -> None:
    """A bare SSE client: every event of the job from the start, sizes noted, until `end`."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=120.0), trust_env=False) as http:
        async with aconnect_sse(http, "GET", f"{api}/v1/jobs/{job_id}/events") as source:
            async for sse in source.aiter_sse():
                if not sse.data:
                    continue  # a keep-alive comment, which httpx-sse dispatches as an empty event
                size = len(sse.data.encode())
                stream.events += 1
                if size > stream.largest_bytes:
                    stream.largest_bytes, stream.largest_name = size, sse.event
                if sse.event == "end":
                    stream.end = sse.json()
                    return


async def job_id_from(cli: asyncio.subprocess.Process) -> str:
    """The CLI names its job on its first stderr line: `job <id>: <url>`."""
    assert cli.stderr is not None
    while line := (await cli.stderr.readline()).decode():
        if line.startswith("job "):
            return line.split()[1].rstrip(":")
    raise RuntimeError(f"the CLI exited ({await cli.wait()}) before naming its job")


async def drain(reader: asyncio.StreamReader | None) -> str:
    return (await reader.read()).decode() if reader is not None else ""


async def worst_loop_block_s(api: str) -> float:
    async with httpx.AsyncClient(trust_env=False) as http:
        text = (await http.get(f"{api}/metrics")).text
    return next(float(line.split()[1]) for line in text.splitlines() if line.startswith(LAG_METRIC + " "))


async def one_run(
    api: str, media_url: str, service_pid: int, out: Path, cli_args: Sequence[str] = ()
) -> dict[str, Any]:
    """One job, started and followed by the CLI (`cli_args` added: bench.speakers' `--diarize`), its
    verbose_json transcript written to `out`."""
    watch, stream = Watch(), Stream()
    started = time.perf_counter()
    with out.open("wb") as sink:
        cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator.cli", "transcribe", media_url, "--server", api,
            "--format", "verbose_json", *cli_args, stdout=sink, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        follower = asyncio.create_task(follow(api, await job_id_from(cli), stream))
        log = asyncio.create_task(drain(cli.stderr))
        while cli.returncode is None:
            await asyncio.to_thread(watch.sample, service_pid, cli.pid)
            try:
                await asyncio.wait_for(cli.wait(), SAMPLE_EVERY_S)
            except TimeoutError:
                pass
        wall_s = time.perf_counter() - started
        await asyncio.wait_for(follower, 60)
    if cli.returncode != 0:
        raise RuntimeError(f"the CLI failed ({cli.returncode}): {(await log)[-2000:]}")
    audio_s = stream.end["summary"]["input_duration_sec"]
    return {
        "audio_s": audio_s,
        "wall_s": wall_s,
        "speedup": audio_s / wall_s,
        "segments": stream.end["summary"]["segments"],
        "transcript_bytes": out.stat().st_size,
        "peak_pss_bytes": watch.peaks,
        "sse_events": stream.events,
        "largest_sse_event_bytes": stream.largest_bytes,
        "largest_sse_event": stream.largest_name,
        "worst_loop_block_s": await worst_loop_block_s(api),
    }


def slowest_callbacks(log: str, top: int = 8) -> list[str]:
    """asyncio debug mode's `Executing <...> took 0.123 seconds` lines, slowest first."""
    found = re.findall(r"Executing (.*?) took (\d+\.\d+) seconds", log)
    return [f"{float(s) * 1000:.0f} ms  {what[:200]}" for what, s in sorted(found, key=lambda f: -float(f[1]))[:top]]


async def run(hours: list[float], work: Path, debug_log: Path | None = None) -> list[dict[str, Any]]:
    recordings = [repeated_recording(work, h * 60, SMALL_MP3) for h in hours]
    port = free_port()
    env = {**os.environ, "LONGSCRIBE_ALLOWED_MEDIA_HOSTS": '["127.0.0.0/8"]'}
    if debug_log is not None:
        env["PYTHONASYNCIODEBUG"] = "1"
    log_sink = debug_log.open("wb") if debug_log is not None else subprocess.DEVNULL
    service = subprocess.Popen(serve_command(port), env=env, stdout=subprocess.DEVNULL, stderr=log_sink)
    api = f"http://127.0.0.1:{port}"
    rows = []
    try:
        await wait_until_ready(f"{api}/readyz", service.poll, 300.0, "longscribe serve")
        async with serving(file_app(work)) as media:
            for recording, h in zip(recordings, hours):
                row = await one_run(api, f"{media}/{recording.path.name}", service.pid, work / "transcript.json")
                rows.append({"hours": h, **row})
                print(f"{h:g} h done: {row['wall_s']:.0f} s", flush=True)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=120)
        if not isinstance(log_sink, int):
            log_sink.close()
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """One column per process (tritonserver apart from each stub; Redis, aside, only where managed)."""
    roles = ordered_roles(rows)
    names = {"orchestrator": "orchestrator", "ffmpeg": "FFmpeg (each)", "cli": "CLI", "redis": "Redis"}
    head = ["audio", "wall s", "speedup", *(f"{names.get(r, r)} MiB" for r in roles), "Triton + stubs MiB"]
    head += ["largest SSE event", "events", "worst loop block", "transcript"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{row['hours']:g} h", f"{row['wall_s']:.0f}", f"{row['speedup']:.1f}x"]
        cells += [f"{row['peak_pss_bytes'].get(r, 0) / MiB:.0f}" for r in roles]
        cells += [
            f"{triton_bytes(row['peak_pss_bytes']) / MiB:.0f}",
            f"{row['largest_sse_event_bytes']:,} B ({row['largest_sse_event']})",
            str(row["sse_events"]),
            f"{1000 * row['worst_loop_block_s']:.0f} ms",
            f"{row['transcript_bytes'] / 1024:,.0f} KiB",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if len(rows) > 1:  # the goal: every process's peak, and the time per audio hour, flat from the shortest run
        first, last = rows[0], rows[-1]
        per_hour = (last["wall_s"] / last["hours"]) / (first["wall_s"] / first["hours"])
        cells = [f"{last['hours']:g} h ÷ {first['hours']:g} h", f"{per_hour:.2f} per audio hour", ""]
        ratios = peak_ratios(first["peak_pss_bytes"], last["peak_pss_bytes"], roles)
        cells += [f"{ratios[r]:.2f}" if r in ratios else "?" for r in roles]
        cells.append(f"{triton_bytes(last['peak_pss_bytes']) / max(1, triton_bytes(first['peak_pss_bytes'])):.2f}")
        cells += [f"{last['largest_sse_event_bytes'] / max(1, first['largest_sse_event_bytes']):.2f}", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
        lines += ["", *goal_lines(ratios, names, f"{last['hours']:g} h ÷ {first['hours']:g} h")]
    return "\n".join(lines)


def goal_lines(ratios: dict[str, float], names: dict[str, str], span: str) -> list[str]:
    """Every process's peak ratio against the bound; Redis shown, but aside: it holds results by design."""
    goals = flat_memory_goals(ratios, FLAT_BOUND, ASIDE, {r: names.get(r, r) for r in ratios})
    aside = ", ".join(names.get(r, r) for r in ASIDE)
    lines = [f"goal: every process's {span} peak <= {FLAT_BOUND:.2f} ({aside} aside)"]
    lines += [f"  {g.label}: {g.value:.2f} ({verdict(g.met)})" for g in goals]
    lines += [f"  {names.get(r, r)}: {ratios[r]:.2f} (aside)" for r in ASIDE if r in ratios]
    met = all(g.met for g in goals)
    lines.append(f"every process within {FLAT_BOUND:.2f}: {verdict(met)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--hours",
        type=float,
        nargs="+",
        default=[1.0, 10.0],
        help="recording lengths, one run each, the shortest first",
    )
    parser.add_argument("--slow-callbacks", action="store_true", help="asyncio debug mode: list what blocked the loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        debug_log = Path(tmp) / "service.log" if args.slow_callbacks else None
        rows = asyncio.run(run(args.hours, Path(tmp), debug_log))
        slowest = slowest_callbacks(debug_log.read_text(errors="replace")) if debug_log else []
    print()
    print(table(rows))
    if args.slow_callbacks:
        print("\nslowest callbacks (asyncio debug mode, over 100 ms):")
        print("\n".join(slowest) or "none")
    save_results(RESULTS, rows)


if __name__ == "__main__":
    main()
