"""`longscribe transcribe`: inputs to a service (--server, or one started for the command) through the
Python client, transcripts to stdout or files, every outcome one line, and an exit code that says which."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import longscribe
from longscribe._media import is_url
from orchestrator.cli import batch

# the exit codes, as --help's epilog lists them
OK, INPUT_FAILED, USAGE, UNREACHABLE, NO_SERVICE, INTERRUPTED = 0, 1, 2, 3, 4, 130
STDIN = "-"


def say(message: str) -> None:
    print(f"longscribe: {message}", file=sys.stderr, flush=True)


def params_from(args: argparse.Namespace) -> dict[str, Any]:
    """The job's params from the flags: only those given, so the service's defaults hold otherwise."""
    chosen = {
        "language": args.language,
        "task": args.task if args.task != "transcribe" else None,
        "prompt": args.prompt,
        "temperature": args.temperature,
        "word_timestamps": True if args.word_timestamps else None,
        "diarize": True if args.diarize else None,
        "num_speakers": args.speakers,
        "min_speakers": args.min_speakers,
        "max_speakers": args.max_speakers,
        "macro_chunk_size_sec": args.macro_chunk_size_sec,
        "micro_chunk_size_sec": args.micro_chunk_size_sec,
        "model": args.model if args.server else None,  # a self-started service serves only this one
    }
    return {k: v for k, v in chosen.items() if v is not None}


def plan_from(args: argparse.Namespace) -> batch.Plan:
    """Where transcripts go; ValueError for a format that cannot be written there."""
    to_stdout = args.output_dir is None and len(args.media) == 1
    if to_stdout:
        fmt = args.format or "text"
        if fmt not in batch.STDOUT_FORMATS:
            raise ValueError(f"--format for one transcript on stdout: one of {', '.join(batch.STDOUT_FORMATS)}")
        extensions: list[str] = []
    else:
        fmt, extensions = "text", batch.parse_formats(args.format or "all")
    return batch.Plan(
        params=params_from(args),
        extensions=extensions,
        stdout_format={"txt": "text"}.get(fmt, fmt),
        output_dir=Path(args.output_dir or "."),
        max_line_width=args.max_line_width,
        max_line_count=args.max_line_count,
        verbose=args.verbose,
    )


@contextlib.contextmanager
def spooled_stdin() -> Any:
    """Standard input copied to a temporary file: uploaded like any file (and again, if the queue was full)."""
    with tempfile.NamedTemporaryFile(prefix="longscribe-stdin-") as spool:
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.flush()
        yield spool.name


@contextlib.asynccontextmanager
async def reached(args: argparse.Namespace) -> AsyncIterator[tuple[str, str | None]]:
    """The service's URL and the key to send: --server's, or a private service started now."""
    if args.server:
        yield args.server, args.api_key
        return
    from orchestrator.cli import service  # the server side, only when one is started here

    async with service.private_service(args) as found:
        yield found


async def transcribe(args: argparse.Namespace) -> int:
    try:
        plan = plan_from(args)
    except ValueError as exc:
        say(str(exc))
        return USAGE
    missing = [m for m in args.media if m != STDIN and not is_url(m) and not Path(m).is_file()]
    if missing:
        say(f"no such file: {', '.join(missing)}")
        return USAGE
    if plan.extensions:  # before any service starts or job runs: a bad -o is a usage error, not a traceback
        try:
            plan.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            say(f"cannot write to --output-dir {plan.output_dir}: {exc.strerror or exc}")
            return USAGE
    if args.media.count(STDIN) > 1:
        say("- (standard input) can be given once")
        return USAGE
    with contextlib.ExitStack() as files:
        media = [files.enter_context(spooled_stdin()) if m == STDIN else m for m in args.media]
        async with reached(args) as (server, api_key):
            try:
                client = longscribe.AsyncClient(server, api_key, trust_env=False)
            except ValueError as exc:
                say(str(exc))
                return USAGE
            async with client:
                outcomes = await batch.run_all(client, args.media, media, plan, args.quiet)
    return report(outcomes, args.quiet)


def report(outcomes: list[batch.Outcome], quiet: bool) -> int:
    """Each failure one line on stderr (a single input's summary too); the exit code for them all."""
    failed = [o for o in outcomes if o.error]
    for outcome in failed:
        say(f"{outcome.input} failed: {outcome.error}" if len(outcomes) > 1 else str(outcome.error))
    if len(outcomes) == 1 and not failed and not quiet and outcomes[0].summary is not None:
        summary = outcomes[0].summary
        print(
            f"input_duration_sec={summary.input_duration_sec:.1f} "
            f"processing_duration_sec={summary.processing_duration_sec:.2f} speedup={summary.speedup:.1f}x",
            file=sys.stderr,
        )
    if any(o.unreachable for o in failed):
        return UNREACHABLE
    return INPUT_FAILED if failed else OK
