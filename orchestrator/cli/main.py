"""`longscribe serve` and `longscribe transcribe`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from orchestrator import formats
from orchestrator.api import auth
from orchestrator.api.app import create_app
from orchestrator.cli import batch, progress
from orchestrator.common.fileserver import serving_file
from orchestrator.common.net import free_port, serving
from orchestrator.common.observability import configure_logs
from orchestrator.infer.repository import ModelsUnavailable
from orchestrator.infer.triton_server import TritonStartError, running_triton
from orchestrator.jobs.redis_server import RedisStartError, running_redis
from orchestrator.settings import Settings

log = logging.getLogger("longscribe")
MODEL_HELP = (
    "a Whisper model: tiny.en (default, English) or base (multilingual), both packaged; one of faster-whisper's "
    "names (small, medium, large-v3, distil-large-v3, turbo, ...) or a Hugging Face id of a CTranslate2 Whisper "
    "repository (Org/repo[@revision]), fetched into the Hugging Face cache (HF_HOME, HF_HUB_OFFLINE honoured); "
    "or a CTranslate2 directory. `name=source` names it for requests"
)


@contextlib.asynccontextmanager
async def service(settings: Settings, start_triton: bool) -> AsyncIterator[str]:
    """Redis and Triton (unless given) and the REST API; yield the API's URL."""
    # keys that cannot be used stop the start now, before Redis and Triton start; and a service others may
    # reach never runs without keys by default: auth off is a choice stated with --no-auth or empty keys
    if not auth.load(settings).stated:
        raise auth.KeysMisconfigured(
            "no API keys are configured: set LONGSCRIBE_API_KEYS (a JSON list) or LONGSCRIBE_API_KEYS_FILE "
            "(one key per line), or run without auth on purpose with `longscribe serve --no-auth`"
        )
    async with contextlib.AsyncExitStack() as stack:
        if not settings.redis_url:  # entered first, left last: the jobs are handed back into it
            settings = settings.model_copy(
                update={"redis_url": await stack.enter_async_context(running_redis(settings))}
            )
        if start_triton:
            grpc_url = await stack.enter_async_context(running_triton(settings))
            settings = settings.model_copy(update={"triton_grpc_urls": [grpc_url]})
        app = create_app(settings)
        base = await stack.enter_async_context(
            serving(app, settings.host, settings.port, shutdown_timeout_s=settings.shutdown_grace_sec)
        )
        yield base


def _settings(args: argparse.Namespace, **overrides: object) -> Settings:
    update = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "triton_url", None):
        update["triton_grpc_urls"] = args.triton_url
    if getattr(args, "model", None) and not getattr(args, "server", None):
        update["models"] = args.model if isinstance(args.model, list) else [args.model]
    for name in ("host", "port", "triton_http_port", "triton_grpc_port", "triton_metrics_port"):
        if getattr(args, name, None) is not None:
            update[name] = getattr(args, name)
    return Settings(**update)  # type: ignore[arg-type]


async def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args, no_auth=True if args.no_auth else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with service(settings, start_triton=not (args.triton_url or args.no_triton)) as base:
        log.info("longscribe listening on %s (POST /v1/transcribe)", base)
        await stop.wait()
        log.info("stopping")
    return 0


async def _transcribe(args: argparse.Namespace) -> int:
    params = {
        k: v
        for k, v in {
            "macro_chunk_size_sec": args.macro_chunk_size_sec,
            "micro_chunk_size_sec": args.micro_chunk_size_sec,
            "language": args.language,
            "word_timestamps": args.word_timestamps or None,
            "model": args.model if args.server else None,  # a self-started service serves only this one
        }.items()
        if v is not None
    }
    to_stdout = args.output_dir is None and len(args.media) == 1
    stdout_format = {"txt": "text"}.get(args.format or "text", args.format or "text")  # the API's names too
    try:
        if to_stdout and stdout_format not in formats.FORMATS:
            raise ValueError(f"--format for one transcript on stdout: one of txt, {', '.join(formats.FORMATS)}")
        extensions = [] if to_stdout else batch.parse_formats(args.format or "all")
    except ValueError as exc:
        print(f"longscribe: {exc}", file=sys.stderr)
        return 2
    missing = [m for m in args.media if not m.startswith(("http://", "https://")) and not Path(m).is_file()]
    if missing:
        print(f"longscribe: no such file: {', '.join(missing)}", file=sys.stderr)
        return 2
    async with contextlib.AsyncExitStack() as stack:
        # local files are served on loopback, which media URLs may not reach by default
        urls = [
            m if m.startswith(("http://", "https://")) else await stack.enter_async_context(serving_file(Path(m)))
            for m in args.media
        ]
        server, api_key = args.server, args.api_key or os.environ.get("LONGSCRIBE_API_KEY") or None
        if server is None:
            # free ports: a `longscribe serve` or another Triton may hold the defaults
            settings = _settings(
                args,
                port=0,
                triton_http_port=free_port(),
                triton_grpc_port=free_port(),
                triton_metrics_port=free_port(),
                allowed_media_hosts=Settings().allowed_media_hosts + ["127.0.0.1"] if urls != args.media else None,
                # this service lives for one transcription: its jobs need no keeping
                redis_dir=Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="longscribe-redis-"))),
            )
            # a key of its own, known only to this process: nobody else on the machine may use this service
            api_key = secrets.token_urlsafe(24)
            settings = settings.model_copy(
                update={
                    "api_keys": [api_key],
                    "api_keys_file": None,
                    "admin_api_keys": [],
                    "admin_api_keys_file": None,
                    "no_auth": False,
                }
            )
            server = await stack.enter_async_context(service(settings, start_triton=not args.triton_url))
        server = server.rstrip("/")
        bodies = [{"media_url": url, "params": params} for url in urls]
        async with progress.client(api_key) as http:
            if not to_stdout:  # a job each, all at once; Ctrl-C cancels them on the server
                outcomes = await batch.run_many(
                    http, server, args.media, bodies, Path(args.output_dir or "."), extensions, args.quiet
                )
                for failed in (o for o in outcomes if o.error):
                    print(f"longscribe: {failed.input} failed: {failed.error}", file=sys.stderr)
                return 1 if any(o.error for o in outcomes) else 0
            try:  # a job: progress as it goes, and Ctrl-C cancels it on the server
                job = await batch.run_one(http, server, bodies[0], quiet=args.quiet)
                # the end event only links the transcript: it is fetched, streamed straight to stdout
                await batch.fetch(http, server, job, stdout_format, sys.stdout.buffer)
            except batch.InputFailed as exc:
                print(f"longscribe: {exc}", file=sys.stderr)
                return 1
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    summary = job["summary"]
    if not args.quiet:
        print(
            f"input_duration_sec={summary['input_duration_sec']:.1f} "
            f"processing_duration_sec={summary['processing_duration_sec']:.2f} speedup={summary['speedup']:.1f}x",
            file=sys.stderr,
        )
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="longscribe", description="Long-form speech to timestamped text.")
    sub = top.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run Triton and the REST API until Ctrl-C")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--triton-url", action="append", help="use this Triton gRPC endpoint (repeatable) instead of starting one"
    )
    serve.add_argument(
        "--no-triton",
        action="store_true",
        help="do not start Triton: use LONGSCRIBE_TRITON_GRPC_URLS or LONGSCRIBE_TRITON_DISCOVERY_DNS (containers)",
    )
    serve.add_argument(
        "--model", action="append", help=MODEL_HELP + "; repeat to serve several, the first is the default"
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without API keys, on purpose: every caller sees every job (refused when keys are configured)",
    )
    serve.add_argument("--triton-http-port", type=int)
    serve.add_argument("--triton-grpc-port", type=int)
    serve.add_argument("--triton-metrics-port", type=int)

    tr = sub.add_parser("transcribe", help="transcribe URLs or local files")
    tr.add_argument("media", nargs="+", help="http(s) URLs or local paths; several run as concurrent jobs")
    tr.add_argument(
        "--format",
        help="files: txt, srt, vtt, json (the full answer), comma-separated, or all (the default); one input "
        "without --output-dir prints one: text (default), srt, vtt, json or verbose_json",
    )
    tr.add_argument(
        "--output-dir", help="write <dir>/<input name>.<ext> per input and format (several inputs: default .)"
    )
    tr.add_argument("--server", help="a running longscribe (e.g. http://127.0.0.1:8080); default: start one")
    tr.add_argument(
        "--api-key", help="the key the --server asks for, sent as `Authorization: Bearer`; default: $LONGSCRIBE_API_KEY"
    )
    tr.add_argument("--triton-url", action="append", help="Triton gRPC endpoint for the self-started service")
    tr.add_argument("--model", help=MODEL_HELP + "; with --server: the name of one the server serves")
    tr.add_argument("--triton-http-port", type=int)
    tr.add_argument("--triton-grpc-port", type=int)
    tr.add_argument("--triton-metrics-port", type=int)
    tr.add_argument("--macro-chunk-size-sec", type=float)
    tr.add_argument("--micro-chunk-size-sec", type=float)
    tr.add_argument("--language", help="ISO 639-1 code; default: English, or detected on a multilingual model")
    tr.add_argument("--word-timestamps", action="store_true", help="add word times (json formats)")
    tr.add_argument("-v", "--verbose", action="store_true", help="show Triton's log")
    tr.add_argument("-q", "--quiet", action="store_true", help="no progress line and no summary: only the transcript")
    return top


M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 1 << 20


def return_freed_buffers_to_the_os() -> None:
    """Give each buffer over 1 MiB (a chunk's PCM, its gRPC request) its own mapping.

    glibc raises its mmap threshold to the largest buffer freed so far, after
    which 10 MB chunk buffers come from the heap and its fragments are never
    returned: the service grew by about 80 MB per hour of audio. A fixed
    threshold keeps it flat. Only in this process: the inference stubs, with
    many mid-sized arrays, run faster with glibc's default.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return_freed_buffers_to_the_os()
    quiet = args.command == "transcribe" and not args.verbose
    level = logging.WARNING if quiet else logging.INFO
    configure_logs(Settings().log_format, level)
    try:
        return asyncio.run(_serve(args) if args.command == "serve" else _transcribe(args))
    except ModelsUnavailable as exc:
        print(f"longscribe: cannot serve the models: {exc}", file=sys.stderr)
        return 1
    except TritonStartError as exc:
        print(f"longscribe: Triton did not start: {exc}", file=sys.stderr)
        return 1
    except RedisStartError as exc:
        print(f"longscribe: Redis did not start: {exc}", file=sys.stderr)
        return 1
    except auth.KeysMisconfigured as exc:
        print(f"longscribe: cannot start: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
