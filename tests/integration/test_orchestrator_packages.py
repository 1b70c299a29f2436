"""The orchestrator image's package set starts the service: pyproject's base dependencies, nothing else.

Built as docker/Dockerfile.orchestrator builds it, without Docker: a fresh
virtual environment gets exactly the base dependencies (docker/orchestrator_requirements.py),
then the project without dependencies from the files the image copies, and
`longscribe serve --no-triton` must answer /healthz. pip's cache makes a rerun quick.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from orchestrator.common.net import free_port, wait_until_ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
IMAGE_COPIES = [  # the COPY lines
    "pyproject.toml",
    "README.md",
    "LICENSE",
    "orchestrator",
    "longscribe",
    "model_repository/longscribe_core",
]


def run(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def build_context(into: Path) -> Path:
    for name in IMAGE_COPIES:
        source, target = REPO / name, into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    return into


async def test_the_image_package_set_starts_the_service(tmp_path: Path) -> None:
    text = (REPO / "docker" / "Dockerfile.orchestrator").read_text()
    assert "docker/orchestrator_requirements.py" in text and "--no-deps ." in text
    copied = {source for line in re.findall(r"^COPY (.+)$", text, re.M) for source in line.split()[:-1]}
    assert copied == {*IMAGE_COPIES, "docker/orchestrator_requirements.py"}

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    requirements = tmp_path / "requirements.txt"
    listed = subprocess.run(
        [sys.executable, REPO / "docker" / "orchestrator_requirements.py"], capture_output=True, text=True, check=True
    )
    requirements.write_text(listed.stdout)
    run(venv / "bin" / "pip", "install", "-q", "-r", requirements, cwd=tmp_path)
    run(venv / "bin" / "pip", "install", "-q", "--no-deps", build_context(tmp_path / "app"), cwd=tmp_path)
    for server_only in ("ctranslate2", "pytriton"):
        missing = subprocess.run([venv / "bin" / "python", "-c", f"import {server_only}"], capture_output=True)
        assert missing.returncode != 0, f"the server extra's {server_only} must stay out of the orchestrator's set"

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LONGSCRIBE_", "VIRTUAL_ENV"))}
    env |= {"LONGSCRIBE_PORT": str(port), "LONGSCRIBE_TRITON_GRPC_URLS": f'["127.0.0.1:{free_port()}"]'}
    proc = await asyncio.create_subprocess_exec(
        venv / "bin" / "longscribe", "serve", "--no-triton", "--no-auth", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(f"{base}/healthz", lambda: proc.returncode, 60, "longscribe serve")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200 and "longscribe_jobs_queued" in await response.text()
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 503  # no Triton there: up, but not ready
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()[-3000:]
