"""The app's jobs: a Redis client, the store, a worker and the webhooks, tied to the app's lifetime.

Without LONGSCRIBE_REDIS_URL the app keeps no jobs (the /v1/jobs routes
answer 503); `longscribe serve` always gives it one, its own if need be.
Order matters at both ends: the worker starts once the pipeline exists, and
on shutdown it hands its jobs back before the pipeline's clients close and
before the Redis client does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import redis.asyncio as redis
from aiohttp import web
from yarl import URL

from orchestrator.api.keys import EVENT_HUB, JOBS, MEDIA_CLIENT, SETTINGS, WEBHOOKS, WORKER
from orchestrator.jobs import webhooks
from orchestrator.jobs.event_hub import EventHub
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.worker import Run, Worker, ensure_group
from orchestrator.media import guard

REDIS_TIMEOUT_S = 30.0  # one Redis reply; over every blocking read's wait (the longest is 5 s)


def wire(app: web.Application, run: Run) -> None:
    """Give `app` its jobs when a Redis is configured; `run` transcribes one job's request."""
    if not app[SETTINGS].redis_url:
        return

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        client = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=REDIS_TIMEOUT_S)
        store = JobStore(client, settings.job_ttl_sec, settings.max_queued_jobs, settings.retry_after_sec)
        app[JOBS] = store
        app[EVENT_HUB] = hub = EventHub.connect(settings.redis_url, client, store.closing)
        app[WEBHOOKS] = webhooks.Webhooks(
            store,
            post=lambda url, body, headers: _post_webhook(app, url, body, headers),
            secret=settings.webhook_secret,
            retry_s=settings.webhook_retry_sec,
            lease_s=settings.job_lease_sec,
        )
        app[WORKER] = Worker(
            store,
            run,
            slots=settings.job_workers,
            lease_s=settings.job_lease_sec,
            max_attempts=settings.job_max_attempts,
            on_finished=app[WEBHOOKS].deliver_soon,
        )
        try:
            await ensure_group(store)
            hub.start()
            yield
        finally:
            await hub.close()
            await client.aclose()

    app.cleanup_ctx.append(redis_ctx)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)


async def _start(app: web.Application) -> None:
    """After every cleanup context: a job taken now finds the pipeline ready."""
    await app[WORKER].start()
    app[WEBHOOKS].start()


async def _stop(app: web.Application) -> None:
    """On shutdown, before any client closes: event streams end, running jobs go back to the queue."""
    app[JOBS].closing.set()
    await app[WORKER].close()
    await app[WEBHOOKS].close()


async def _post_webhook(app: web.Application, url: str, body: bytes, headers: dict[str, str]) -> int:
    """One attempt, through the guarded client (a stranger names the URL); the receiver's status."""
    session, policy = app[MEDIA_CLIENT]
    guard.check_literal(URL(url), policy)
    timeout = aiohttp.ClientTimeout(total=webhooks.WEBHOOK_TIMEOUT_S)
    async with session.post(url, data=body, headers=headers, allow_redirects=False, timeout=timeout) as response:
        return response.status
