"""The managed Triton's backend directory: the right stub, links that follow the environment."""

from __future__ import annotations

import sys
from pathlib import Path

from orchestrator.infer.triton_server import backend_dir, pytriton_root, server_args, server_env
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
