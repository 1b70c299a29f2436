"""Bounded soak: many concurrent short requests and a few long ones against one `longscribe serve`.

Every request must end 200 or 429 (with Retry-After), nothing else; once the
load stops, the service's open file descriptors, threads, child processes and
memory must return to where they were before it. The load runs twice: what the
first round adds and the second does not is warm-up (allocator pools,
connection pools), what both add is a leak. Loopback only.

Then the followers phase (`bench/soak_followers.py`): 150 SSE followers and a
stream of submits against a 20-minute job; only 2xx and 429, the job
succeeds, every follower gets `end`, Redis connections stay within the pool.

    make soak          # or: .venv/bin/python -m bench.soak [--clients 40 --seconds 60 --long 3 --rounds 2]
                       #     [--followers 150 --minutes 20 --submit-every 2] [--followers-only | --no-followers]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from orchestrator.common.fileserver import file_app
from orchestrator.common.net import free_port, serving, wait_until_ready
from tests.corpus import long_form_recording, speech_dir

from . import soak_followers
from .harness import BENCH_AUTH, keyed_env, save_results, serve_command
from .memory import descendants, pss_bytes

RESULTS = Path(__file__).resolve().parent / "results" / "soak.json"
FOLLOWERS_RESULTS = RESULTS.with_name("soak-followers.json")
SETTLE_S = 5.0  # after the load: time for connections and FFmpeg to wind down
MAX_BACKOFF_S = 1.0  # clients honour Retry-After up to this, to keep the pressure on
MiB = 1024 * 1024


def footprint(root: int) -> dict[str, float]:
    """What a leak would grow: the orchestrator's fds and threads, the service's processes and memory."""
    tree = descendants(root)
    status = Path(f"/proc/{root}/status").read_text()
    threads = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))
    return {
        "open fds (orchestrator)": len(os.listdir(f"/proc/{root}/fd")),
        "threads (orchestrator)": threads,
        "child processes": len(tree) - 1,
        "FFmpeg processes": sum(1 for name in tree.values() if name.startswith(("ffmpeg", "ffprobe"))),
        "orchestrator PSS MiB": pss_bytes(root) / MiB,
        "service PSS MiB": sum(pss_bytes(pid) for pid in tree) / MiB,
    }


def clients_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=600), connector=aiohttp.TCPConnector(limit=0), headers=BENCH_AUTH
    )


async def client(session: aiohttp.ClientSession, url: str, body: dict[str, Any], until: float) -> list[str]:
    """Post `body` again and again until `until`; one outcome per request."""
    outcomes = []
    while time.monotonic() < until:
        try:
            async with session.post(url, json=body) as response:
                await response.read()
                outcomes.append(str(response.status))
                if response.status == 429:
                    if "Retry-After" not in response.headers:
                        outcomes[-1] = "429 without Retry-After"
                    await asyncio.sleep(min(MAX_BACKOFF_S, float(response.headers.get("Retry-After", 1))))
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


async def run(clients: int, seconds: float, long_clients: int, rounds: int, work: Path) -> dict[str, Any]:
    shutil.copy(speech_dir() / "jfk.flac", work / "short.flac")
    long_form_recording(work / "long.wav")
    port = free_port()
    proc = subprocess.Popen(
        serve_command(port, keyed=True), env=keyed_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    api = f"http://127.0.0.1:{port}/v1/transcribe"
    try:
        await wait_until_ready(f"http://127.0.0.1:{port}/readyz", proc.poll, 300.0, "longscribe serve")
        async with serving(file_app(work)) as media:
            short, long = {"media_url": f"{media}/short.flac"}, {"media_url": f"{media}/long.wav"}
            async with clients_session() as session:
                for body in (short, long):  # warm: first requests load what later ones reuse
                    async with session.post(api, json=body) as response:
                        assert response.status == 200, await response.text()
            await asyncio.sleep(SETTLE_S)
            footprints = [footprint(proc.pid)]
            results: list[list[str]] = []
            started = time.monotonic()
            for _ in range(rounds):
                # a session per round: its keep-alive connections close before the count
                async with clients_session() as session:
                    until = time.monotonic() + seconds
                    tasks = [client(session, api, short, until) for _ in range(clients)]
                    tasks += [client(session, api, long, until) for _ in range(long_clients)]
                    results += await asyncio.gather(*tasks)
                await asyncio.sleep(SETTLE_S)
                footprints.append(footprint(proc.pid))
            wall = time.monotonic() - started
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=180)
    counts = collections.Counter(outcome for outcomes in results for outcome in outcomes)
    return {"clients": clients, "long_clients": long_clients, "rounds": rounds, "wall_s": wall,
            "outcomes": dict(counts), "footprints": footprints}  # fmt: skip


def report(result: dict[str, Any]) -> str:
    counts = result["outcomes"]
    bad = {k: v for k, v in counts.items() if k not in ("200", "429")}
    lines = [
        f"{result['clients']} short + {result['long_clients']} long clients, {result['rounds']} rounds, "
        f"{result['wall_s']:.0f} s in all: "
        + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))
        + ("" if not bad else f"  <-- FAILURES {bad}"),
        "",
        "| measure | before | " + " | ".join(f"after round {k + 1}" for k in range(result["rounds"])) + " |",
        "|---|---|" + "---|" * result["rounds"],
    ]
    first = result["footprints"][0]
    for name, before in first.items():
        afters = [f"{f[name]:.0f} ({f[name] - before:+.0f})" for f in result["footprints"][1:]]
        lines.append(f"| {name} | {before:.0f} | " + " | ".join(afters) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--long", type=int, default=3, help="clients posting a 5-minute recording")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--followers", type=int, default=150, help="SSE followers of the long job")
    parser.add_argument("--minutes", type=float, default=20.0, help="the followed job's length")
    parser.add_argument("--submit-every", type=float, default=2.0, help="seconds between short jobs posted")
    phases = parser.add_mutually_exclusive_group()
    phases.add_argument("--followers-only", action="store_true", help="only the followers phase")
    phases.add_argument("--no-followers", action="store_true", help="skip the followers phase")
    args = parser.parse_args()
    failed = False
    if not args.followers_only:
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(run(args.clients, args.seconds, args.long, args.rounds, Path(tmp)))
        print(report(result))
        save_results(RESULTS, result)
        failed |= any(k not in ("200", "429") for k in result["outcomes"])
    if not args.no_followers:
        with tempfile.TemporaryDirectory() as tmp:
            followed = asyncio.run(soak_followers.run(args.followers, args.minutes, args.submit_every, Path(tmp)))
        print(soak_followers.report(followed))
        save_results(FOLLOWERS_RESULTS, followed)
        failed |= bool(soak_followers.failures(followed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
