"""The managed Triton: the right stub, links that follow the environment, loopback and a locked model-repository API."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.infer.pool import CHANNEL_ARGS
from orchestrator.infer.triton_server import (
    ADMIN_HEADER,
    RESTRICTED_APIS,
    backend_dir,
    connect_host,
    keepalive_args,
    pytriton_root,
    server_args,
    server_env,
)
from orchestrator.settings import Settings


def test_backend_dir_holds_the_stub_for_the_running_python(tmp_path: Path) -> None:
    python = backend_dir(tmp_path) / "python"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = pytriton_root() / "python_backend_stubs" / version / "triton_python_backend_stub"
    assert (python / "triton_python_backend_stub").read_bytes() == stub.read_bytes()
    assert (python / "libtriton_python.so").resolve() == (pytriton_root() / "backends/python/libtriton_python.so")


def test_stale_links_from_another_environment_are_replaced(tmp_path: Path) -> None:
    python = tmp_path / "backends" / "python"
    python.mkdir(parents=True)
    (python / "libtriton_python.so").symlink_to(tmp_path / "gone" / "libtriton_python.so")
    backend_dir(tmp_path)
    assert (python / "libtriton_python.so").resolve().exists()


def test_models_load_explicitly_and_the_stub_is_told_where_packages_are() -> None:
    settings = Settings(triton_models=["whisper", "micro_chunker"])
    args = server_args(settings, Path("/b"))
    assert args[args.index("--model-control-mode") + 1] == "explicit"
    assert [args[i + 1] for i, a in enumerate(args) if a == "--load-model"] == ["whisper", "micro_chunker"]
    site_dirs = server_env(settings)["LONGSCRIBE_SITE_DIRS"].split(":")
    assert str(settings.model_repository) == site_dirs[0]
    assert any(Path(d, "numpy").is_dir() for d in site_dirs)


def option(args: list[str], flag: str) -> str:
    return next(a.split("=", 1)[1] if "=" in a else args[i + 1] for i, a in enumerate(args) if a.split("=")[0] == flag)


def bound_to(address: str) -> Settings:
    return Settings.model_validate({"triton_bind_address": address})  # as LONGSCRIBE_TRITON_BIND_ADDRESS gives it


def test_triton_binds_loopback_unless_told_and_the_client_reaches_it_there() -> None:
    addresses = ("--http-address", "--grpc-address", "--metrics-address")
    assert {option(server_args(Settings(), Path("/b")), flag) for flag in addresses} == {"127.0.0.1"}
    assert {option(server_args(bound_to("0.0.0.0"), Path("/b")), flag) for flag in addresses} == {"0.0.0.0"}
    for address, reached_at in (
        ("0.0.0.0", "127.0.0.1"),
        ("::", "[::1]"),
        ("10.0.0.7", "10.0.0.7"),
        ("fd00::7", "[fd00::7]"),
    ):
        assert connect_host(bound_to(address).triton_bind_address) == reached_at
    with pytest.raises(ValidationError):
        bound_to("localhost")  # an address, not a name: Triton binds what it is given


def test_the_model_repository_api_is_locked_behind_a_fresh_secret_each_start() -> None:
    first, second = (server_args(Settings(), Path("/b")) for _ in range(2))
    rules = [
        option(args, flag)
        for args in (first, second)
        for flag in ("--http-restricted-api", "--grpc-restricted-protocol")
    ]
    apis, header = rules[0].split(":", 1)
    assert set(apis.split(",")) == set(RESTRICTED_APIS) and "model-repository" in RESTRICTED_APIS
    assert not {"inference", "health", "model-config", "statistics"} & set(
        RESTRICTED_APIS
    )  # what the orchestrator calls
    name, secret = header.split("=", 1)
    assert name == ADMIN_HEADER and len(secret) >= 32
    assert rules[0] == rules[1] != rules[2] == rules[3]  # HTTP and gRPC share one secret; the next start has another
    assert option(server_args(Settings(), Path("/b"), admin_secret="s3cret"), "--http-restricted-api").endswith(
        "=s3cret"
    )


def test_triton_accepts_the_pools_keepalive_pings_also_between_calls() -> None:
    client = dict(CHANNEL_ARGS)
    args = server_args(Settings(), Path("/b"))
    assert all(flag in args for flag in keepalive_args())
    assert int(option(args, "--grpc-keepalive-permit-without-calls")) == client["grpc.keepalive_permit_without_calls"]
    # a ping sooner than this is a strike, and two strikes close the connection: the client's period must exceed it
    assert int(option(args, "--grpc-http2-min-recv-ping-interval-without-data")) < client["grpc.keepalive_time_ms"]


@pytest.mark.parametrize("chunks", [1, 3, 6])
def test_triton_keeps_no_grpc_request_objects_for_reuse(chunks: int) -> None:
    # each kept object holds on to the largest macro chunk it carried: with Triton's default of 8, and
    # with 3, the server's live heap grew 12-30 MB per 20-minute run; with 0 it stayed at ~6 MB
    args = server_args(Settings(chunks_per_triton=chunks), Path("/b"))
    assert int(option(args, "--grpc-infer-allocation-pool-size")) == 0
