"""Loopback helpers: free ports, serving an aiohttp app, waiting for a child service to answer, and telling
whether the port it answers on is its own."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
from aiohttp import web

READY_POLL_S = 0.25  # how often to ask while a service starts
READY_PROBE_TIMEOUT_S = 2.0  # one readiness request: a busy server must not stall the wait


LISTEN = "0A"  # a socket's state in /proc/net/tcp: listening
BIND_ATTEMPTS = 3  # starts of a child on fresh free ports before giving up: each lost race costs one


class NotReady(RuntimeError):
    """A child service exited, or did not answer 200 in time."""


class PortTaken(NotReady):
    """Another process took a port picked for a child before the child could bind it."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now: another process may still take it before use, so a child
    started on it is checked with `listening_ports` and started again on a fresh one (BIND_ATTEMPTS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_taken(host: str, port: int) -> bool:
    """Whether a server could not bind `port` on `host` now, as servers bind (SO_REUSEADDR: a closed
    connection lingering in TIME_WAIT does not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host.strip("[]"), port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
        return False


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on (from /proc): whether a service that answers is the
    child we started, or another process that holds the port the child could not bind."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{table}") as rows:
            next(rows)  # the header
            for row in rows:
                fields = row.split()
                if fields[3] == LISTEN and fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def wait_until_ready(url: str, exit_code: Callable[[], int | None], timeout_s: float, what: str) -> None:
    """Poll `url` until it answers 200; stop early when `exit_code()` says the process has exited."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            code = exit_code()
            if code is not None:
                raise NotReady(f"{what} exited with {code}; see its log above")
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=READY_PROBE_TIMEOUT_S)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(READY_POLL_S)
    raise NotReady(f"{what} not ready after {timeout_s:g} s")


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, host: str = "127.0.0.1", port: int = 0, shutdown_timeout_s: float = 60.0
) -> AsyncIterator[str]:
    """Run `app` on loopback; yield its base URL (a free port unless given).

    A client that hangs up cancels its handler (its FFmpeg and inference with
    it). On exit the port closes first; handlers still running get
    `shutdown_timeout_s` to finish before they are cancelled.
    """
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=shutdown_timeout_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()
