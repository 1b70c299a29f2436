"""One capacity model: chunks_per_triton sizes the chunk slots, admission, and micro_chunker's instances."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from orchestrator.infer import capacity
from orchestrator.infer.triton_server import TritonStartError, check_capacity
from orchestrator.settings import REPO_ROOT, Settings

MICRO_CHUNKER_CONFIG = REPO_ROOT / "model_repository" / "micro_chunker" / "config.pbtxt"


def repo_instances() -> int:
    return capacity.instance_count(capacity.read_config(MICRO_CHUNKER_CONFIG))


def test_the_defaults_derive_from_one_number_that_matches_the_shipped_micro_chunker() -> None:
    settings = Settings()
    assert settings.chunks_per_triton == repo_instances()
    assert settings.chunks_in_flight_per_endpoint == settings.chunks_per_triton  # one orchestrator
    assert settings.max_requests_in_flight == settings.chunks_in_flight_per_endpoint + 1
    assert settings.max_queued_requests == 4 * settings.max_requests_in_flight
    assert capacity.check(settings, repo_instances(), "here") is None


def test_orchestrators_sharing_a_triton_each_take_an_equal_share() -> None:
    settings = Settings(chunks_per_triton=8, orchestrator_replicas=2)
    assert settings.chunks_in_flight_per_endpoint == 4
    assert capacity.fleet_chunks(settings) == 8
    assert (settings.max_requests_in_flight, settings.max_queued_requests) == (5, 20)
    assert Settings(chunks_per_triton=1, orchestrator_replicas=3).chunks_in_flight_per_endpoint == 1  # never 0


def test_explicit_overrides_win_from_arguments_and_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(max_requests_in_flight=1, max_queued_requests=1)
    assert (settings.max_requests_in_flight, settings.max_queued_requests) == (1, 1)
    monkeypatch.setenv("LONGSCRIBE_CHUNKS_PER_TRITON", "6")
    monkeypatch.setenv("LONGSCRIBE_MAX_QUEUED_REQUESTS", "0")
    settings = Settings()
    assert (settings.chunks_in_flight_per_endpoint, settings.max_requests_in_flight) == (6, 7)
    assert settings.max_queued_requests == 0
    with pytest.raises(ValueError):
        Settings(chunks_per_triton=0)


def repository_with(tmp_path: Path, count: int) -> Path:
    model = tmp_path / "micro_chunker"
    model.mkdir()
    text = MICRO_CHUNKER_CONFIG.read_text()
    needle = f"count: {repo_instances()} }}"
    assert needle in text
    (model / "config.pbtxt").write_text(text.replace(needle, f"count: {count} }}"))
    return tmp_path


def test_the_managed_triton_refuses_chunks_that_would_queue_inside_it(tmp_path: Path) -> None:
    settings = Settings(model_repository=repository_with(tmp_path, 2), chunks_per_triton=3)
    with pytest.raises(TritonStartError) as refused:
        check_capacity(settings)
    message = str(refused.value)
    assert "LONGSCRIBE_CHUNKS_PER_TRITON" in message and "2 instance" in message and "3" in message


def test_idle_instances_are_only_a_warning_and_a_match_is_silent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    check_capacity(Settings(model_repository=repository_with(tmp_path, 5), chunks_per_triton=3))
    assert "stay idle" in caplog.text and "LONGSCRIBE_CHUNKS_PER_TRITON=5" in caplog.text
    caplog.clear()
    check_capacity(Settings(model_repository=tmp_path, chunks_per_triton=5))
    check_capacity(Settings(chunks_per_triton=repo_instances()))  # the shipped repository
    assert not caplog.records


def test_a_remote_triton_that_disagrees_is_logged_with_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    settings = Settings(chunks_per_triton=8, orchestrator_replicas=2)
    capacity.warn_on_mismatch(settings, 3, "Triton at 10.0.0.5:8001")
    assert "10.0.0.5:8001" in caplog.text and "5 would wait inside Triton" in caplog.text


def test_groups_without_a_count_hold_one_instance(tmp_path: Path) -> None:
    config = tmp_path / "config.pbtxt"
    shutil.copy(MICRO_CHUNKER_CONFIG, config)
    text = config.read_text()
    config.write_text(
        text.replace(f"{{ kind: KIND_CPU, count: {repo_instances()} }}", "{ kind: KIND_CPU }, { count: 2 }")
    )
    assert capacity.instance_count(capacity.read_config(config)) == 3
