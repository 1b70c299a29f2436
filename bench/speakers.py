"""Who spoke when, through the service as users run it: DER, what diarization costs, and hours of it.

Runs `longscribe serve` as a child process (the orchestrator, its managed
Triton and stubs, and Redis for jobs with its data in a directory of the
bench's own) and a media server that honours Range, then:

1. DER: for each speaker set of tests/conversations.py, one conversation of
   `--minutes` per seed, as an MP3, posted to /v1/transcribe with `diarize`;
   the transcript's segment speakers as turns, scored against the built
   turns (NIST DER, 0.25 s collar), and the count found against the true one.
2. Time share: one conversation of `--share-minutes` transcribed without and
   with `diarize`, interleaved, `--rounds` each; the extra wall time and the
   extra CPU seconds of the whole service (orchestrator with its FFmpeg
   children, tritonserver, every stub; Redis aside) as a share of the
   transcription's, median against median.
3. Hours: conversations of `--hours` as diarized jobs on a fresh service,
   started and followed to their end by the CLI (`--diarize`) and a bare SSE
   client as bench-long runs them: every process's peak memory (PSS), the
   longest ÷ the shortest per process against 1.10 (Redis aside), wall,
   speedup, DER and the count of speakers.

Goals (issue 22, 2 cores): DER <= 10 % and the count right on both sets; the
extra time at most 15 % of the transcription's; every process's 10 h peak
within 10 % of its 1 h peak. JSON in bench/results/speakers.json (`--out`), written
after each phase, so a run cut short keeps what it measured.

    make bench-speakers                               # 1 and 10 hours: about 35 minutes of 2 cores
    .venv/bin/python -m bench.speakers --skip-hours   # DER and time share only (about 8 minutes)
    .venv/bin/python -m bench.speakers --phases hours --hours 0.25 1 --out bench/results/speakers-hours.json
    .venv/bin/python -m bench.speakers --report       # the last run's tables again, from its JSON
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.common.fileserver import file_app
from orchestrator.common.net import free_port, serving, wait_until_ready
from tests.conversations import SPEAKER_SETS, Turn, der, turns_of, write_conversation

from .harness import MP3_ARGS, save_results, serve_command, transcribe
from .long import one_run
from .long import table as memory_table
from .memory import SMALL_MP3, descendants, role
from .work import by_model, der_summary, extra_share, markdown, process_cpu, spent, verdict

RESULTS = Path(__file__).resolve().parent / "results" / "speakers.json"
DER_BOUND = 0.10  # NIST DER, 0.25 s collar
SHARE_BOUND = 0.15  # diarization's extra time over the transcription's
SHARE_SET, SHARE_SEED = "mixed", 100
HOURS_SET, HOURS_SEED = "readers", 200  # the longer conversation begins with the shorter one (same blocks)
PHASES = ("der", "share", "hours")
SET_NAMES = {
    "readers": "3 readers (LJ Speech, a physics lecturer, an Austen reader)",
    "mixed": "3 mixed (LibriSpeech 1089, JFK, LJ Speech)",
}


@contextlib.asynccontextmanager
async def service(work: Path) -> AsyncIterator[tuple[str, int]]:
    """`longscribe serve` as a child process; yield (its URL, its pid). Its Redis data in a fresh directory
    (the default one is locked by any other `longscribe serve` on the machine); its log in work/serve.log."""
    port = free_port()
    env = {
        **os.environ,
        "LONGSCRIBE_ALLOWED_MEDIA_HOSTS": '["127.0.0.0/8"]',  # the bench's media server
        "LONGSCRIBE_REDIS_DIR": tempfile.mkdtemp(prefix="redis-", dir=work),
    }
    with (work / "serve.log").open("ab") as log:
        proc = subprocess.Popen(serve_command(port), env=env, stdout=subprocess.DEVNULL, stderr=log)
    api = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(f"{api}/readyz", proc.poll, 300.0, "longscribe serve")
        yield api, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)


def service_cpu(root: int) -> dict[str, float]:
    """CPU seconds each part of the service has used (its own and its reaped children's: the orchestrator's
    FFmpeg processes count with it once they end); Redis aside."""
    used: dict[str, float] = {}
    for pid, name in descendants(root).items():
        r = role(pid, name, root)
        if r != "redis":
            cpu = process_cpu(pid)
            used[r] = used.get(r, 0.0) + cpu.own_s + cpu.children_s
    return used


def score(reference: Sequence[Turn], segments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The transcript's segments as turns (a speaker's segments under 1 s apart joined: who the transcript
    says spoke when, as its reader sees it), scored against the built turns."""
    said = turns_of(
        [s["start_time_sec"] for s in segments],
        [s["end_time_sec"] for s in segments],
        [s.get("speaker") or "none" for s in segments],
    )
    found = der(reference, said)
    return {
        "der": found.der,
        "missed_s": found.missed_s,
        "false_alarm_s": found.false_alarm_s,
        "confusion_s": found.confusion_s,
        "scored_s": found.total_s,
        "speakers_true": len({t.speaker for t in reference}),
        "speakers_found": len({s.get("speaker") for s in segments if s.get("speaker")}),
        "seconds_by_speaker": {t: round(v, 1) for t, v in seconds_by_speaker(said).items()},  # a stray one shows
    }


def seconds_by_speaker(turns: Sequence[Turn]) -> dict[str, float]:
    out: dict[str, float] = {}
    for t in turns:
        out[t.speaker] = out.get(t.speaker, 0.0) + t.end_s - t.start_s
    return out


Built = tuple[str, Path, list[Turn]]  # speaker set, MP3, its turns


def build(work: Path, seeds: int, minutes: float) -> list[Built]:
    """The DER conversations, one per speaker set and seed, built before the service starts."""
    return [
        (name, path, write_conversation(path, SPEAKER_SETS[name], minutes * 60, MP3_ARGS, seed=seed))
        for name in SPEAKER_SETS
        for seed in range(seeds)
        for path in [work / f"{name}-{seed}.mp3"]
    ]


async def der_rows(api: str, media: str, conversations: list[Built]) -> list[dict[str, Any]]:
    rows = []
    for name, path, turns in conversations:
        out, wall = await transcribe(api, f"{media}/{path.name}", {"diarize": True})
        row = {"set": name, "recording": path.name, "audio_s": out["input_duration_sec"], "wall_s": wall}
        rows.append(row | score(turns, out["segments"]))
        print(f"{path.name}: DER {100 * rows[-1]['der']:.1f} %, {rows[-1]['speakers_found']} speakers", flush=True)
    return rows


async def share_row(api: str, media: str, pid: int, built: Built, rounds: int) -> dict[str, Any]:
    """Without and with diarize, interleaved: each round's wall and the service's CPU seconds by part."""
    _, path, turns = built
    runs: dict[str, list[dict[str, Any]]] = {"plain": [], "diarized": []}
    out: dict[str, Any] = {}
    for _ in range(rounds):
        for diarize in (False, True):
            before = service_cpu(pid)
            out, wall = await transcribe(api, f"{media}/{path.name}", {"diarize": diarize})
            cpu = spent(before, service_cpu(pid))
            runs["diarized" if diarize else "plain"].append({"wall_s": wall, "cpu_s": cpu})
            print(f"diarize={diarize}: {wall:.1f} s wall, {sum(cpu.values()):.1f} s CPU", flush=True)
    walls = {k: [r["wall_s"] for r in v] for k, v in runs.items()}
    cpus = {k: [sum(r["cpu_s"].values()) for r in v] for k, v in runs.items()}
    return {
        "set": SHARE_SET,
        "audio_s": out["input_duration_sec"],
        "runs": runs,
        "extra_wall_share": extra_share(walls["plain"], walls["diarized"]),
        "extra_cpu_share": extra_share(cpus["plain"], cpus["diarized"]),
        **score(turns, out["segments"]),  # the last diarized answer
    }


async def hour_rows(
    hours: Sequence[float], work: Path, done: Callable[[list[dict[str, Any]]], None]
) -> list[dict[str, Any]]:
    """Each conversation as a diarized job on a fresh service (earlier phases' requests leave nothing in its
    peaks), the shortest first, as bench-long runs them."""
    built = []
    for h in hours:
        path = work / f"conversation-{h:g}h.mp3"
        built.append((h, path, write_conversation(path, SPEAKER_SETS[HOURS_SET], h * 3600, SMALL_MP3, HOURS_SEED)))
        print(f"{h:g} h conversation written", flush=True)
    rows = []
    async with service(work) as (api, pid), serving(file_app(work)) as media:
        for h, path, turns in built:
            out = work / "transcript.json"
            row = await one_run(api, f"{media}/{path.name}", pid, out, ["--diarize"])
            segments = json.loads(out.read_text())["segments"]
            rows.append({"hours": h, **row, **score(turns, segments)})
            print(f"{h:g} h done: {row['wall_s']:.0f} s, DER {100 * rows[-1]['der']:.1f} %", flush=True)
            done(rows)  # each job's row kept as it ends: the longest may not
    return rows


def percent(x: float) -> str:
    return f"{100 * x:.1f} %"


def der_table(rows: list[dict[str, Any]]) -> str:
    body = []
    for name in dict.fromkeys(r["set"] for r in rows):
        mine = [r for r in rows if r["set"] == name]
        summary = der_summary(
            [r["der"] for r in mine], [(r["speakers_found"], r["speakers_true"]) for r in mine], DER_BOUND
        )
        body.append(
            [
                SET_NAMES.get(name, name),
                f"{mine[0]['audio_s']:.0f} s",
                ", ".join(percent(r["der"]) for r in mine),
                percent(summary.mean),
                percent(summary.worst),
                ", ".join(f"{r['speakers_found']}/{r['speakers_true']}" for r in mine),
                f"{summary.count_right} of {summary.runs}",
                verdict(summary.met),
            ]
        )
    head = ["speakers", "audio", "DER per seed", "mean", "max", "found/true", "count right"]
    return markdown([*head, f"DER <= {percent(DER_BOUND)}, count right"], body)


def share_table(row: dict[str, Any]) -> str:
    def cells(kind: str, key: str) -> str:
        values = [r[key] if key == "wall_s" else sum(r[key].values()) for r in row["runs"][kind]]
        return ", ".join(f"{v:.1f}" for v in values)

    worst = max(row["extra_wall_share"], row["extra_cpu_share"])
    head = ["recording", "wall s plain", "wall s diarized", "extra wall", "CPU s plain", "CPU s diarized"]
    head += ["extra CPU", f"extra <= {percent(SHARE_BOUND)}"]
    body = [
        [
            f"{SET_NAMES[row['set']]}, {row['audio_s'] / 60:.0f} min, DER {percent(row['der'])}",
            cells("plain", "wall_s"),
            cells("diarized", "wall_s"),
            percent(row["extra_wall_share"]),
            cells("plain", "cpu_s"),
            cells("diarized", "cpu_s"),
            percent(row["extra_cpu_share"]),
            verdict(worst <= SHARE_BOUND),
        ]
    ]
    return markdown(head, body) + "\n\n" + extra_by_part(row["runs"])


def extra_by_part(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Where diarize's extra CPU seconds go: per part, median with it less median without."""
    per = {kind: [by_model(r["cpu_s"]) for r in rs] for kind, rs in runs.items()}
    parts = dict.fromkeys(p for rs in per.values() for r in rs for p in r)
    extra = {
        p: statistics.median(r.get(p, 0.0) for r in per["diarized"])
        - statistics.median(r.get(p, 0.0) for r in per["plain"])
        for p in parts
    }
    return "extra CPU s by part: " + ", ".join(f"{p} {v:+.1f}" for p, v in sorted(extra.items(), key=lambda e: -e[1]))


def hours_der_table(rows: list[dict[str, Any]]) -> str:
    body = [
        [
            f"{r['hours']:g} h",
            f"{r['wall_s']:.0f}",
            f"{r['speedup']:.1f}x",
            percent(r["der"]),
            f"{r['missed_s']:.0f} / {r['false_alarm_s']:.0f} / {r['confusion_s']:.0f}",
            f"{r['speakers_found']}/{r['speakers_true']}",
            verdict(r["der"] <= DER_BOUND and r["speakers_found"] == r["speakers_true"]),
        ]
        for r in rows
    ]
    head = ["audio", "wall s", "speedup", "DER", "missed / false alarm / confusion s", "found/true"]
    return markdown([*head, f"DER <= {percent(DER_BOUND)}, count right"], body)


def report(results: dict[str, Any]) -> str:
    parts = []
    if results["der"]:  # none with --seeds 0
        parts += ["## DER (0.25 s collar), diarize through /v1/transcribe", der_table(results["der"])]
    if results["share"]:
        parts += [
            "\n## Time: the same recording without and with diarize, interleaved (service CPU: Redis aside)",
            share_table(results["share"]),
        ]
    if results.get("hours"):
        parts += [
            f"\n## Hours: diarized jobs ({SET_NAMES[HOURS_SET]}), peak PSS MiB per process",
            memory_table(results["hours"]),
            "",
            hours_der_table(results["hours"]),
        ]
    return "\n".join(parts)


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The phases asked for, the JSON written after each: a run cut short keeps what it measured."""
    results: dict[str, Any] = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}}
    results |= {"der": [], "share": {}, "hours": []}
    phases = set(args.phases) - ({"hours"} if args.skip_hours else set())
    if phases & {"der", "share"}:
        conversations = build(work, args.seeds, args.minutes) if "der" in phases else []
        share = work / "share.mp3"
        turns = write_conversation(share, SPEAKER_SETS[SHARE_SET], args.share_minutes * 60, MP3_ARGS, SHARE_SEED)
        async with service(work) as (api, pid), serving(file_app(work)) as media:
            if "der" in phases:
                results["der"] = await der_rows(api, media, conversations)
                save_results(args.out, results)
            if "share" in phases:
                results["share"] = await share_row(api, media, pid, (SHARE_SET, share, turns), args.rounds)
                save_results(args.out, results)
    if "hours" in phases:
        results["hours"] = await hour_rows(
            args.hours, work, lambda rows: save_results(args.out, results | {"hours": rows})
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="conversations per speaker set")
    parser.add_argument("--minutes", type=float, default=3.0, help="length of each DER conversation")
    parser.add_argument("--share-minutes", type=float, default=15.0, help="length of the time-share recording")
    parser.add_argument("--rounds", type=int, default=3, help="time-share rounds, each without and with diarize")
    parser.add_argument("--hours", type=float, nargs="+", default=[1.0, 10.0], help="diarized jobs, shortest first")
    parser.add_argument("--skip-hours", action="store_true", help="DER and time share only")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=list(PHASES), help="which parts to run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--report", action="store_true", help="print the tables of the run in --out again")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return
    with tempfile.TemporaryDirectory() as tmp:
        try:
            results = asyncio.run(run(args, Path(tmp)))
        except BaseException:
            log = Path(tmp) / "serve.log"
            print(log.read_text(errors="replace")[-4000:] if log.exists() else "no service log")
            raise
    print()
    print(report(results))


if __name__ == "__main__":
    main()
