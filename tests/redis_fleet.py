"""One Redis for the whole test session, a database of its own for each test's fleet."""

from __future__ import annotations

import itertools

import redis.asyncio
from yarl import URL

REDIS_DATABASES = 16  # redis-server's default count

_databases = itertools.cycle(range(1, REDIS_DATABASES))  # 0 is the session-wide service's


async def fresh_database(server_url: str) -> str:
    """A database of its own on the session's Redis, emptied: a test's orchestrators form one fleet,
    and the workers of another test's fleet must not take its jobs."""
    url = str(URL(server_url).with_path(f"/{next(_databases)}"))
    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    return url
