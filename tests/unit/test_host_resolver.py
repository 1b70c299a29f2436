"""Media and webhook hosts are resolved by the system's DNS unless a test injects its own (`create_app`'s
`host_resolver`), and the address guard judges the answers either way.

The API fuzz (tests/integration/test_api_fuzz.py) injects one so that its random host names never reach
real DNS; these are its twins: nothing injected is the production default, the system's resolver.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from orchestrator.api.app import create_app
from orchestrator.api.keys import HOST_RESOLVER, MEDIA_CLIENT, WEBHOOK_CLIENT
from orchestrator.common.net import serving
from orchestrator.errors import InvalidWebhook
from orchestrator.media import guard

from .test_bounded_input import AUTH, instant
from .test_request_validation import SEED_BODY
from .test_webhook_check import production


class Answers(AbstractResolver):
    """A DNS that answers one address (public unless told) for every name, and notes the names."""

    def __init__(self, address: str = "192.88.99.1") -> None:
        self.asked: list[str] = []
        self.address = address

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [ResolveResult(hostname=host, host=self.address, port=port, family=socket.AF_INET, proto=0, flags=0)]

    async def close(self) -> None:
        return None


def dns_of(app: web.Application, client: Any) -> AbstractResolver:
    """The DNS inside the guard of one of the app's clients (aiohttp keeps the connector's resolver private)."""
    session, _ = app[client]
    resolver = session.connector._resolver  # type: ignore[union-attr]
    assert isinstance(resolver, guard.GuardedResolver)
    return resolver.inner


async def test_without_an_injected_dns_the_system_resolver_serves_media_webhooks_and_submit(redis_url: str) -> None:
    assert guard.SYSTEM_RESOLVER is DefaultResolver
    assert inspect.signature(create_app).parameters["host_resolver"].default is guard.SYSTEM_RESOLVER
    assert inspect.signature(guard.check_url).parameters["dns"].default is guard.SYSTEM_RESOLVER
    assert inspect.signature(guard.session).parameters["dns"].default is guard.SYSTEM_RESOLVER
    app = create_app(production(redis_url), transcriber=instant)
    async with serving(app):
        assert app[HOST_RESOLVER] is guard.SYSTEM_RESOLVER
        assert type(dns_of(app, MEDIA_CLIENT)) is DefaultResolver
        assert type(dns_of(app, WEBHOOK_CLIENT)) is DefaultResolver


async def test_an_injected_dns_is_asked_for_every_host_and_the_guard_still_judges(redis_url: str) -> None:
    made: list[Answers] = []

    def answers() -> Answers:
        made.append(Answers())
        return made[-1]

    app = create_app(production(redis_url), transcriber=instant, host_resolver=answers)
    async with serving(app) as base, aiohttp.ClientSession() as session:
        await asyncio.sleep(0.5)  # see test_bounded_input.service: the sweeper's first connect
        assert dns_of(app, MEDIA_CLIENT) in made and dns_of(app, WEBHOOK_CLIENT) in made
        body = {**SEED_BODY, "webhook_url": "http://hooks.example/done"}
        async with session.post(f"{base}/v1/jobs", json=body, headers=AUTH) as response:
            assert response.status == 202, await response.text()
    assert any("hooks.example" in dns.asked for dns in made)  # submit's check asked the injected DNS, no network
    assert (await guard.check_url("http://hooks.example/done", guard.webhook_policy([]), Answers)).host
    with pytest.raises(InvalidWebhook):  # an injected answer is judged like the system's
        await guard.check_url("http://hooks.example/done", guard.webhook_policy([]), lambda: Answers("10.0.0.8"))
