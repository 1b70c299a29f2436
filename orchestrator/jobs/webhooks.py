"""Webhooks that arrive: the finished job, signed, retried with backoff, recorded in Redis.

A finished job with a `webhook_url` gets a delivery id, and its id is in the
`webhooks` set until the receiver answers 2xx or `webhook_retry_sec` has
passed since the first attempt. Every try sends the same id in
`X-Longscribe-Delivery` (receivers drop duplicates) and the body signed with
HMAC-SHA256 (`X-Longscribe-Signature: sha256=<hex>`, key
LONGSCRIBE_WEBHOOK_SECRET). One orchestrator at a time delivers a given
webhook (a short lease); after a restart, any orchestrator picks up what is
still pending. The state shows in the job's JSON as `webhook`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from redis.exceptions import RedisError, WatchError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from orchestrator.common.tasks import cancel_all
from orchestrator.errors import JobConflict, JobNotFound, LongscribeError
from orchestrator.jobs import transitions
from orchestrator.jobs.records import FINISHED, WEBHOOKS, JobSpec, job_key, loads, text_hash, webhook_lease_key
from orchestrator.jobs.store import JobStore
from orchestrator.jobs.stored import stored, with_result, with_result_size

log = logging.getLogger("longscribe.webhooks")

SIGNATURE_HEADER = "X-Longscribe-Signature"
DELIVERY_HEADER = "X-Longscribe-Delivery"
WEBHOOK_TIMEOUT_S = 10.0  # one attempt
FIRST_WAIT_S = 0.5  # doubled after each failed attempt, up to MAX_WAIT_S
MAX_WAIT_S = 60.0
SWEEP_S = 5.0  # how often webhooks left pending (by a restart) are looked for
Body = Callable[[], AsyncIterator[bytes]]  # the body anew for each attempt, in pieces
PostWebhook = Callable[[str, Body, dict[str, str]], Awaitable[int]]  # -> the receiver's HTTP status


class WebhookRejected(Exception):
    """The receiver answered, but not with 2xx: try again later."""


def _restarted(job_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """The webhook state a resend starts from: a pending one as it is, any other reset to pending
    (marked `redelivered`, for the caller to write), keeping its delivery id and attempt count."""
    if not fields:
        raise JobNotFound(f"no job {job_id!r}")
    if not JobSpec.model_validate_json(fields["spec"]).webhook_url:
        raise JobConflict("the job has no webhook_url: there is no webhook to send")
    if fields["status"] not in FINISHED:
        raise JobConflict(f"the job is {fields['status']}: its webhook is sent once it has finished")
    state: dict[str, Any] = loads(fields.get("webhook")) or {"id": f"{job_id}.1", "attempts": 0}
    if state.get("state") == "pending":
        return state
    return {
        "id": state["id"],
        "state": "pending",
        "attempts": state.get("attempts", 0),
        "redeliveries": state.get("redeliveries", 0) + 1,
        "redelivered": True,
    }


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def sign_pieces(body: Body, secret: str) -> str:
    """`sign` over a body read in pieces (a finished job's transcript, from Redis)."""
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    async for piece in body():
        mac.update(piece)
    return "sha256=" + mac.hexdigest()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


@dataclass
class Webhooks:
    store: JobStore
    post: PostWebhook
    secret: str
    retry_s: float
    lease_s: float
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sweeper = asyncio.create_task(self._sweep())

    def deliver_soon(self, job_id: str) -> None:
        if job_id not in self.tasks:
            task = self.tasks[job_id] = asyncio.create_task(self._deliver(job_id))
            task.add_done_callback(lambda _: self.tasks.pop(job_id, None))

    async def redeliver(self, job_id: str) -> dict[str, Any]:
        """Send a finished job's webhook again: a new round of attempts (a new `webhook_retry_sec`),
        the same delivery id, so a receiver that already has it can drop the repeat. Returns the state.

        A delivery still under way is left to go on. JobConflict when the job has no webhook_url or
        has not finished; JobNotFound when it is gone."""
        key = job_key(job_id)
        async with self.store.client.pipeline(transaction=True) as tx:
            while True:
                try:
                    await tx.watch(key)  # against a delivery recording its end at the same time
                    fields = text_hash(await tx.hgetall(key))
                    state = _restarted(job_id, fields)
                    if state.get("state") == "pending" and not state.get("redelivered"):
                        break  # under way (or about to be): nothing to restart
                    state.pop("redelivered")
                    tx.multi()  # type: ignore[no-untyped-call]
                    tx.hset(key, "webhook", json.dumps(state))
                    tx.sadd(WEBHOOKS, job_id)
                    await tx.execute()
                    break
                except WatchError:
                    continue
        self.deliver_soon(job_id)
        return state

    async def close(self) -> None:
        """Stop delivering here; what is pending stays recorded, for the next orchestrator to finish."""
        await cancel_all([*self.tasks.values(), *([self.sweeper] if self.sweeper else [])])

    async def _sweep(self) -> None:
        while True:
            try:
                for job_id in await self.store.client.smembers(WEBHOOKS):
                    self.deliver_soon(str(job_id))
            except (RedisError, OSError) as exc:
                log.warning("looking for pending webhooks failed: %s", exc)
            await asyncio.sleep(SWEEP_S)

    async def _deliver(self, job_id: str) -> None:
        client = self.store.client
        lease = webhook_lease_key(job_id)
        if not await client.set(lease, "1", nx=True, px=int(self.lease_s * 1000)):
            return  # another orchestrator delivers it
        try:
            try:
                fields = await self.store.fields(job_id)
            except JobNotFound:
                await client.srem(WEBHOOKS, job_id)
                return
            state: dict[str, Any] = json.loads(fields["webhook"])
            url = JobSpec.model_validate_json(fields["spec"]).webhook_url
            if state["state"] != "pending" or not url:
                await client.srem(WEBHOOKS, job_id)
                return
            state.setdefault("first_attempt_at", time.time())
            head = await self.store.to_json(job_id)
            head.pop("webhook", None)  # its own state is no part of what it delivers
            body, size = await self._body(job_id, head)
            headers = {"Content-Type": "application/json", "Content-Length": str(size), DELIVERY_HEADER: state["id"]}
            if self.secret:
                headers[SIGNATURE_HEADER] = await sign_pieces(body, self.secret)
            left_s = max(0.0, self.retry_s - (time.time() - state["first_attempt_at"]))
            await self._attempts(job_id, url, body, headers, state, left_s)
        finally:
            await client.delete(lease)

    async def _body(self, job_id: str, head: dict[str, Any]) -> tuple[Body, int]:
        """The job as GET /v1/jobs/{id} shows it; a finished transcript streams from Redis at each read, as
        there (hours of transcript are megabytes, never whole in this process)."""
        found = await stored(self.store.client, job_id) if head.get("status") == "succeeded" else None
        if found is None:
            data = json.dumps(head).encode()
            return lambda: _once(data), len(data)
        return lambda: with_result(head, found), with_result_size(head, found)

    async def _attempts(
        self, job_id: str, url: str, body: Body, headers: dict[str, str], state: dict[str, Any], left_s: float
    ) -> None:
        client = self.store.client
        retrying = AsyncRetrying(
            stop=stop_after_delay(left_s),
            wait=wait_exponential(multiplier=FIRST_WAIT_S, max=min(MAX_WAIT_S, self.lease_s / 2)),
            retry=retry_if_exception_type((WebhookRejected, aiohttp.ClientError, TimeoutError)),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await client.set(webhook_lease_key(job_id), "1", xx=True, px=int(self.lease_s * 1000))
                    state["attempts"] += 1
                    await self._record(job_id, state)
                    status = await self.post(url, body, headers)
                    state["last_status"] = status
                    if status >= 300:
                        raise WebhookRejected(f"the receiver answered {status}")
            state["state"], state["delivered_at"] = "delivered", time.time()
        except (WebhookRejected, aiohttp.ClientError, TimeoutError, LongscribeError) as exc:
            log.warning("webhook for job %s given up after %d attempts: %s", job_id, state["attempts"], exc)
            state["state"], state["last_error"] = "failed", str(exc) or type(exc).__name__
        await self._record(job_id, state, done=True)

    async def _record(self, job_id: str, state: dict[str, Any], done: bool = False) -> None:
        # only while the job is in Redis: a job lost meanwhile is not recreated as a partial record
        with contextlib.suppress(RedisError):
            await transitions.record_webhook(self.store.scripts, job_id, json.dumps(state), done)
