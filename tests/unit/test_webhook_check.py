"""A webhook_url is parsed and checked by the address guard at submit (422), with its own allow-list.

Real server, real redis-server, API keys on. The refusals name the host as
given, never an address it resolves to.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from orchestrator.api import auth
from orchestrator.api.app import create_app
from orchestrator.api.keys import JOBS
from orchestrator.common.net import serving
from orchestrator.errors import MediaForbidden
from orchestrator.jobs.records import JobSpec
from orchestrator.media import guard
from orchestrator.schemas import TranscribeRequest
from orchestrator.settings import Settings
from tests.media_servers import LOOPBACK

from .test_bounded_input import AUTH, KEY, instant
from .test_request_validation import SEED_BODY

RESOLVED = ("127.0.0.1", "::1")  # what localhost resolves to: never in a refusal


async def submit(settings: Settings, webhook_url: str) -> tuple[int, Any]:
    async with serving(create_app(settings, transcriber=instant)) as base, aiohttp.ClientSession() as session:
        async with session.post(f"{base}/v1/jobs", json={**SEED_BODY, "webhook_url": webhook_url}, headers=AUTH) as r:
            return r.status, await r.json()


def production(redis_url: str, **more: Any) -> Settings:
    """The defaults users run (nothing private allowed), with keys on and no worker."""
    return Settings(api_keys=[KEY], redis_url=redis_url, job_workers=0, **more)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http://user:secret@example.com/hook",
        "http:///hook",
        "not a url",
        "https://example.com/" + "a" * 3000,
        "http://example.com:99999/hook",
    ],
)
async def test_a_malformed_webhook_url_is_a_422_at_submit(url: str, redis_url: str) -> None:
    status, body = await submit(production(redis_url), url)
    assert status == 422, body
    assert body["error"]["code"] == "invalid_webhook" and body["error"]["hint"]
    assert "webhook_url" in body["error"]["message"]
    assert "secret" not in body["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]:9/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ],
)
async def test_a_webhook_at_a_private_address_is_refused_at_submit_by_default(url: str, redis_url: str) -> None:
    status, body = await submit(production(redis_url), url)
    assert status == 422, body
    assert body["error"]["code"] == "invalid_webhook"
    assert "LONGSCRIBE_ALLOWED_WEBHOOK_HOSTS" in body["error"]["hint"]


async def test_the_refusal_names_the_host_never_the_address_it_resolves_to(redis_url: str) -> None:
    status, body = await submit(production(redis_url), "http://localhost:9/hook")
    assert status == 422 and "localhost" in body["error"]["message"]
    assert not any(address in body["error"]["message"] for address in RESOLVED), body


async def test_media_hosts_do_not_allow_webhooks(redis_url: str) -> None:
    status, body = await submit(production(redis_url, allowed_media_hosts=LOOPBACK), "http://127.0.0.1:9/hook")
    assert status == 422 and body["error"]["code"] == "invalid_webhook"


async def test_the_media_guard_names_no_resolved_address_either() -> None:
    resolver = guard.GuardedResolver(guard.media_policy([]))
    try:
        with pytest.raises(MediaForbidden) as refused:
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()
    assert "localhost" in refused.value.message
    assert not any(address in refused.value.message for address in RESOLVED)


async def test_a_webhook_allowed_by_its_own_list_is_accepted_and_delivered(redis_url: str) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        await received.put(await request.read())
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    settings = Settings(api_keys=[KEY], redis_url=redis_url, job_workers=1, allowed_webhook_hosts=LOOPBACK)
    async with (
        serving(receiver) as hook_base,
        serving(create_app(settings, transcriber=instant)) as base,
        aiohttp.ClientSession() as session,
    ):
        for hook_url in (f"{hook_base}/hook", f"{hook_base.replace('127.0.0.1', 'localhost')}/hook"):
            body = {**SEED_BODY, "webhook_url": hook_url}
            async with session.post(f"{base}/v1/jobs", json=body, headers=AUTH) as response:
                assert response.status == 202, await response.text()
                job_id = (await response.json())["id"]
            assert job_id.encode() in await asyncio.wait_for(received.get(), 30)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                async with session.get(f"{base}/v1/jobs/{job_id}", headers=AUTH) as response:
                    job = await response.json()
                if job.get("webhook", {}).get("state") == "delivered":
                    break
                await asyncio.sleep(0.05)
            assert job["webhook"]["state"] == "delivered", job


async def test_a_stored_webhook_the_guard_refuses_is_given_up_at_once_not_retried(redis_url: str) -> None:
    """A job accepted before the submit check (or by another version) with a malformed webhook_url."""
    app = create_app(Settings(api_keys=[KEY], redis_url=redis_url, job_workers=1), transcriber=instant)
    async with serving(app) as base, aiohttp.ClientSession() as session:
        owner = auth.key_id(hashlib.sha256(KEY.encode()).digest())  # the key's job, which it may then read
        request = TranscribeRequest(media_url="https://example.com/a.mp3")
        spec = JobSpec(request=request, webhook_url="http://[::1", owner=owner)
        job_id = await app[JOBS].submit(spec)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with session.get(f"{base}/v1/jobs/{job_id}", headers=AUTH) as response:
                job = await response.json()
            if job.get("webhook", {}).get("state") in ("delivered", "failed"):
                break
            await asyncio.sleep(0.05)
    assert job["webhook"]["state"] == "failed" and job["webhook"]["attempts"] == 1, job
    assert "webhook_url" in job["webhook"]["last_error"]


# IPv6 addresses that carry a private IPv4 inside them: each reaches that IPv4 through a translator or tunnel
EMBEDDED_PRIVATE = [
    "64:ff9b::7f00:1",  # NAT64 (well-known prefix) to 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 to 169.254.169.254, cloud metadata
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64: where the IPv4 sits depends on the prefix length, so refused
    "2002:7f00:1::",  # 6to4 through 127.0.0.1
    "2002:a00:1::1",  # 6to4 through 10.0.0.1
    "::ffff:0:7f00:1",  # SIIT IPv4-translated
    "::7f00:1",  # IPv4-compatible
    "::ffff:7f00:1",  # IPv4-mapped
    "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.64.0.1 (obfuscated, ~)
    "2001:0:a00:1:8000:63bf:3fff:fdd2",  # Teredo, server 10.0.0.1
]
EMBEDDED_PUBLIC = ["64:ff9b::808:808", "2002:808:808::1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("policy", [guard.media_policy([]), guard.webhook_policy([])], ids=["media", "webhook"])
@pytest.mark.parametrize("address", EMBEDDED_PRIVATE)
async def test_an_ipv6_address_carrying_a_private_ipv4_is_refused(policy: guard.AddressPolicy, address: str) -> None:
    with pytest.raises(policy.error):
        guard.check_literal(guard.parse_url(f"http://[{address}]/a", policy), policy)
    with pytest.raises(policy.error):  # the same, as an address a host name resolves to
        await guard.GuardedResolver(policy, Answers(address)).resolve("media.example")


@pytest.mark.parametrize("policy", [guard.media_policy([]), guard.webhook_policy([])], ids=["media", "webhook"])
@pytest.mark.parametrize("address", EMBEDDED_PUBLIC)
def test_an_ipv6_address_carrying_a_public_ipv4_is_allowed(policy: guard.AddressPolicy, address: str) -> None:
    guard.check_literal(guard.parse_url(f"http://[{address}]/a", policy), policy)


def test_an_allow_list_still_allows_what_it_names_in_either_form() -> None:
    policy = guard.media_policy(["127.0.0.0/8", "64:ff9b:1::/48"])
    for address in ("::ffff:127.0.0.1", "64:ff9b::7f00:1", "64:ff9b:1::a9fe:a9fe"):
        assert policy.allows(address, address), address
    assert not policy.allows("64:ff9b::a00:1", "64:ff9b::a00:1"), "10.0.0.1 is not on the list"


class Answers(AbstractResolver):
    """A stand-in DNS that answers every name with one address (a real resolver cannot be made to)."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            {"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET6, "proto": 0, "flags": 0}
        ]

    async def close(self) -> None:
        return None
