"""What the app holds for its handlers, by typed key."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from orchestrator.api.admission import Admission
from orchestrator.api.auth import Caller, Keyring
from orchestrator.api.tenancy import StreamLimit
from orchestrator.common.observability import Metrics
from orchestrator.infer import discovery
from orchestrator.infer.pool import TritonPool
from orchestrator.jobs.event_hub import EventHub
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.webhooks import Webhooks
from orchestrator.jobs.worker import Worker
from orchestrator.media import guard
from orchestrator.pipeline import Transcriber
from orchestrator.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
TRANSCRIBER: web.AppKey[Transcriber] = web.AppKey("transcriber")
POOL = web.AppKey("pool", TritonPool)
ADMISSION = web.AppKey("admission", Admission)
RESOLVE: web.AppKey[discovery.Resolve] = web.AppKey("resolve")
HOST_RESOLVER: web.AppKey[guard.ResolverFactory] = web.AppKey("host_resolver")  # DNS for media and webhook hosts
METRICS = web.AppKey("metrics", Metrics)
JOBS = web.AppKey("jobs", JobStore)  # absent when the service runs without Redis
WORKER = web.AppKey("worker", Worker)
UPLOAD_SWEEP: web.AppKey[asyncio.Task[None]] = web.AppKey("upload_sweep")  # uploads nobody will delete any more
EVENT_HUB = web.AppKey("event_hub", EventHub)  # the process's one reader of job event streams
WEBHOOKS = web.AppKey("webhooks", Webhooks)
MEDIA_CLIENT: web.AppKey[tuple[aiohttp.ClientSession, guard.AddressPolicy]] = web.AppKey("media_client")
# webhooks: a client of their own, under allowed_webhook_hosts (absent without Redis: no jobs, no webhooks)
WEBHOOK_CLIENT: web.AppKey[tuple[aiohttp.ClientSession, guard.AddressPolicy]] = web.AppKey("webhook_client")
KEYS = web.AppKey("api_keys", Keyring)
STREAMS = web.AppKey("event_streams", StreamLimit)  # event streams open per key, on this process
CALLER = web.RequestKey("caller", Caller)  # who sent the request: set by the auth middleware
