"""Property-based fuzz of the REST API from the OpenAPI document it serves: no 5xx, no hang.

The service runs the real pipeline (media checks, FFmpeg) with no Triton
behind it, so anything that got past the edge would show as a 5xx.
Media URLs may not reach loopback or private addresses here: the fuzz cannot
hit the machine's own services. Their hosts are resolved by `PublicDns`, not
the network: the fuzz names hosts at random, and real DNS would look each up
(tests/unit/test_host_resolver.py holds the twin: without one injected, the
system's resolver is used).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import pytest
import schemathesis
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from orchestrator.api.app import create_app
from orchestrator.common.net import free_port, serving
from orchestrator.jobs.redis_server import running_redis
from orchestrator.settings import Settings

MAX_WAIT_S = 15.0  # the media timeout below, twice over: nothing may take longer
READYZ_STATUSES = {200, 503}  # orchestrator/api/readiness.py: ready, or not (its OpenAPI `probe` responses)
# global unicast to the address guard (a retired 6to4 relay range, RFC 7526): every name the fuzz makes up
# leads here, so a media fetch that passes the guard connects to this one known address, never to a host
# the fuzz picked at random (where nothing answers, the 3 s media timeout ends it: a 422)
PUBLIC_ADDRESS = "192.88.99.1"
asked: list[str] = []  # every host name the service resolved, across the module


class PublicDns(AbstractResolver):
    """Answers a public address for any name but localhost (loopback, which the guard must refuse); no network."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        asked.append(host)
        address = "127.0.0.1" if host.lower().rstrip(".").endswith("localhost") else PUBLIC_ADDRESS
        return [
            ResolveResult(
                hostname=host, host=address, port=port, family=socket.AF_INET, proto=0, flags=socket.AI_NUMERICHOST
            )
        ]

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def live_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service on its own loop in a thread: schemathesis calls it synchronously."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    base: list[str] = []

    async def run() -> None:
        async with running_redis(Settings(redis_dir=tmp_path_factory.mktemp("fuzz-redis"))) as redis_url:
            config = Settings(triton_grpc_urls=[f"127.0.0.1:{free_port()}"], media_timeout_sec=3.0, redis_url=redis_url)
            async with serving(create_app(config, host_resolver=PublicDns)) as url:
                base.append(url)
                started.set()
                await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(30)
    yield base[0]
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


@pytest.mark.parametrize(
    ("path", "method", "mode"),
    [
        ("/v1/transcribe", "POST", GenerationMode.POSITIVE),
        ("/v1/transcribe", "POST", GenerationMode.NEGATIVE),  # bodies that break the schema
        ("/v1/audio/transcriptions", "POST", GenerationMode.POSITIVE),  # stream=true among them: a job each
        ("/v1/audio/translations", "POST", GenerationMode.POSITIVE),
        ("/v1/models/{model}", "GET", GenerationMode.POSITIVE),
        ("/v1/jobs", "POST", GenerationMode.POSITIVE),
        ("/v1/jobs", "POST", GenerationMode.NEGATIVE),
        ("/v1/jobs/{job_id}", "GET", GenerationMode.POSITIVE),
        ("/v1/jobs/{job_id}/transcript", "GET", GenerationMode.POSITIVE),
        ("/healthz", "GET", GenerationMode.POSITIVE),
        ("/readyz", "GET", GenerationMode.POSITIVE),
    ],
)
def test_no_request_makes_the_service_fail_or_hang(
    live_service: str, path: str, method: str, mode: GenerationMode
) -> None:
    api = schemathesis.openapi.from_url(f"{live_service}/openapi.json")
    operation = api[path][method]
    seen: dict[int, int] = {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def call(case: schemathesis.Case) -> None:
        response = case.call(base_url=live_service, timeout=MAX_WAIT_S)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        if path == "/readyz":  # no Triton behind it: "not ready", never an error
            assert response.status_code in READYZ_STATUSES and response.status_code == 503, response.text
            assert response.json()["ready"] is False
        else:
            assert response.status_code < 500, response.text
        if response.status_code >= 400 and path.startswith("/v1/"):
            error = response.json()["error"]
            assert error["code"] and error["message"] and error["hint"]

    call()
    print(f"{method} {path} {mode.value}: statuses {dict(sorted(seen.items()))}")


@pytest.mark.parametrize(("host", "refused"), [("media.example", False), ("localhost", True)])
def test_media_hosts_are_resolved_by_the_injected_dns_and_judged_by_the_guard(
    live_service: str, host: str, refused: bool
) -> None:
    """What makes the fuzz hermetic: its names reach PublicDns, and the guard still judges the answers."""
    import httpx

    response = httpx.post(
        f"{live_service}/v1/transcribe", json={"media_url": f"http://{host}/a.wav"}, timeout=MAX_WAIT_S
    )
    assert host in asked
    assert 400 <= response.status_code < 500, response.text
    assert (response.json()["error"]["code"] == "media_url_forbidden") is refused, response.text
