"""Run the `tritonserver` binary from the nvidia-pytriton wheel as a managed child.

The wheel carries the server, the Python backend and one backend stub per
Python version. We assemble a private backend directory with the stub for the
running Python, and tell the stub (which ignores PYTHONPATH) where this
environment's packages are through LONGSCRIBE_SITE_DIRS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import site
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from longscribe_core.weights import cache_root
from orchestrator.common.children import supervised
from orchestrator.common.net import (
    BIND_ATTEMPTS,
    NotReady,
    PortTaken,
    free_port,
    listening_ports,
    port_taken,
    wait_until_ready,
)
from orchestrator.infer import capacity, repository
from orchestrator.infer.allocator import allocator_env
from orchestrator.infer.catalogue import Catalogue
from orchestrator.infer.pool import KEEPALIVE_TIME_MS
from orchestrator.settings import Settings

log = logging.getLogger("longscribe.triton")

# Triton's own access control: these APIs answer only requests that carry ADMIN_HEADER with the
# secret. model-repository is load/unload/index (loading a model runs its code; unloading whisper
# stops every transcription); shared-memory registers memory regions the server then reads and
# writes; trace and logging change server settings. The orchestrator calls none of them (it uses
# inference, health, model-config and statistics), so the Triton `serve` starts is given a fresh
# random secret that nobody holds. Health, metadata and the metrics port stay open: probes and
# Prometheus need them.
RESTRICTED_APIS = ("model-repository", "shared-memory", "trace", "logging")
ADMIN_HEADER = "longscribe-admin-token"
PORTS = ("triton_http_port", "triton_grpc_port", "triton_metrics_port")  # 0 in Settings: a free one, picked here
FREE_PORTS: dict[str, int] = dict.fromkeys(PORTS, 0)  # Settings(**FREE_PORTS): a Triton beside any other
OWN_PORTS_WAIT_S = 10.0  # after ready: until the server listens on every port it was given


class TritonStartError(RuntimeError):
    """The managed server exited or did not become ready in time."""


def pytriton_root() -> Path:
    import pytriton  # the wheel is only a carrier for the binary here

    return Path(pytriton.__file__).resolve().parent / "tritonserver"


def backend_dir(cache: Path) -> Path:
    """<cache>/backends/python/ holding the backend library, its utils and our stub."""
    root = pytriton_root()
    python = cache / "backends" / "python"
    python.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        link, target = python / name, root / "backends" / "python" / name
        if link.is_symlink() and link.readlink() == target:
            continue
        link.unlink(missing_ok=True)  # stale: another environment's wheel
        link.symlink_to(target)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise TritonStartError(f"the nvidia-pytriton wheel has no Python-backend stub for Python {version}")
    target = python / "triton_python_backend_stub"
    if not target.exists() or target.stat().st_size != stub.stat().st_size:
        shutil.copy2(stub, target)
    return cache / "backends"


def server_env(settings: Settings) -> dict[str, str]:
    """The stub finds the wheel's vendored libs and this environment's packages; both run on the chosen malloc."""
    env = dict(os.environ)
    wheel_libs = pytriton_root().parent.parent / "nvidia_pytriton.libs"
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(wheel_libs), env.get("LD_LIBRARY_PATH")]))
    site_dirs = [str(settings.model_repository), *site.getsitepackages()]
    env["LONGSCRIBE_SITE_DIRS"] = os.pathsep.join(site_dirs)
    # whisper/1/model.py lets this beat config.pbtxt (containers set it): here each generated
    # model's config names its own weights, and one variable would give them all the same
    env.pop("LONGSCRIBE_WHISPER_MODEL", None)
    env, used = allocator_env(settings.triton_allocator, env)
    if used != settings.triton_allocator:
        log.warning("%s is not installed: Triton runs with glibc's malloc (tuned)", settings.triton_allocator)
    return env


def restricted_api_args(secret: str) -> list[str]:
    """Triton's flags that lock RESTRICTED_APIS behind ADMIN_HEADER: <secret>, over HTTP and gRPC alike."""
    rule = f"{','.join(RESTRICTED_APIS)}:{ADMIN_HEADER}={secret}"
    return [f"--http-restricted-api={rule}", f"--grpc-restricted-protocol={rule}"]


def keepalive_args() -> list[str]:
    """Triton's flags that accept the pool's keepalive pings (pool.CHANNEL_ARGS), also between calls.

    gRPC's server defaults take an idle ping sooner than 5 minutes after the last as a strike and,
    after two, close the connection (GOAWAY too_many_pings): the channel then reconnects, and a
    chunk sent meanwhile waits. Half the client's period leaves room for timer jitter."""
    return [
        "--grpc-keepalive-permit-without-calls=1",
        f"--grpc-http2-min-recv-ping-interval-without-data={KEEPALIVE_TIME_MS // 2}",
    ]


def server_args(
    settings: Settings, backends: Path, model_repository: Path | None = None, admin_secret: str | None = None
) -> list[str]:
    """tritonserver's command line; `admin_secret` unlocks RESTRICTED_APIS (default: a random one, held by nobody)."""
    address = str(settings.triton_bind_address)
    args = [
        str(pytriton_root() / "bin" / "tritonserver"),
        "--model-repository", str(model_repository or settings.model_repository),
        "--backend-directory", str(backends),
        "--http-address", address,
        "--http-port", str(settings.triton_http_port),
        "--grpc-address", address,
        "--grpc-port", str(settings.triton_grpc_port),
        "--metrics-address", address,
        "--metrics-port", str(settings.triton_metrics_port),
        *restricted_api_args(admin_secret or secrets.token_urlsafe(32)),
        *keepalive_args(),
        # Triton's gRPC frontend keeps up to this many request objects for reuse (default 8), each holding
        # on to the largest macro chunk it ever carried (~10 MB of PCM): tritonserver's live heap grew by
        # 12-30 MB per 20-minute run with 8, and with 3; with none kept it stays at ~6 MB (jemalloc heap
        # profiles, docs/benchmarks.md). A fresh object per macro chunk costs nothing beside its minutes.
        "--grpc-infer-allocation-pool-size", "0",
        # explicit: the repository also holds longscribe_core, which is no model
        "--model-control-mode", "explicit",
    ]  # fmt: skip
    for model in repository.load_list(settings, Catalogue.from_settings(settings)):
        args += ["--load-model", model]
    return args


def check_capacity(settings: Settings) -> None:
    """Refuse to start a Triton whose micro_chunker would queue chunks; a warning when instances would idle."""
    config = settings.model_repository / settings.micro_chunk_model / "config.pbtxt"
    if settings.micro_chunk_model not in settings.triton_models or not config.is_file():
        return
    mismatch = capacity.check(settings, capacity.instance_count(capacity.read_config(config)), str(config))
    if mismatch is None:
        return
    if mismatch.surplus:
        raise TritonStartError(mismatch.message)
    log.warning("%s", mismatch.message)


def picked_ports(settings: Settings) -> Settings:
    """`settings` with each Triton port given as 0 replaced by one free now."""
    return settings.model_copy(update={name: free_port() for name in PORTS if getattr(settings, name) == 0})


@contextlib.asynccontextmanager
async def running_triton(settings: Settings) -> AsyncIterator[str]:
    """Check or fetch the weights, start Triton, wait until every model is ready, yield its gRPC URL, stop it.

    A port given as 0 is a free one: when another process binds it before Triton does, Triton is
    started again on fresh ones, up to BIND_ATTEMPTS times. Raises repository.ModelsUnavailable
    before starting anything when a model's weights are not there, and TritonStartError when the
    capacity settings would queue chunks inside it, or it does not start."""
    check_capacity(settings)
    resolved = await asyncio.to_thread(repository.resolve_all, Catalogue.from_settings(settings))
    models = repository.build(settings, resolved, cache_root() / "repositories")
    try:
        for attempt in range(1, BIND_ATTEMPTS + 1):
            picked, started = picked_ports(settings), False
            try:
                async with _serving(picked, models) as url:
                    started = True
                    yield url
                    return
            except PortTaken as exc:
                if started:
                    raise
                if attempt == BIND_ATTEMPTS or picked == settings:  # the ports were given: none to pick again
                    raise TritonStartError(f"{exc} (tried {attempt} time(s))") from exc
                log.warning("%s: starting Triton again on other ports", exc)
    finally:
        shutil.rmtree(models, ignore_errors=True)


def _taken(settings: Settings) -> PortTaken | None:
    """Which of Triton's ports another process holds now, as the error to start again on; None if none."""
    taken = [port for port in (getattr(settings, name) for name in PORTS) if port_taken(_bind_host(settings), port)]
    return PortTaken(f"port(s) {taken} taken by another process before tritonserver bound them") if taken else None


async def _owns_its_ports(settings: Settings, proc: asyncio.subprocess.Process) -> None:
    """Ready is answered on the HTTP port, maybe by another process's server there: wait until `proc`
    itself listens on every port it was given."""
    ports = {getattr(settings, name) for name in PORTS}
    deadline = asyncio.get_running_loop().time() + OWN_PORTS_WAIT_S
    while not ports <= listening_ports(proc.pid):
        if proc.returncode is not None or asyncio.get_running_loop().time() > deadline:
            raise _taken(settings) or TritonStartError(f"tritonserver does not listen on all of {sorted(ports)}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _serving(settings: Settings, models: Path) -> AsyncIterator[str]:
    args = server_args(settings, backend_dir(cache_root()), models)
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=server_env(settings),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
        # its models size their thread pools from this share (whisper: cores // instances)
        preexec_fn=(lambda: os.sched_setaffinity(0, settings.triton_cpus)) if settings.triton_cpus else None,
    )
    host = connect_host(settings.triton_bind_address)
    async with supervised(proc, log):
        ready_url = f"http://{host}:{settings.triton_http_port}/v2/health/ready"
        try:
            await wait_until_ready(
                ready_url, lambda: proc.returncode, settings.triton_start_timeout_sec, "tritonserver"
            )
        except NotReady as exc:
            raise (_taken(settings) if proc.returncode is not None else None) or TritonStartError(str(exc)) from exc
        await _owns_its_ports(settings, proc)
        log.info("Triton ready: gRPC on %s:%d", host, settings.triton_grpc_port)
        yield f"{host}:{settings.triton_grpc_port}"


def _bind_host(settings: Settings) -> str:
    return str(settings.triton_bind_address)


def connect_host(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Where this process reaches a server bound to `address`: loopback for a wildcard, [v6] in brackets."""
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{address}]" if address.version == 6 else str(address)
