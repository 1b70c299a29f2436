"""GET /readyz: this orchestrator can take work now.

Ready means Redis answers PING (when `redis_url` is set) and at least one
Triton endpoint has its models: the pool sends chunks past a dead endpoint, so
one bad Triton must not take every orchestrator out of the Service, while an
orchestrator that cannot reach Redis can neither accept nor report a job.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

from orchestrator.api.keys import POOL, SETTINGS

PING_TIMEOUT_S = 2.0  # a probe must answer before the kubelet's own timeout


async def redis_answers(url: str) -> bool:
    """True when the Redis at `url` answers PING within PING_TIMEOUT_S."""
    client = aioredis.Redis.from_url(url, socket_timeout=PING_TIMEOUT_S, socket_connect_timeout=PING_TIMEOUT_S)
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()


async def readyz(request: web.Request) -> web.Response:
    pool = request.app.get(POOL)
    endpoints = await pool.readiness() if pool is not None else {}
    # the job store's Redis, where the settings name one (the field arrives with jobs on Redis)
    redis_url: str = getattr(request.app[SETTINGS], "redis_url", "")
    redis = await redis_answers(redis_url) if redis_url else None
    triton = pool is None or any(endpoints.values())  # no pool: a stand-in transcriber needs no Triton
    ready = triton and redis is not False
    body = {"ready": ready, "endpoints": endpoints, "redis": redis}
    return web.json_response(body, status=200 if ready else 503)
