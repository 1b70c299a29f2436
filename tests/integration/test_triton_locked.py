"""The Triton that `longscribe serve` starts, as a stranger on the network or the host would find it.

Its sockets are read from the process itself (/proc/<pid>/fd and /proc/<pid>/net/tcp{,6}): every one
it listens on is bound to loopback. Its model-repository API (load, unload, index) and shared-memory
API refuse callers without its per-start secret, over HTTP and gRPC, while everything the orchestrator
uses (inference, model readiness, model config, statistics) and the metrics port keep answering.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.utils import InferenceServerException

from orchestrator.infer.pool import TritonPool
from orchestrator.infer.triton_server import ADMIN_HEADER
from orchestrator.settings import Settings

from ..corpus import manifest, speech_dir, wer
from ..wer_bounds import JFK_MAX_WER

pytestmark = pytest.mark.integration
LISTEN = "0A"  # the TCP state /proc/net/tcp gives a listening socket

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def children_named(name: str) -> list[int]:
    """Processes this test process started whose command is `name` (not another session's servers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        comm, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if comm == name and int(rest[1]) == os.getpid():
            pids.append(int(stat.parent.name))
    return pids


def command_option(pid: int, flag: str) -> str:
    """The value of `flag` on the process's command line, as `--flag value` or `--flag=value`."""
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    for i, arg in enumerate(args):
        if arg == flag:
            return args[i + 1]
        if arg.startswith(f"{flag}="):
            return arg.split("=", 1)[1]
    raise LookupError(f"{flag} is not on process {pid}'s command line")


def proc_address(hex_address: str) -> Address:
    """/proc/net/tcp{,6}'s address: 32-bit words in the host's (little-endian) order.

    gRPC binds 127.0.0.1 as an IPv6 socket (::ffff:127.0.0.1): that is the IPv4 address it maps."""
    raw = bytes.fromhex(hex_address)
    address = ipaddress.ip_address(b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4)))
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped or address


def listening_sockets(pid: int) -> set[tuple[Address, int]]:
    """(address, port) of every TCP socket the process holds in the listening state."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with_target = os.readlink(fd) if fd.is_symlink() else ""
        if with_target.startswith("socket:["):
            inodes.add(with_target[len("socket:[") : -1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == LISTEN and inode in inodes:
                address, port = local.split(":")
                found.add((proc_address(address), int(port, 16)))
    return found


@pytest.fixture
def triton_pid(triton_grpc_url: str) -> int:
    """The tritonserver this session's `triton_grpc_url` runs on (found by its gRPC port)."""
    port = triton_grpc_url.rsplit(":", 1)[1]
    pids = [pid for pid in children_named("tritonserver") if command_option(pid, "--grpc-port") == port]
    assert len(pids) == 1, pids
    return pids[0]


def ports_of(pid: int) -> dict[str, int]:
    return {kind: int(command_option(pid, f"--{kind}-port")) for kind in ("http", "grpc", "metrics")}


async def test_every_socket_the_managed_triton_listens_on_is_bound_to_loopback(triton_pid: int) -> None:
    sockets = listening_sockets(triton_pid)
    assert set(ports_of(triton_pid).values()) <= {port for _, port in sockets}, sockets
    exposed = {(str(address), port) for address, port in sockets if not address.is_loopback}
    assert not exposed, f"tritonserver listens beyond loopback: {exposed}"
    assert Settings().triton_bind_address == ipaddress.ip_address("127.0.0.1")  # the default this test ran


async def test_without_the_secret_nobody_can_unload_load_or_list_models_or_register_shared_memory(
    triton_grpc_url: str, triton_pid: int
) -> None:
    http = f"http://127.0.0.1:{ports_of(triton_pid)['http']}/v2"
    async with aiohttp.ClientSession() as session:
        for path in (
            "repository/models/whisper/unload",
            "repository/models/whisper/load",
            "repository/index",
            "systemsharedmemory/region/mine/register",
        ):
            async with session.post(f"{http}/{path}", json={}, headers={ADMIN_HEADER: "a guess"}) as response:
                assert response.status == 403, (path, await response.text())
                assert "restricted" in await response.text()

    client = grpcclient.InferenceServerClient(triton_grpc_url)
    try:
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: client.unload_model("whisper"),
            lambda: client.load_model("whisper"),
            lambda: client.get_model_repository_index(),
            lambda: client.register_system_shared_memory("mine", "/mine", 1024),
        ]
        for call in calls:
            with pytest.raises(InferenceServerException, match="restricted"):
                await call()
        assert await client.is_model_ready("whisper") and await client.is_model_ready("micro_chunker")
    finally:
        await client.close()


async def test_the_secret_is_the_only_key_and_the_orchestrator_never_needs_it(
    triton_grpc_url: str, triton_pid: int
) -> None:
    """The restriction is Triton's header check (the right header opens it); the orchestrator's calls pass without."""
    secret = command_option(triton_pid, "--http-restricted-api").rsplit("=", 1)[1]
    assert len(secret) >= 32
    http = f"http://127.0.0.1:{ports_of(triton_pid)['http']}/v2"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{http}/repository/index", json={}, headers={ADMIN_HEADER: secret}) as response:
            assert response.status == 200
            assert {"whisper", "micro_chunker"} <= {m["name"] for m in await response.json()}
        async with session.get(f"http://127.0.0.1:{ports_of(triton_pid)['metrics']}/metrics") as response:
            assert response.status == 200 and "nv_inference_request_success" in await response.text()

    # readiness (model ready + model config) and the queue figures (statistics), as the service reads them
    pool = TritonPool([triton_grpc_url], "micro_chunker", "whisper", ["whisper", "micro_chunker"], 30.0)
    try:
        assert await pool.readiness() == {triton_grpc_url: True}
        assert pool.endpoints[0].instances is not None and pool.endpoints[0].instances >= 1
        assert {model for _, model in await pool.queue_stats()} == {"whisper", "micro_chunker"}
    finally:
        await pool.close()


async def test_a_transcription_still_works_through_the_locked_triton(service_url: str, media_url: str) -> None:
    jfk = next(c for c in manifest() if c.path.name == "jfk.flac")
    body = {"media_url": f"{media_url}/speech/{jfk.path.relative_to(speech_dir()).as_posix()}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{service_url}/v1/transcribe", json=body) as response:
            answer = await response.json()
            assert response.status == 200, answer
    assert wer(jfk.reference, answer["text"]) <= JFK_MAX_WER
