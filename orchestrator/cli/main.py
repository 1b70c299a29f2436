"""`longscribe serve` and `longscribe transcribe`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import logging
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from orchestrator import formats
from orchestrator.api.app import create_app
from orchestrator.cli import progress
from orchestrator.common.fileserver import serving_file
from orchestrator.common.net import free_port, serving
from orchestrator.common.observability import use_json_logs
from orchestrator.infer.triton_server import TritonStartError, running_triton
from orchestrator.jobs.redis_server import RedisStartError, running_redis
from orchestrator.schemas import TranscribeOutput
from orchestrator.settings import Settings

log = logging.getLogger("longscribe")
MODEL_HELP = "Whisper weights: tiny.en (default, English), base (multilingual) or a CTranslate2 directory"


@contextlib.asynccontextmanager
async def service(settings: Settings, start_triton: bool) -> AsyncIterator[str]:
    """Redis and Triton (unless given) and the REST API; yield the API's URL."""
    async with contextlib.AsyncExitStack() as stack:
        if settings.redis_url is None:  # entered first, left last: the jobs are handed back into it
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
    if getattr(args, "model", None):
        update["whisper_weights"] = args.model
    for name in ("host", "port", "triton_http_port", "triton_grpc_port", "triton_metrics_port"):
        if getattr(args, name, None) is not None:
            update[name] = getattr(args, name)
    return Settings(**update)  # type: ignore[arg-type]


async def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
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
        }.items()
        if v is not None
    }
    async with contextlib.AsyncExitStack() as stack:
        media = args.media
        local_file = not media.startswith(("http://", "https://"))
        if local_file:
            path = Path(media)
            if not path.is_file():
                print(f"longscribe: no such file: {media}", file=sys.stderr)
                return 2
            media = await stack.enter_async_context(serving_file(path))
        server = args.server
        if server is None:
            # free ports: a `longscribe serve` or another Triton may hold the defaults
            settings = _settings(
                args,
                port=0,
                triton_http_port=free_port(),
                triton_grpc_port=free_port(),
                triton_metrics_port=free_port(),
                # the local file is served on loopback, which media URLs may not reach by default
                allowed_media_hosts=Settings().allowed_media_hosts + ["127.0.0.1"] if local_file else None,
                # this service lives for one transcription: its jobs need no keeping
                redis_dir=Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="longscribe-redis-"))),
            )
            server = await stack.enter_async_context(service(settings, start_triton=not args.triton_url))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as session:
            try:  # a job: progress as it goes, and Ctrl-C cancels it on the server
                job = await progress.run_job(
                    session, server.rstrip("/"), {"media_url": media, "params": params}, quiet=args.quiet
                )
            except progress.JobRefused as exc:
                print(f"longscribe: {exc}", file=sys.stderr)
                return 1
    if job["status"] != "succeeded":
        print(f"longscribe: the job {job['status']}: {json.dumps(job.get('error'))}", file=sys.stderr)
        return 1
    output = TranscribeOutput.model_validate(job["result"])
    print(formats.render(output, args.format))
    if not args.quiet:
        print(
            f"input_duration_sec={output.input_duration_sec:.1f} "
            f"processing_duration_sec={output.processing_duration_sec:.2f} speedup={output.speedup:.1f}x",
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
    serve.add_argument("--model", help=MODEL_HELP)
    serve.add_argument("--triton-http-port", type=int)
    serve.add_argument("--triton-grpc-port", type=int)
    serve.add_argument("--triton-metrics-port", type=int)

    tr = sub.add_parser("transcribe", help="transcribe a URL or a local file")
    tr.add_argument("media", help="http(s) URL or local path")
    tr.add_argument("--format", choices=formats.FORMATS, default="text")
    tr.add_argument("--server", help="a running longscribe (e.g. http://127.0.0.1:8080); default: start one")
    tr.add_argument("--triton-url", action="append", help="Triton gRPC endpoint for the self-started service")
    tr.add_argument("--model", help=MODEL_HELP + " (self-started service only)")
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
    if Settings().log_format == "json":
        use_json_logs(level)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        return asyncio.run(_serve(args) if args.command == "serve" else _transcribe(args))
    except TritonStartError as exc:
        print(f"longscribe: Triton did not start: {exc}", file=sys.stderr)
        return 1
    except RedisStartError as exc:
        print(f"longscribe: Redis did not start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
