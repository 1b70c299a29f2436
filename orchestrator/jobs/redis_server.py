"""Run Debian's `redis-server` as a managed child when no LONGSCRIBE_REDIS_URL is given.

One machine then keeps its jobs as a fleet would: in Redis, with append-only
persistence in `redis_dir`, so a restarted `longscribe serve` finds them
again. The directory is locked while a server uses it (two servers on one
append-only file would corrupt it), the port is a free one (started again on
another when a process takes it first), and the child dies with us even when
we are SIGKILLed (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import redis.asyncio as redis
from redis.exceptions import RedisError

from orchestrator.common.children import supervised
from orchestrator.common.net import BIND_ATTEMPTS, PortTaken, free_port, listening_ports, port_taken
from orchestrator.settings import Settings

log = logging.getLogger("longscribe.redis")
START_TIMEOUT_S = 30.0  # loading a large append-only file takes a while
PING_POLL_S = 0.1
# one PING: loopback answers in microseconds; a port held by something else may accept and never answer
PING_TIMEOUT_S = 1.0
PR_SET_PDEATHSIG = 1  # prctl option, from linux/prctl.h
HOST = "127.0.0.1"


class RedisStartError(RuntimeError):
    """The managed redis-server is missing, exited, or did not answer PING in time."""


def server_args(settings: Settings, port: int) -> list[str]:
    return [
        settings.redis_server_bin,
        "--port", str(port),
        "--bind", HOST,
        "--dir", str(settings.redis_dir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",  # at most a second of job updates lost to a power cut
        "--save", "",  # the append-only file is the persistence; no RDB snapshots besides
        "--protected-mode", "yes",
    ]  # fmt: skip


def _die_with_parent() -> None:
    """In the child: SIGTERM when the orchestrator that started it dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "longscribe.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RedisStartError(
                f"another longscribe uses {directory}; set LONGSCRIBE_REDIS_DIR to another directory "
                "or LONGSCRIBE_REDIS_URL to share its Redis"
            ) from exc
        yield


async def _wait_for_ping(url: str, port: int, proc: asyncio.subprocess.Process) -> None:
    """PING answered by `proc` itself on `port`; PortTaken when another process holds the port."""
    client = redis.Redis.from_url(url, socket_timeout=PING_TIMEOUT_S, socket_connect_timeout=PING_TIMEOUT_S)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                if port_taken(HOST, port):
                    raise PortTaken(f"port {port} was taken before redis-server could bind it")
                raise RedisStartError(f"redis-server exited with {proc.returncode}; see its log above")
            with contextlib.suppress(RedisError, OSError):
                if await client.ping():
                    if port not in listening_ports(proc.pid):  # another Redis answered: ours cannot bind
                        raise PortTaken(f"another process answers on port {port}")
                    return
            await asyncio.sleep(PING_POLL_S)
        raise RedisStartError(f"redis-server did not answer PING within {START_TIMEOUT_S:g} s")
    finally:
        await client.aclose()


async def _spawn(settings: Settings, port: int) -> asyncio.subprocess.Process:
    try:
        return await asyncio.create_subprocess_exec(
            *server_args(settings, port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we stop it after the jobs are handed back
            preexec_fn=_die_with_parent,
        )
    except FileNotFoundError as exc:
        raise RedisStartError(
            f"{settings.redis_server_bin} is not installed (apt-get install redis-server), or set LONGSCRIBE_REDIS_URL"
        ) from exc


@contextlib.asynccontextmanager
async def running_redis(settings: Settings) -> AsyncIterator[str]:
    """Start redis-server on a free loopback port with its data in `redis_dir`; yield its URL; stop it.

    A free port can be taken by another process between picking and binding it: then the server
    is started again on a fresh one, up to BIND_ATTEMPTS times."""
    with _locked(settings.redis_dir):
        for attempt in range(1, BIND_ATTEMPTS + 1):
            port = free_port()
            url, started = f"redis://{HOST}:{port}/0", False
            proc = await _spawn(settings, port)
            try:
                async with supervised(proc, log):
                    await _wait_for_ping(url, port, proc)
                    started = True
                    log.info("Redis ready on %s:%d, data in %s", HOST, port, settings.redis_dir)
                    yield url
                    return
            except PortTaken as exc:
                if started:
                    raise
                if attempt == BIND_ATTEMPTS:
                    raise RedisStartError(f"{exc}, on each of {BIND_ATTEMPTS} free ports tried") from exc
                log.warning("%s: starting redis-server again on another", exc)
