"""Webhooks that arrive: a receiver that fails twice and then accepts gets the finished job,
every try with the same delivery id and a valid signature, and the job shows it delivered."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from orchestrator.api.app import create_app
from orchestrator.common.net import serving
from orchestrator.jobs.webhooks import DELIVERY_HEADER, SIGNATURE_HEADER, sign

from .test_job_fleet import finished, submit, until
from .test_jobs import hooked

pytestmark = pytest.mark.integration
SECRET = "webhook-secret-93e"
FAILURES = 2


async def test_a_webhook_is_retried_until_the_receiver_takes_it_with_one_delivery_id(
    triton_grpc_url: str, redis_url: str, media_url: str
) -> None:
    tries: list[tuple[bytes, dict[str, str]]] = []
    accepted = asyncio.Event()

    async def flaky(request: web.Request) -> web.Response:
        tries.append((await request.read(), dict(request.headers)))
        if len(tries) <= FAILURES:
            return web.Response(status=503, text="not now")
        accepted.set()
        return web.Response(text="ok")

    receiver = web.Application()
    receiver.router.add_post("/hook", flaky)
    settings = hooked(triton_grpc_url, redis_url, SECRET)
    async with (
        serving(receiver) as hook_base,
        serving(create_app(settings)) as api,
        aiohttp.ClientSession() as session,
    ):
        body = {"media_url": f"{media_url}/speech/jfk.flac", "webhook_url": f"{hook_base}/hook"}
        job_id = await submit(session, api, body)
        await asyncio.wait_for(accepted.wait(), 120)
        done = await until(session, api, job_id, lambda j: j.get("webhook", {}).get("state") == "delivered", 30)
    assert finished(done) and done["status"] == "succeeded"
    assert len(tries) == FAILURES + 1 and done["webhook"]["attempts"] == FAILURES + 1
    assert len({headers[DELIVERY_HEADER] for _, headers in tries}) == 1, "one delivery id on every try"
    assert done["webhook"]["id"] == tries[0][1][DELIVERY_HEADER]
    for payload, headers in tries:
        assert headers[SIGNATURE_HEADER] == sign(payload, SECRET)
        sent = json.loads(payload)
        assert sent["id"] == job_id and sent["status"] == "succeeded" and sent["result"]["text"]
