"""Many inputs at once, as the `whisper` command takes them: one job each, all in flight
together (the service's admission bounds them), a progress line per input, and
<output-dir>/<name>.<ext> written per format for each input that succeeds."""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO
from urllib.parse import unquote, urlparse

import httpx

from orchestrator.cli import progress

# file extension -> the format rendered into it; `all` writes every one
EXTENSIONS = {"txt": "text", "srt": "srt", "vtt": "vtt", "json": "verbose_json"}
ALIASES = {"text": "txt", "verbose_json": "json"}  # the API's names for them
FULL_RETRY_S = 2.0  # the service's queue was full (429): ask again after this


class InputFailed(Exception):
    """One input could not be transcribed; the message says why (the others go on)."""


def parse_formats(spec: str) -> list[str]:
    """`srt,vtt,txt,json` or `all` -> extensions, in order; an unknown one raises ValueError."""
    if spec.strip() == "all":
        return list(EXTENSIONS)
    chosen = [ALIASES.get(name.strip(), name.strip()) for name in spec.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in EXTENSIONS]
    if unknown or not chosen:
        raise ValueError(f"unknown format {', '.join(unknown) or spec!r}: use {', '.join(EXTENSIONS)} or all")
    return list(dict.fromkeys(chosen))


async def run_one(
    http: httpx.AsyncClient, server: str, body: dict[str, Any], quiet: bool, out: TextIO = sys.stderr
) -> dict[str, Any]:
    """Run one input as a job on `server` and return its `end` event (summary, links); InputFailed says why not.

    The single place the CLI runs a job to its end: one input or many. The transcript is
    fetched afterwards (`fetch`), in pieces: the event only links it."""
    while True:
        try:
            job = await progress.run_job(http, server.rstrip("/"), body, quiet=quiet, out=out)
            break
        except progress.JobRefused as exc:
            if exc.status != 429:
                raise InputFailed(str(exc)) from exc
            await asyncio.sleep(FULL_RETRY_S)  # the service is full: its bound, not ours
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        reason = f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else str(error)
        raise InputFailed(f"the job {job['status']}: {reason}")
    return job


async def fetch(http: httpx.AsyncClient, server: str, job: dict[str, Any], fmt: str, sink: BinaryIO) -> None:
    """The finished job's transcript as `fmt`, streamed into `sink`, then a newline."""
    try:
        await progress.download(http, f"{server.rstrip('/')}{job['links']['transcript']}?format={fmt}", sink)
    except (progress.JobRefused, httpx.HTTPError) as exc:
        raise InputFailed(f"the transcript could not be fetched: {exc}") from exc
    sink.write(b"\n")


class Board:
    """One progress line per input: redrawn in place on a terminal, else one line per update."""

    def __init__(self, names: Sequence[str], out: TextIO, quiet: bool) -> None:
        self.names, self.out, self.quiet = list(names), out, quiet
        self.lines = ["waiting" for _ in names]
        self.tty = out.isatty()
        self.drawn = False
        self.width = max((len(n) for n in names), default=0)

    def update(self, index: int, line: str) -> None:
        self.lines[index] = line
        if self.quiet:
            return
        if not self.tty:
            self.out.write(f"{self.names[index]}: {line}\n")
        else:
            if self.drawn:
                self.out.write(f"\x1b[{len(self.lines)}F")  # back to the first line
            for name, text in zip(self.names, self.lines):
                self.out.write(f"\x1b[2K{name:<{self.width}}  {text}\n")
            self.drawn = True
        self.out.flush()

    def lane(self, index: int) -> TextIO:
        """A stream `progress.run_job` writes one input's lines to."""
        return _Lane(self, index)


class _Lane(io.StringIO):
    def __init__(self, board: Board, index: int) -> None:
        super().__init__()
        self.board, self.index = board, index

    def write(self, text: str) -> int:
        for line in text.replace("\r", "\n").splitlines():
            if line.strip():
                self.board.update(self.index, line.strip())
        return len(text)

    def isatty(self) -> bool:
        return False  # lines, not carriage returns: the board draws


def output_names(inputs: Sequence[str]) -> list[str]:
    """Each input's base name without extension (a URL's last path part); repeats get -2, -3, ..."""
    names: list[str] = []
    for item in inputs:
        path = urlparse(item).path if item.startswith(("http://", "https://")) else item
        stem = Path(unquote(path)).stem or "transcript"
        name, n = stem, 1
        while name in names:
            n += 1
            name = f"{stem}-{n}"
        names.append(name)
    return names


@dataclass(frozen=True)
class Outcome:
    input: str
    written: tuple[Path, ...] = ()
    error: str | None = None


async def run_many(
    http: httpx.AsyncClient,
    server: str,
    inputs: Sequence[str],
    bodies: Sequence[dict[str, Any]],
    output_dir: Path,
    extensions: Sequence[str],
    quiet: bool,
    out: TextIO = sys.stderr,
) -> list[Outcome]:
    """Every input as a concurrent job; each success written in every format, each failure kept."""
    output_dir.mkdir(parents=True, exist_ok=True)
    names = output_names(inputs)
    board = Board(names, out, quiet)

    async def one(index: int) -> Outcome:
        written = []
        try:
            job = await run_one(http, server, bodies[index], quiet=False, out=board.lane(index))
            for ext in extensions:
                path = output_dir / f"{names[index]}.{ext}"
                with path.open("wb") as sink:
                    await fetch(http, server, job, EXTENSIONS[ext], sink)
                written.append(path)
        except InputFailed as exc:
            board.update(index, f"failed: {exc}")
            return Outcome(inputs[index], tuple(written), error=str(exc))
        summary = job["summary"]
        board.update(index, f"done: {summary['input_duration_sec']:.1f} s of audio, {summary['speedup']:.1f}x")
        return Outcome(inputs[index], tuple(written))

    return list(await asyncio.gather(*(one(i) for i in range(len(inputs)))))
