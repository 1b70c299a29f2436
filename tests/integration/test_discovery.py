"""Replicas found by DNS: the orchestrator follows a headless Service's answer as it changes.

The DNS is played by an injected resolver (the name's answer is whatever the
test says now); the replicas are real Triton processes.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from orchestrator.api.app import POOL, create_app
from orchestrator.common.net import serving
from orchestrator.infer.triton_server import FREE_PORTS, running_triton
from orchestrator.settings import Settings

from ..corpus import Recording, wer
from ..media_servers import LOOPBACK
from ..polling import wait_until

pytestmark = pytest.mark.integration
NAME = "triton.longscribe.svc.cluster.local:8001"
REFRESH_S = 0.2


async def transcribe(service: str, url: str) -> dict[str, Any]:
    body = {"media_url": url, "params": {"macro_chunk_size_sec": 60}}
    async with aiohttp.ClientSession() as session, session.post(f"{service}/v1/transcribe", json=body) as response:
        out = await response.json()
        assert response.status == 200, out
        return dict(out)


async def test_endpoints_follow_the_dns_answer_added_dropped_and_added_again(
    triton_grpc_url: str, media_url: str, lj_recording: Recording
) -> None:
    answer: list[str] = [triton_grpc_url]
    asked = 0  # times the orchestrator has looked the name up

    async def resolve(name: str) -> list[str]:
        nonlocal asked
        assert name == NAME
        asked += 1
        return list(answer)

    async def followed(what: str) -> None:
        """Wait until the pool holds the answer; the refresh loop is sequential, so two more lookups
        mean one whole refresh (lookup and apply) ran after the answer changed."""
        since = asked
        await wait_until(lambda: asked >= since + 2, 10, f"two lookups after {what}")
        await wait_until(lambda: pool.urls == (answer or pool.urls), 10, f"the pool to follow {what}")

    settings = Settings(
        triton_discovery_dns=NAME, triton_discovery_interval_sec=REFRESH_S, allowed_media_hosts=LOOPBACK
    )
    async with running_triton(Settings(**FREE_PORTS)) as second:
        app = create_app(settings, resolve=resolve)
        async with serving(app) as service:
            pool = app[POOL]
            assert pool.urls == [triton_grpc_url]

            answer[:] = sorted([triton_grpc_url, second])  # a pod became ready
            await followed("a pod became ready")
            assert pool.urls == answer
            used: set[str] = set()
            calls = [e.client.infer for e in pool.endpoints]
            for endpoint, call in zip(pool.endpoints, calls):

                async def counted(*args: Any, _url: str = endpoint.url, _call: Any = call, **kw: Any) -> Any:
                    used.add(_url)
                    return await _call(*args, **kw)

                endpoint.client.infer = counted  # type: ignore[method-assign]
            out = await transcribe(service, f"{media_url}/lj001.wav")
            assert wer(lj_recording.reference, out["text"]) <= 0.08
            assert used == set(answer), "chunks should spread over both replicas"

            answer[:] = [second]  # the first pod left the Service
            await followed("a pod left")
            assert pool.urls == [second]
            assert (await transcribe(service, f"{media_url}/speech/jfk.flac"))["text"]

            answer[:] = []  # DNS answers nothing for a moment: the last list stays
            await followed("an empty answer")
            assert pool.urls == [second]

            answer[:] = sorted([triton_grpc_url, second])  # back again
            await followed("the pod came back")
            assert pool.urls == answer
            async with aiohttp.ClientSession() as session, session.get(f"{service}/readyz") as response:
                assert response.status == 200
                assert set((await response.json())["endpoints"]) == set(answer)
