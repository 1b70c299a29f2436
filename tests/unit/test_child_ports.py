"""A child service started on a free port still comes up when another process takes that port first:
free_port() releases the port it found, and anything on the machine may bind it before the child does."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from orchestrator.common import net
from orchestrator.jobs import redis_server
from orchestrator.settings import Settings


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
def occupied() -> Iterator[int]:
    """A port another process would hold: bound and listening, answering nothing."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def first_pick(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """free_port() in redis_server hands out `port` first, as if it were free when asked (the race,
    caused on purpose: the only seam is the picker), then real free ports."""
    picks: list[Callable[[], int]] = [lambda: port]

    def pick() -> int:
        return picks.pop(0)() if picks else net.free_port()

    monkeypatch.setattr(redis_server, "free_port", pick)


async def answers(url: str) -> bool:
    client = redis.Redis.from_url(url)
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()


async def test_redis_comes_up_on_another_port_when_its_picked_one_is_taken(
    tmp_path: Path, occupied: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    first_pick(monkeypatch, occupied)
    async with redis_server.running_redis(Settings(redis_dir=tmp_path)) as url:
        assert port_of(url) != occupied
        assert await answers(url)


async def test_another_redis_on_the_picked_port_is_never_taken_for_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with redis_server.running_redis(Settings(redis_dir=tmp_path / "theirs")) as theirs:
        first_pick(monkeypatch, port_of(theirs))  # it answers PING there, but it is not ours
        async with redis_server.running_redis(Settings(redis_dir=tmp_path / "ours")) as ours:
            assert port_of(ours) != port_of(theirs)
            client = redis.Redis.from_url(ours)
            try:
                assert (await client.info("server"))["config_file"] == "" and await client.set("mine", 1)
                assert str(tmp_path / "ours") == (await client.config_get("dir"))["dir"]
            finally:
                await client.aclose()


async def test_redis_gives_up_after_bind_attempts_all_lost(
    tmp_path: Path, occupied: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_server, "free_port", lambda: occupied)
    with pytest.raises(redis_server.RedisStartError, match=f"each of {net.BIND_ATTEMPTS} free ports"):
        async with redis_server.running_redis(Settings(redis_dir=tmp_path)):
            pass


def test_a_listening_socket_is_seen_as_its_process_port(occupied: int) -> None:
    import os

    assert occupied in net.listening_ports(os.getpid())
    assert net.port_taken("127.0.0.1", occupied)
    assert not net.port_taken("127.0.0.1", net.free_port())
