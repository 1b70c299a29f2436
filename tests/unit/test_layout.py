"""The house: packages follow the data's path, import only downward, and stay small."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "orchestrator": ROOT / "orchestrator",
    "longscribe_core": ROOT / "model_repository" / "longscribe_core",
    "longscribe": ROOT / "longscribe",  # the Python client, the public facade
}
MAX_MODULE_LINES = 400
# orchestrator's layers, lowest first: a module imports from its own layer or a lower one
LAYERS = [
    {"settings", "errors", "schemas", "languages", "common"},
    {"media"},
    {"plan"},
    {"infer"},
    {"assemble"},
    {"formats"},
    {"pipeline"},
    {"jobs"},
    {"api"},
    {"cli"},
]


def _modules() -> dict[str, Path]:
    found = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """Project modules a file imports at its top level (not inside functions: those are lazy on purpose)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


MODULES = _modules()
GRAPH = {mod: {m for m in _imports(path) if m in MODULES and m != mod} for mod, path in MODULES.items()}


def _layer(module: str) -> int:
    head = module.split(".")[1] if module.count(".") else ""
    for rank, names in enumerate(LAYERS):
        if head in names:
            return rank
    return 0  # the package itself


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_400_lines(module: str) -> None:
    assert len(MODULES[module].read_text().splitlines()) <= MAX_MODULE_LINES


def test_no_import_cycle() -> None:
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for dep in GRAPH[module]:
            assert state.get(dep) != "open", " -> ".join([*path, module, dep])
            if dep not in state:
                visit(dep, [*path, module])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [])


def test_orchestrator_packages_import_only_downward() -> None:
    upward = [
        f"{mod} imports {dep}"
        for mod, deps in GRAPH.items()
        if mod.startswith("orchestrator.")
        for dep in deps
        if dep.startswith("orchestrator.") and _layer(dep) > _layer(mod)
    ]
    assert upward == []


def test_nothing_imports_the_cli_or_the_tests() -> None:
    offenders = [
        f"{mod} imports {dep}"
        for mod, deps in GRAPH.items()
        if not mod.startswith("orchestrator.cli")
        for dep in deps
        if dep.startswith("orchestrator.cli")
    ]
    offenders += [
        f"{mod} imports tests" for mod, path in MODULES.items() if any(m.startswith("tests") for m in _imports(path))
    ]
    assert offenders == []


def test_the_shared_core_never_imports_the_orchestrator() -> None:
    assert [
        m for m in MODULES if m.startswith("longscribe_core") and any(d.startswith("orchestrator") for d in GRAPH[m])
    ] == []


@pytest.mark.parametrize("package", sorted(p for p, path in MODULES.items() if path.name == "__init__.py"))
def test_every_package_says_what_it_owns(package: str) -> None:
    assert ast.get_docstring(ast.parse(MODULES[package].read_text())), f"{package}/__init__.py needs a docstring"


def test_the_python_client_imports_nothing_of_the_service() -> None:
    """`longscribe` is the client: a base install imports it without the service's, Triton's or the models'
    packages (checked in a fresh interpreter, where nothing else has loaded them)."""
    client = [m for m in MODULES if m.split(".")[0] == "longscribe"]
    assert [m for m in client if any(d.startswith(("orchestrator", "longscribe_core")) for d in GRAPH[m])] == []
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, longscribe; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout.split()  # fmt: skip
    heavy = ("orchestrator", "longscribe_core", "tritonclient", "ctranslate2", "numpy", "aiohttp", "pydantic", "redis")
    assert [m for m in loaded if m.split(".")[0] in heavy] == []
