"""The app's jobs: a Redis client, the store, a worker and the webhooks, tied to the app's lifetime.

Without LONGSCRIBE_REDIS_URL the app keeps no jobs (the /v1/jobs routes
answer 503); `longscribe serve` always gives it one, its own if need be.
Order matters at both ends: the worker starts once the pipeline exists, and
on shutdown it hands its jobs back before the pipeline's clients close and
before the Redis client does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import redis.asyncio as redis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.api.keys import (
    EVENT_HUB,
    HOST_RESOLVER,
    JOBS,
    METRICS,
    SETTINGS,
    UPLOAD_SWEEP,
    WEBHOOK_CLIENT,
    WEBHOOKS,
    WORKER,
)
from orchestrator.common.tasks import cancel_all
from orchestrator.jobs import uploads, webhooks
from orchestrator.jobs.event_hub import EventHub
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.worker import Run, Worker, ensure_group
from orchestrator.media import guard
from orchestrator.settings import Settings

REDIS_TIMEOUT_S = 30.0  # one Redis reply; over every blocking read's wait (the longest is 5 s)
# a command that failed in passing (a dropped connection, a reply slower than REDIS_TIMEOUT_S, a server
# still loading its data) is sent again: 0.1 s, 0.2 s ... up to 2 s apart, 6 times. The job state changes
# are idempotent scripts (jobs/transitions.py), so one sent again after a lost reply does nothing twice.
REDIS_RETRIES = 6
REDIS_BACKOFF_BASE_S = 0.1
REDIS_BACKOFF_CAP_S = 2.0


def connect(settings: Settings) -> redis.Redis:
    """This process's Redis client, over a bounded pool that makes a caller wait for a free connection
    (the default pool raises at once when full). A long blocking reader (an event fan-out) should
    open its own connection from `settings.redis_url` rather than hold one of these."""
    retry = Retry(ExponentialBackoff(cap=REDIS_BACKOFF_CAP_S, base=REDIS_BACKOFF_BASE_S), REDIS_RETRIES)
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_sec,
        decode_responses=True,
        socket_timeout=REDIS_TIMEOUT_S,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError, BusyLoadingError],
    )
    return redis.Redis.from_pool(pool)  # the client owns the pool: closing it closes the pool


def wire(app: web.Application, run: Run) -> None:
    """Give `app` its jobs when a Redis is configured; `run` transcribes one job's request."""
    if not app[SETTINGS].redis_url:
        return

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        client = connect(settings)
        store = JobStore(
            client,
            settings.job_ttl_sec,
            settings.max_queued_jobs,
            settings.retry_after_sec,
            max_queued_per_key=settings.max_queued_jobs_per_key,
            ended=lambda status: app[METRICS].jobs.labels(status).inc(),
        )
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
            outage_s=settings.redis_retry_sec,
        )
        try:
            await ensure_group(store)
            hub.start()
            yield
        finally:
            await hub.close()
            await client.aclose()

    app.cleanup_ctx.append(_webhook_client_ctx)
    app.cleanup_ctx.append(redis_ctx)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)


async def _start(app: web.Application) -> None:
    """After every cleanup context: a job taken now finds the pipeline ready."""
    await app[WORKER].start()
    app[WEBHOOKS].start()
    settings = app[SETTINGS]
    # a file untouched longer than any request may run, and named by no unfinished job, is left behind
    idle_s = settings.request_timeout_sec + uploads.SLACK_S
    app[UPLOAD_SWEEP] = asyncio.create_task(
        uploads.sweep_forever(app[JOBS], uploads.upload_dir(settings.upload_dir), idle_s)
    )


async def _stop(app: web.Application) -> None:
    """On shutdown, before any client closes: event streams end, running jobs go back to the queue."""
    app[JOBS].closing.set()
    await app[WORKER].close()
    await app[WEBHOOKS].close()
    sweep: asyncio.Task[None] = app[UPLOAD_SWEEP]
    await cancel_all([sweep])


async def _webhook_client_ctx(app: web.Application) -> AsyncIterator[None]:
    """The guarded client webhooks are posted through, under allowed_webhook_hosts (not the media list)."""
    policy = guard.webhook_policy(app[SETTINGS].allowed_webhook_hosts)
    async with guard.session(policy, app[HOST_RESOLVER]) as session:
        app[WEBHOOK_CLIENT] = (session, policy)
        yield


async def _post_webhook(app: web.Application, url: str, body: webhooks.Body, headers: dict[str, str]) -> int:
    """One attempt, through the guarded client (a stranger names the URL); the receiver's status.

    A URL the policy refuses raises InvalidWebhook, which ends the delivery (no retry can fix it)."""
    session, policy = app[WEBHOOK_CLIENT]
    guard.check_literal(guard.parse_url(url, policy), policy)
    timeout = aiohttp.ClientTimeout(total=webhooks.WEBHOOK_TIMEOUT_S)
    # pieces with their Content-Length told: sent as they are read, not chunked
    async with session.post(url, data=body(), headers=headers, allow_redirects=False, timeout=timeout) as response:
        return response.status
