"""What the benchmarks count and judge: windows decoded, CPU seconds, the time split, ratios against goals.

Pure and standard-library only, so tests/unit/test_bench_work.py checks it without Triton or a model.
A window is one 30 s encoder pass: longscribe reports its own (`timings.whisper_windows`, fallbacks and
second looks included, each re-encoded); faster-whisper's are counted by wrapping its model's `encode`.
"""

from __future__ import annotations

import math
import os
import re
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class EncodeCounter:
    """Wraps a faster-whisper `WhisperModel`'s `encode` and counts the windows it encodes.

    Both modes go through it: the sequential `transcribe` encodes one window per call (a 2-D mel),
    the batched pipeline a batch of VAD-merged segments per call (a 3-D mel, one row per segment).
    Its temperature fallbacks re-decode the same encoder output, so they are not windows here."""

    def __init__(self, model: Any) -> None:
        self.windows = 0
        self.calls = 0
        self._encode: Callable[[Any], Any] = model.encode
        model.encode = self  # an instance attribute: `self.encode(...)` and `pipeline.model.encode(...)` find it

    def __call__(self, features: Any) -> Any:
        self.calls += 1
        self.windows += rows(features)
        return self._encode(features)

    def reset(self) -> int:
        """The windows counted since the last reset (a warm-up's are not the run's)."""
        counted, self.windows, self.calls = self.windows, 0, 0
        return counted


def rows(features: Any) -> int:
    """Windows in one `encode` call's mel: 1 for a single window (n_mels x frames), else the batch's rows."""
    shape: tuple[int, ...] = tuple(getattr(features, "shape", ()))
    return int(shape[0]) if len(shape) == 3 else 1


def per_audio_minute(count: float, audio_s: float) -> float:
    return 60.0 * count / audio_s if audio_s > 0 else 0.0


@dataclass(frozen=True)
class Cpu:
    """CPU seconds from /proc/<pid>/stat: the process's own (user + system) and its reaped children's."""

    own_s: float
    children_s: float


def parse_stat(text: str) -> Cpu:
    """/proc/<pid>/stat: utime, stime, cutime, cstime are fields 14-17, counted after the `(comm)` field,
    whose name may hold spaces or parentheses."""
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return Cpu((utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS)


def process_cpu(pid: int) -> Cpu:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError):
        return Cpu(0.0, 0.0)  # it ended between listing and reading


def triton_part(cmdline: Sequence[str]) -> str:
    """Which part of Triton a process is: a Python-backend stub runs one model (`<repo>/<model>/1/model.py`
    is its first argument: whisper, micro_chunker), anything else is the server itself."""
    if len(cmdline) > 1 and cmdline[0].endswith("triton_python_backend_stub"):
        return Path(cmdline[1]).parent.parent.name
    return "tritonserver"


@dataclass(frozen=True)
class Stage:
    name: str
    cpu_s: float  # CPU seconds
    share: float  # of all the stages' CPU seconds
    model_s: float | None = None  # the whisper model's own timer, for its four stages


WHISPER_STAGES = {"encoder": "encoder_sec", "decoder": "decoder_sec", "alignment": "alignment_sec", "mel": "mel_sec"}
OTHER_STAGES = {  # stage: its key in the CPU seconds measured per process
    "orchestration": "orchestrator_s",
    "micro chunker (VAD, cuts)": "micro_chunker_s",
    "Triton server": "tritonserver_s",
    "FFmpeg": "ffmpeg_s",
}


def time_split(timings: dict[str, Any], cpu: dict[str, float]) -> list[Stage]:
    """longscribe's work per stage in one unit, CPU seconds, each with its share of the sum.

    The whisper stubs' CPU seconds are split among encoder, decoder, alignment and mel by the model's own
    timers (wall seconds inside the model, a batch's shared among its windows), which a busy machine
    inflates but leaves in proportion; the other stages are whole processes."""
    model = {stage: float(timings.get(key, 0.0)) for stage, key in WHISPER_STAGES.items()}
    model_total = sum(model.values())
    whisper = cpu.get("whisper_s", 0.0)
    cpu_s = {stage: whisper * s / model_total if model_total > 0 else 0.0 for stage, s in model.items()}
    cpu_s |= {stage: cpu.get(key, 0.0) for stage, key in OTHER_STAGES.items()}
    total = sum(cpu_s.values())
    return [Stage(stage, s, s / total if total > 0 else 0.0, model.get(stage)) for stage, s in cpu_s.items()]


@dataclass(frozen=True)
class Goal:
    """A measured ratio against its bound: `at_least` for "higher is better" (speed), else "at most"."""

    label: str
    value: float
    bound: float
    at_least: bool

    @property
    def met(self) -> bool:
        return self.value >= self.bound if self.at_least else self.value <= self.bound

    def line(self) -> str:
        sign = ">=" if self.at_least else "<="
        return f"goal: {self.label} {sign} {self.bound:g}; this run: {self.value:.2f} ({verdict(self.met)})"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def peak_ratios(first: dict[str, int], last: dict[str, int], roles: Iterable[str]) -> dict[str, float]:
    """Each process's (role's) last peak over its first; a role absent from the first run has no ratio."""
    return {r: last.get(r, 0) / first[r] for r in roles if first.get(r)}


def flat_memory_goals(
    ratios: dict[str, float], bound: float, aside: Sequence[str], names: dict[str, str]
) -> list[Goal]:
    """One goal per process; the roles `aside` (Redis: it holds results by design) are not judged."""
    return [Goal(names.get(r, r), v, bound, at_least=False) for r, v in ratios.items() if r not in aside]


def markdown(head: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    """A Markdown table: one header row, its rule, one row per item."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in body:
        if len(row) != len(head):
            raise ValueError(f"a row of {len(row)} cells under {len(head)} headers: {list(row)}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def best_run(reference: Sequence[str], hypothesis: Sequence[str]) -> tuple[int, int]:
    """The contiguous run of `hypothesis` words nearest `reference` by word edits, as (start, end) indices.

    Semi-global alignment: the hypothesis words before and after the run cost nothing, so speech without
    a reference around a referenced stretch is neither an insertion nor a reason to miss its words."""
    cost = [0] * (len(hypothesis) + 1)  # no reference words yet: free to start anywhere
    start = list(range(len(hypothesis) + 1))
    for i, word in enumerate(reference, 1):
        row, row_start = [i] + [0] * len(hypothesis), [0] * (len(hypothesis) + 1)
        for j, heard in enumerate(hypothesis, 1):
            row[j], row_start[j] = min(
                (cost[j - 1] + (word != heard), start[j - 1]),  # match or substitution
                (cost[j] + 1, start[j]),  # a reference word missed
                (row[j - 1] + 1, row_start[j - 1]),  # a word inserted inside the run
            )
        cost, start = row, row_start
    end = min(range(len(cost)), key=lambda j: (cost[j], j))
    return start[end], end


def scored_runs(
    segments: Sequence[tuple[float, str]],
    scored: Iterable[tuple[float, float, str]],
    normalise: Callable[[str], str],
    lead_s: float = 30.0,
) -> list[tuple[str, str]]:
    """(reference, hypothesis) per referenced stretch (start, end, reference) of a recording that also
    holds speech without a reference: the best run of words among the segments starting from `lead_s`
    before the stretch (a batched peer's segment is a whole window of up to 30 s, which may begin in
    the unreferenced speech) to its end, both normalised."""
    pairs = []
    for lo, hi, reference in scored:
        near = normalise(" ".join(text for start, text in segments if lo - lead_s <= start < hi)).split()
        wanted = normalise(reference).split()
        first, last = best_run(wanted, near)
        pairs.append((" ".join(wanted), " ".join(near[first:last])))
    return pairs


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per process (role) between two readings; a role first seen in `after` (an FFmpeg that
    started meanwhile) spent all it shows."""
    return {r: value - before.get(r, 0.0) for r, value in after.items()}


def extra_share(plain: Sequence[float], more: Sequence[float]) -> float:
    """What `more` costs over `plain` as a share of `plain`, median against median: with rounds interleaved,
    a neighbour's burst moves one round, not the medians."""
    base = statistics.median(plain)
    return (statistics.median(more) - base) / base if base > 0 else math.inf


@dataclass(frozen=True)
class DerSummary:
    """One speaker set's conversations: DER against its bound, and how often the count of speakers was right."""

    runs: int
    mean: float
    worst: float
    count_right: int
    bound: float

    @property
    def met(self) -> bool:
        return self.runs > 0 and self.worst <= self.bound and self.count_right == self.runs


def der_summary(ders: Sequence[float], counts: Sequence[tuple[int, int]], bound: float) -> DerSummary:
    """`counts`: (found, true) per conversation."""
    if len(ders) != len(counts):
        raise ValueError(f"{len(ders)} DERs for {len(counts)} counts")
    right = sum(found == true for found, true in counts)
    mean = statistics.fmean(ders) if ders else math.nan
    return DerSummary(len(ders), mean, max(ders, default=math.nan), right, bound)


def by_model(used: dict[str, float]) -> dict[str, float]:
    """Per-process figures (roles: `stub whisper_0_1`, `tritonserver`, ...) summed per part: a model's stubs
    together (`whisper`), every other role as it is."""
    out: dict[str, float] = {}
    for r, value in used.items():
        part = re.sub(r"_\d+_\d+$", "", r.removeprefix("stub ")) if r.startswith("stub ") else r
        out[part] = out.get(part, 0.0) + value
    return out
