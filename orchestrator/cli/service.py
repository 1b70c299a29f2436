"""The service the CLI runs: `longscribe serve`, and the private one `transcribe` starts without --server.

The server side (Triton, Redis, the REST API) is imported here only, and
this module only when a service is started: `transcribe --server` needs
none of it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from orchestrator.api import auth
from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.common.observability import configure_logs
from orchestrator.infer.repository import ModelsUnavailable
from orchestrator.infer.triton_server import FREE_PORTS, TritonStartError, running_triton
from orchestrator.jobs.redis_server import RedisStartError, running_redis
from orchestrator.settings import Settings

log = logging.getLogger("longscribe")
KeysMisconfigured = auth.KeysMisconfigured


def configure_logging(level: int) -> None:
    configure_logs(Settings().log_format, level)


def start_failure(exc: BaseException) -> str | None:
    """One line for a service that could not start, None for any other error."""
    if isinstance(exc, ModelsUnavailable):
        return f"cannot serve the models: {exc}"
    if isinstance(exc, TritonStartError):
        return f"Triton did not start: {exc}"
    if isinstance(exc, RedisStartError):
        return f"Redis did not start: {exc}"
    if isinstance(exc, KeysMisconfigured):
        return f"cannot start: {exc}"
    return None


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


def settings_from(args: argparse.Namespace, **overrides: object) -> Settings:
    update = {k: v for k, v in overrides.items() if v is not None}
    if getattr(args, "triton_url", None):
        update["triton_grpc_urls"] = args.triton_url
    if getattr(args, "model", None):
        update["models"] = args.model if isinstance(args.model, list) else [args.model]
    for name in ("host", "port", "triton_http_port", "triton_grpc_port", "triton_metrics_port"):
        if getattr(args, name, None) is not None:
            update[name] = getattr(args, name)
    return Settings(**update)  # type: ignore[arg-type]


async def serve(args: argparse.Namespace) -> int:
    settings = settings_from(args, no_auth=True if args.no_auth else None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with service(settings, start_triton=not (args.triton_url or args.no_triton)) as base:
        log.info("longscribe listening on %s (POST /v1/transcribe)", base)
        await stop.wait()
        log.info("stopping")
    return 0


@contextlib.asynccontextmanager
async def private_service(args: argparse.Namespace) -> AsyncIterator[tuple[str, str]]:
    """A service for this one command: free ports, its own Redis data, and a key only this process knows.

    Yields (its URL, the key). Media reach it as they would a deployed one: files
    uploaded, URLs fetched under the default policy (loopback refused)."""
    with tempfile.TemporaryDirectory(prefix="longscribe-redis-") as redis_dir:
        settings = settings_from(
            args,
            port=0,  # free ports: a `longscribe serve` or another Triton may hold the defaults
            **FREE_PORTS,  # picked as Triton starts, and picked again if another process takes one first
            redis_dir=Path(redis_dir),  # this service lives for one command: its jobs need no keeping
        )
        api_key = secrets.token_urlsafe(24)  # nobody else on the machine may use this service
        settings = settings.model_copy(
            update={
                "api_keys": [api_key],
                "api_keys_file": None,
                "admin_api_keys": [],
                "admin_api_keys_file": None,
                "no_auth": False,
            }
        )
        async with service(settings, start_triton=not args.triton_url) as base:
            yield base, api_key
