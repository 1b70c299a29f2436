"""The managed Triton's malloc: jemalloc preloaded by default, glibc tuned where it is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.infer.allocator import GLIBC_TUNING, LIBRARIES, allocator_env, find_library
from orchestrator.infer.triton_server import server_env
from orchestrator.settings import Settings


def installed(tmp_path: Path, *choices: str) -> list[str]:
    for choice in choices:
        (tmp_path / LIBRARIES[choice]).write_bytes(b"")
    return [str(tmp_path / "missing"), str(tmp_path)]


def test_jemalloc_is_the_default_and_goes_first_in_ld_preload(tmp_path: Path) -> None:
    assert Settings().triton_allocator == "jemalloc"
    dirs = installed(tmp_path, "jemalloc")
    env, used = allocator_env("jemalloc", {"LD_PRELOAD": "/opt/theirs.so", "PATH": "/bin"}, dirs)
    assert used == "jemalloc" and env["PATH"] == "/bin"
    assert env["LD_PRELOAD"] == f"{tmp_path / 'libjemalloc.so.2'}:/opt/theirs.so"
    assert "dirty_decay_ms" in env["MALLOC_CONF"]
    assert "background_thread:true" in env["MALLOC_CONF"], "freed pages go back also while an arena is idle"
    assert not GLIBC_TUNING.keys() & env.keys()


def test_tcmalloc_when_chosen_and_installed(tmp_path: Path) -> None:
    env, used = allocator_env("tcmalloc", {}, installed(tmp_path, "tcmalloc"))
    assert used == "tcmalloc" and env["LD_PRELOAD"].endswith("libtcmalloc_minimal.so.4") and "MALLOC_CONF" not in env


def test_a_missing_allocator_falls_back_to_tuned_glibc_and_the_callers_settings_win(tmp_path: Path) -> None:
    for choice in ("jemalloc", "tcmalloc", "glibc"):
        env, used = allocator_env(choice, {"MALLOC_ARENA_MAX": "4"}, [str(tmp_path)])  # type: ignore[arg-type]
        assert used == "glibc" and "LD_PRELOAD" not in env
        assert env["MALLOC_ARENA_MAX"] == "4"
        assert env["MALLOC_MMAP_THRESHOLD_"] == GLIBC_TUNING["MALLOC_MMAP_THRESHOLD_"]
    env, used = allocator_env("glibc", {}, installed(tmp_path, "jemalloc"))
    assert used == "glibc" and "LD_PRELOAD" not in env  # glibc chosen: jemalloc installed is not preloaded


def test_find_library_takes_the_first_directory_that_has_it(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "libx.so").write_bytes(b"")
    assert find_library("libx.so", [str(tmp_path / "a"), str(tmp_path / "b")]) == tmp_path / "b" / "libx.so"
    assert find_library("liby.so", [str(tmp_path / "a")]) is None


def test_the_managed_triton_runs_on_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    env = server_env(Settings(triton_allocator="glibc"))
    assert "LD_PRELOAD" not in env and env["MALLOC_ARENA_MAX"] == GLIBC_TUNING["MALLOC_ARENA_MAX"]
    if find_library(LIBRARIES["jemalloc"]):  # redis-server's dependency, so present wherever `make install` ran
        assert server_env(Settings()).get("LD_PRELOAD", "").endswith("libjemalloc.so.2")
