"""Triton replicas found by DNS: a Kubernetes headless Service names every ready pod.

`triton_discovery_dns` = `triton-headless.longscribe.svc.cluster.local:8001`: every
address the name resolves to is an endpoint on that port. The list is
refreshed every `triton_discovery_interval_sec`; a pod that stops being ready
leaves the DNS answer and the pool, and one that comes back is added again.
Between refreshes, the pool itself skips a replica that stopped answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

from orchestrator.infer.pool import TritonPool

log = logging.getLogger("longscribe.discovery")

# name -> "host:port" endpoints; injectable, so tests can play the DNS
Resolve = Callable[[str], Awaitable[list[str]]]


def split_name(name: str) -> tuple[str, int]:
    host, _, port = name.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port for Triton discovery, got {name!r}")
    return host, int(port)


def endpoints(addresses: list[str], port: int) -> list[str]:
    """Sorted, unique `address:port` endpoints (IPv6 in brackets, as gRPC wants)."""
    found = set()
    for address in addresses:
        ip = ipaddress.ip_address(address)
        found.add(f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}")
    return sorted(found)


async def resolve_dns(name: str) -> list[str]:
    """Every address `host` resolves to, as endpoints on `port`."""
    host, port = split_name(name)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return endpoints([str(info[4][0]) for info in infos], port)


async def refresh_once(pool: TritonPool, name: str, resolve: Resolve) -> None:
    """Point the pool at what the name resolves to now; keep the old list if DNS fails."""
    try:
        found = await resolve(name)
    except OSError as exc:
        log.warning("could not resolve %s (%s); keeping %s", name, exc, pool.urls)
        return
    if not found:
        log.warning("%s resolves to no address; keeping %s", name, pool.urls)
        return
    if found != pool.urls:
        log.info("Triton endpoints from %s: %s", name, found)
        await pool.set_urls(found)


@contextlib.asynccontextmanager
async def discovering(
    pool: TritonPool, name: str, interval_s: float, resolve: Resolve = resolve_dns
) -> AsyncIterator[None]:
    """Resolve now, then keep refreshing in the background while the block runs."""
    await refresh_once(pool, name, resolve)

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval_s)
            await refresh_once(pool, name, resolve)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
