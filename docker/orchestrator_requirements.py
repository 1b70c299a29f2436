"""Print pyproject.toml's base dependencies, one requirement a line: all the orchestrator image installs.

    python docker/orchestrator_requirements.py > requirements.txt && pip install -r requirements.txt

The base install is the client, the CLI and the orchestrator; Triton, CTranslate2
and the weights are the `server` extra, which stays in the Triton image. Listed
apart from the project itself so the image caches them in a layer of their own.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "pyproject.toml"
    print("\n".join(requirements(path)))
