"""What `pip install longscribe` ships: every package folder of the facade, the service and the models'
shared core is listed for setuptools (a folder left out installs nowhere and fails only on import)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {  # import name -> where its folder lies
    "longscribe": REPO / "longscribe",
    "orchestrator": REPO / "orchestrator",
    "longscribe_core": REPO / "model_repository" / "longscribe_core",
}


def listed_packages() -> set[str]:
    with (REPO / "pyproject.toml").open("rb") as f:
        return set(tomllib.load(f)["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_listed_for_the_wheel() -> None:
    found = {
        ".".join([name, *init.parent.relative_to(root).parts])
        for name, root in SHIPPED.items()
        for init in root.rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert found == listed_packages()
