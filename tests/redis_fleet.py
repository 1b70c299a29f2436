"""One Redis for the whole test session, a database of its own for each test's fleet."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio
from yarl import URL

REDIS_DATABASES = 16  # redis-server's default count
_leased: set[int] = set()  # 0 is the session-wide service's


@contextlib.asynccontextmanager
async def own_database(server_url: str) -> AsyncIterator[str]:
    """A database of its own on the session's Redis, emptied, for as long as the caller holds it:
    a test's orchestrators form one fleet, and the workers of another fleet must not take its jobs.

    Leased, not handed out in turn: a session-wide service holds its database through the whole run,
    and a later fixture given the same number would empty its queue and share its workers."""
    free = [n for n in range(1, REDIS_DATABASES) if n not in _leased]
    if not free:
        raise RuntimeError(f"all {REDIS_DATABASES - 1} test databases are held: a fixture keeps one it is done with")
    number = free[0]
    _leased.add(number)
    url = str(URL(server_url).with_path(f"/{number}"))
    try:
        client = redis.asyncio.Redis.from_url(url)
        try:
            await client.flushdb()
        finally:
            await client.aclose()
        yield url
    finally:
        _leased.discard(number)
