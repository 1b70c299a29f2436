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

from orchestrator.api.keys import JOBS, SETTINGS, WEBHOOK_CLIENT, WEBHOOKS, WORKER
from orchestrator.jobs import webhooks
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
            yield
        finally:
            await client.aclose()

    app.cleanup_ctx.append(_webhook_client_ctx)
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


async def _webhook_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """The guarded client webhooks are posted through, under allowed_webhook_hosts (not the media list)."""
    policy = guard.webhook_policy(app[SETTINGS].allowed_webhook_hosts)
    async with guard.session(policy) as session:
        app[WEBHOOK_CLIENT] = (session, policy)
        yield


async def _post_webhook(app: web.Application, url: str, body: bytes, headers: dict[str, str]) -> int:
    """One attempt, through the guarded client (a stranger names the URL); the receiver's status.

    A URL the policy refuses raises InvalidWebhook, which ends the delivery (no retry can fix it)."""
    session, policy = app[WEBHOOK_CLIENT]
    guard.check_literal(guard.parse_url(url, policy), policy)
    timeout = aiohttp.ClientTimeout(total=webhooks.WEBHOOK_TIMEOUT_S)
    async with session.post(url, data=body, headers=headers, allow_redirects=False, timeout=timeout) as response:
        return response.status
