"""Headless-Service DNS -> Triton endpoints: the pure part and the system resolver."""

from __future__ import annotations

import pytest

from orchestrator.infer import discovery


def test_every_address_becomes_an_endpoint_on_the_services_port() -> None:
    found = discovery.endpoints(["10.1.0.7", "10.1.0.5", "10.1.0.7", "fd00::3"], 8001)
    assert found == ["10.1.0.5:8001", "10.1.0.7:8001", "[fd00::3]:8001"]


@pytest.mark.parametrize("name", ["triton", "triton:", ":8001", "triton:grpc"])
def test_a_name_without_a_port_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        discovery.split_name(name)


async def test_the_system_resolver_answers_for_localhost() -> None:
    found = await discovery.resolve_dns("localhost:8001")
    assert "127.0.0.1:8001" in found
