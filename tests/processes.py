"""What runs under a process, read from /proc: how tests see FFmpeg and Triton children start and stop."""

from __future__ import annotations

import contextlib
from pathlib import Path

FFMPEG_NAMES = ("ffmpeg", "ffprobe")


def children_of(pid: int) -> list[int]:
    """Every live descendant of `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


def ffmpegs(pid: int) -> list[int]:
    """The FFmpeg and ffprobe processes among `pid`'s descendants."""
    found = []
    for child in children_of(pid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{child}/comm").read_text().strip() in FFMPEG_NAMES:
                found.append(child)
    return found


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` still in /proc."""
    return [p for p in pids if Path(f"/proc/{p}").exists()]
