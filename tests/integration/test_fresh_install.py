"""A new user's install: the base package, without the `server` extra, in a fresh virtual environment on a
Python other than 3.11, from the package index pip is configured with.

It is light (none of the server extra's packages), it imports, and it is a working client and
orchestrator: its CLI transcribes a local file on a service that has keys and refuses loopback media
(the production default), and its `longscribe serve --no-triton` transcribes on a real Triton.
One environment for the whole session: installing takes a minute or more.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from orchestrator.common.net import free_port, wait_until_ready

from ..corpus import manifest, speech_dir, wer
from ..keyed_service import SERVICE_KEY
from ..wer_bounds import JFK_MAX_WER
from .test_orchestrator_packages import REPO, build_context

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

JFK = next(c for c in manifest() if c.path.name == "jfk.flac")
OTHER_PYTHONS = ("3.13", "3.12")  # supported, and not the 3.11 the server needs: 3.13 first (no numpy 1.x there)


@dataclass(frozen=True)
class FreshInstall:
    bin: Path
    version: str  # "3.13"
    env: dict[str, str]  # this process's environment without what would point the child at the repo's code


def server_only() -> set[str]:
    """The `server` extra's distributions that the base does not also need (canonical names)."""
    with (REPO / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]

    def names(requirements: list[str]) -> set[str]:
        return {canonicalize_name(Requirement(line).name) for line in requirements}

    only = names(project["optional-dependencies"]["server"]) - names(project["dependencies"])
    assert {"nvidia-pytriton", "ctranslate2"} <= only
    return only


def version_of(python: str) -> str | None:
    """The version ("3.13") of a Python that runs and can make a virtual environment (a pyenv shim of an inactive
    version fails to run; Debian's python3.12 without python3-venv has no ensurepip)."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except OSError:
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def other_python() -> tuple[str, str] | None:
    """A Python 3.13 or 3.12: on PATH, else one that pyenv installed."""
    candidates = [found for v in OTHER_PYTHONS if (found := shutil.which(f"python{v}"))]
    roots = [os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")]
    if pyenv := shutil.which("pyenv"):
        roots.insert(0, subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip())
    for root in filter(None, roots):
        for v in OTHER_PYTHONS:
            candidates += sorted(map(str, Path(root).glob(f"versions/{v}*/bin/python")), reverse=True)
    for python in candidates:
        if (version := version_of(python)) in OTHER_PYTHONS:
            return python, version
    return None


async def run(*args: str | Path, env: dict[str, str], cwd: Path, timeout: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *map(str, args), cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, stdout.decode(), stderr.decode()


@pytest_asyncio.fixture(scope="session")
async def fresh_install(tmp_path_factory: pytest.TempPathFactory) -> FreshInstall:
    """`pip install <the project>` into a new virtual environment on Python 3.13 (or 3.12): the base only."""
    found = other_python()
    if found is None:
        pytest.skip(
            "no Python 3.13 or 3.12 that can make a virtual environment (looked for python3.13/python3.12 on PATH "
            "and in pyenv's versions): the fresh install needs a Python other than 3.11"
        )
    python, version = found
    root = tmp_path_factory.mktemp("fresh-install")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LONGSCRIBE_", "VIRTUAL_ENV"))}
    code, _, err = await run(python, "-m", "venv", root / "venv", env=env, cwd=root, timeout=120)
    assert code == 0, err
    # the files a source checkout has, copied: pip builds the wheel outside the repository, as from an sdist
    source = build_context(root / "source")
    code, out, err = await run(root / "venv/bin/python", "-m", "pip", "install", source, env=env, cwd=root, timeout=600)
    assert code == 0, out[-3000:] + err[-3000:]
    return FreshInstall(root / "venv" / "bin", version, env)


async def test_the_base_install_is_light_imports_everything_and_answers_help(
    fresh_install: FreshInstall, tmp_path: Path
) -> None:
    python = fresh_install.bin / "python"
    code, out, err = await run(python, "-m", "pip", "list", "--format", "json", env=fresh_install.env, cwd=tmp_path,
                               timeout=60)  # fmt: skip
    assert code == 0, err
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(out)}
    assert "longscribe" in installed
    assert not server_only() & set(installed), "the server extra's packages came with the base install"
    # every module of the facade and the orchestrator imports without them (no __main__: it would run)
    walk = (
        "import importlib, pkgutil, longscribe, orchestrator\n"
        "for package in (longscribe, orchestrator):\n"
        "    for module in pkgutil.walk_packages(package.__path__, package.__name__ + '.'):\n"
        "        if not module.name.endswith('__main__'):\n"
        "            importlib.import_module(module.name)\n"
        "import orchestrator.cli.main, sys\n"
        "print('%d.%d' % sys.version_info[:2])\n"
    )
    code, out, err = await run(python, "-c", walk, env=fresh_install.env, cwd=tmp_path, timeout=120)
    assert code == 0, err
    assert out.strip() == fresh_install.version != "3.11"
    code, out, err = await run(fresh_install.bin / "longscribe", "--help", env=fresh_install.env, cwd=tmp_path,
                               timeout=60)  # fmt: skip
    assert code == 0 and "transcribe" in out, err


async def test_the_base_install_without_a_server_says_to_install_the_server_extra(
    fresh_install: FreshInstall, tmp_path: Path
) -> None:
    code, _, err = await run(fresh_install.bin / "longscribe", "transcribe", JFK.path, env=fresh_install.env,
                             cwd=tmp_path, timeout=120)  # fmt: skip
    assert code != 0
    assert "longscribe[server]" in err and "--server" in err and "Traceback" not in err, err


async def test_the_base_install_uploads_a_local_file_to_a_keyed_service_that_refuses_loopback(
    fresh_install: FreshInstall, keyed_service_url: str, tmp_path: Path
) -> None:
    """The issue's path: a local file, the key from LONGSCRIBE_API_KEY, and the default server (served from
    the client's loopback instead of uploaded, the file would be refused: media_url_forbidden)."""
    env = fresh_install.env | {"LONGSCRIBE_API_KEY": SERVICE_KEY}
    code, out, err = await run(
        fresh_install.bin / "longscribe", "transcribe", "--server", keyed_service_url, JFK.path, "--format", "text",
        env=env, cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert code == 0, err
    assert wer(JFK.reference, out) <= JFK_MAX_WER, out


async def test_the_base_install_passes_through_a_url_the_keyed_service_may_fetch(
    fresh_install: FreshInstall, keyed_service_url: str, allowed_media_url: str, tmp_path: Path
) -> None:
    url = f"{allowed_media_url}/speech/{JFK.path.relative_to(speech_dir()).as_posix()}"
    code, out, err = await run(
        fresh_install.bin / "longscribe", "transcribe", "--server", keyed_service_url, url, "--format", "text",
        env=fresh_install.env | {"LONGSCRIBE_API_KEY": SERVICE_KEY}, cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert code == 0, err
    assert wer(JFK.reference, out) <= JFK_MAX_WER, out


async def test_the_base_install_serves_transcriptions_on_a_real_triton(
    fresh_install: FreshInstall, triton_grpc_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The orchestrator on the fresh Python, with the numpy, tritonclient and protobuf that it resolved
    (numpy 2 on 3.13), keys on and loopback refused; the file is uploaded to the OpenAI route."""
    port = free_port()
    env = fresh_install.env | {
        "LONGSCRIBE_PORT": str(port),
        "LONGSCRIBE_TRITON_GRPC_URLS": json.dumps([triton_grpc_url]),
        "LONGSCRIBE_REDIS_URL": redis_url,
        "LONGSCRIBE_API_KEYS": json.dumps([SERVICE_KEY]),
    }
    proc = await asyncio.create_subprocess_exec(
        fresh_install.bin / "longscribe", "serve", "--no-triton", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(f"{base}/readyz", lambda: proc.returncode, 120, "the fresh install's serve")
        form = aiohttp.FormData()
        form.add_field("model", "whisper-1")
        form.add_field("file", JFK.path.read_bytes(), filename=JFK.path.name)
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {SERVICE_KEY}"}) as session,
            session.post(f"{base}/v1/audio/transcriptions", data=form) as response,
        ):
            body = await response.json()
        assert response.status == 200, body
        assert wer(JFK.reference, body["text"]) <= JFK_MAX_WER, body
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()[-3000:]
