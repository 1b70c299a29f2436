"""Inputs run as jobs, as the `whisper` command takes them: one job each, all in flight together (the
service's admission bounds them), a progress line per input, and every input's outcome reported.

One input without --output-dir prints its transcript on stdout; otherwise
<output-dir>/<name>.<ext> is written per format for each input that succeeds.
A failing input never stops the others."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO
from urllib.parse import unquote, urlparse

import longscribe
from longscribe._media import is_url
from orchestrator.cli.progress import progress_line, segment_line

# file extension -> the service's format rendered into it
EXTENSIONS = {"txt": "text", "srt": "srt", "vtt": "vtt", "tsv": "tsv", "json": "json", "verbose.json": "verbose_json"}
ALL = ["txt", "srt", "vtt", "tsv", "json"]  # `all`, as whisper's (verbose_json on request)
ALIASES = {"text": "txt", "verbose_json": "verbose.json"}  # the service's names for them
STDOUT_FORMATS = ("text", "txt", "json", "verbose_json", "srt", "vtt", "tsv")
MAX_FULL_WAIT_S = 30.0  # the service's queue is full: ask again after its Retry-After, at most this


def parse_formats(spec: str) -> list[str]:
    """`srt,vtt,txt,json` or `all` -> extensions, in order; an unknown one raises ValueError."""
    if spec.strip() == "all":
        return list(ALL)
    chosen = [ALIASES.get(name.strip(), name.strip()) for name in spec.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in EXTENSIONS]
    if unknown or not chosen:
        names = ", ".join(["txt", "srt", "vtt", "tsv", "json", "verbose_json"])
        raise ValueError(f"unknown format {', '.join(unknown) or spec!r}: use {names}, a comma list of them, or all")
    return list(dict.fromkeys(chosen))


def output_names(inputs: Sequence[str]) -> list[str]:
    """Each input's base name without extension (a URL's last path part); repeats get -2, -3, ..."""
    names: list[str] = []
    for item in inputs:
        path = urlparse(item).path if is_url(item) else item
        stem = Path(unquote(path)).stem if item != "-" else "stdin"
        stem = stem or "transcript"
        name, n = stem, 1
        while name in names:
            n += 1
            name = f"{stem}-{n}"
        names.append(name)
    return names


class Board:
    """What runs, one status line per input: redrawn in place on a terminal, else a line per update.

    `named` prefixes each line with its input's name (several inputs). Notes
    (a job's id, --verbose segments) are lines that stay, printed above the board."""

    def __init__(self, names: Sequence[str], out: TextIO, quiet: bool, named: bool = True) -> None:
        self.names, self.out, self.quiet, self.named = list(names), out, quiet, named
        self.lines = ["waiting" for _ in names]
        self.live = out.isatty()
        self.drawn = False
        self.width = max((len(n) for n in names), default=0)

    def _label(self, index: int, width: int = 0) -> str:
        return f"{self.names[index]:<{width}}  " if self.named and width else f"{self.names[index]}: "

    def update(self, index: int, line: str) -> None:
        """The input's status now (progress, done, failed)."""
        self.lines[index] = line
        if self.quiet:
            return
        if self.live:
            self._redraw()
        else:
            self.out.write(f"{self._label(index) if self.named else ''}{line}\n")
        self.out.flush()

    def note(self, index: int, line: str) -> None:
        """A line that stays: above the board on a terminal."""
        if self.quiet:
            return
        text = f"{self._label(index) if self.named else ''}{line}\n"
        if self.live:
            self._clear()
            self.out.write(text)
            self._redraw()
        else:
            self.out.write(text)
        self.out.flush()

    def _clear(self) -> None:
        if self.drawn:
            self.out.write(f"\x1b[{len(self.lines)}F\x1b[J")  # back to the board's first line, and erase it
            self.drawn = False

    def _redraw(self) -> None:
        self._clear()
        for index, text in enumerate(self.lines):
            self.out.write(f"\x1b[2K{self._label(index, self.width) if self.named else ''}{text}\n")
        self.drawn = True


@dataclass(frozen=True)
class Plan:
    """What to do with every input: the params, and where its transcript goes."""

    params: dict[str, Any]
    extensions: Sequence[str] = ()  # files to write; empty: the one transcript on stdout
    stdout_format: str = "text"
    output_dir: Path = Path(".")
    max_line_width: int | None = None
    max_line_count: int | None = None
    verbose: bool = False  # print segments as they settle


@dataclass(frozen=True)
class Outcome:
    input: str
    written: tuple[Path, ...] = ()
    summary: longscribe.Summary | None = None
    error: str | None = None
    unreachable: bool = False  # the service could not be reached, or refused the key: no input can succeed


async def submit(client: longscribe.AsyncClient, media: str, params: dict[str, Any]) -> longscribe.AsyncJob:
    """Start the input's job; while the service's queue is full (429), wait as it says and ask again."""
    while True:
        try:
            return await client.submit(media, **params)
        except longscribe.Overloaded as exc:
            await asyncio.sleep(min(MAX_FULL_WAIT_S, max(exc.retry_after_s, 1.0)))


async def run_one(
    client: longscribe.AsyncClient, media: str, name: str, index: int, board: Board, plan: Plan, sink: IO[bytes]
) -> Outcome:
    """One input as a job, followed to its end and its transcript written; never raises but on cancel,
    which cancels the job on the service (no FFmpeg or inference keeps running for nobody)."""
    written: list[Path] = []
    try:
        job = await submit(client, media, plan.params)
        board.note(index, f"job {job.id}: {job.url}")

        printed = 0

        def shown(event: longscribe.JobEvent) -> None:
            nonlocal printed
            if isinstance(event, longscribe.ChunkEvent):
                if plan.verbose:
                    for segment in event.segments:
                        board.note(index, segment_line(segment))
                    printed += len(event.segments)
                board.update(index, progress_line(event.progress))

        try:
            end = await job.wait(on_event=shown)
            if plan.verbose:  # the chunk events settle all but the end of the last chunk: it settles with the job
                for segment in (await job.result()).segments[printed:]:
                    board.note(index, segment_line(segment))
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(job.cancel())
            board.note(index, "cancelled")
            raise
        if not plan.extensions:
            await job.download(sink, plan.stdout_format, plan.max_line_width, plan.max_line_count)
            sink.write(b"\n")
        for ext in plan.extensions:
            path = plan.output_dir / f"{name}.{ext}"
            with path.open("wb") as out:
                await job.download(out, EXTENSIONS[ext], plan.max_line_width, plan.max_line_count)
                out.write(b"\n")
            written.append(path)
    except (longscribe.LongscribeError, OSError) as exc:
        unreachable = isinstance(exc, (longscribe.ServiceUnreachable, longscribe.AuthenticationError))
        return Outcome(media, tuple(written), error=str(exc).splitlines()[0], unreachable=unreachable)
    summary = end.summary
    if summary is not None and board.named:  # one input: the summary line after the transcript says it
        board.update(index, f"done: {summary.input_duration_sec:.1f} s of audio, {summary.speedup:.1f}x")
    return Outcome(media, tuple(written), summary=summary)


async def run_all(
    client: longscribe.AsyncClient,
    inputs: Sequence[str],
    media: Sequence[str],
    plan: Plan,
    quiet: bool,
    out: TextIO = sys.stderr,
    sink: IO[bytes] | None = None,
) -> list[Outcome]:
    """Every input as a concurrent job (`media[i]` is what is sent for `inputs[i]`); every outcome, in order."""
    names = output_names(inputs)
    board = Board(names, out, quiet, named=len(inputs) > 1)
    stdout = sink if sink is not None else sys.stdout.buffer
    found = await asyncio.gather(
        *(run_one(client, media[i], names[i], i, board, plan, stdout) for i in range(len(inputs))),
        return_exceptions=True,
    )
    outcomes = []
    for index, result in enumerate(found):
        if isinstance(result, asyncio.CancelledError):
            raise result
        if isinstance(result, BaseException):  # a bug, not the input's fault: still reported with the others
            result = Outcome(inputs[index], error=f"{type(result).__name__}: {result}")
        outcomes.append(Outcome(inputs[index], result.written, result.summary, result.error, result.unreachable))
        if result.error and len(inputs) > 1:
            board.update(index, f"failed: {result.error}")
    return outcomes
