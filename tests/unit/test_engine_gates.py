"""The engine contract suite gates each engine on its own needs: CTranslate2 on CUDA on a CUDA device,
TensorRT-LLM on its package and engine directory, neither on the other's."""

from __future__ import annotations

from pathlib import Path

import ctranslate2
import pytest

from tests.engine_gates import ENGINES, skip_reason


def test_the_cpu_engine_always_runs() -> None:
    assert skip_reason("ctranslate2-cpu") is None


def test_ctranslate2_on_cuda_needs_a_cuda_device_and_nothing_of_tensorrt_llm() -> None:
    no_trtllm = {"find_trtllm": lambda: False, "engine_dir": lambda: ""}
    assert skip_reason("ctranslate2-cuda", count_cuda=lambda: 1, **no_trtllm) is None  # type: ignore[arg-type]
    reason = skip_reason("ctranslate2-cuda", count_cuda=lambda: 0, **no_trtllm)  # type: ignore[arg-type]
    assert reason is not None and reason.startswith("no CUDA device") and "TensorRT" not in reason


def test_on_this_machine_the_cuda_case_follows_ctranslate2s_own_device_count() -> None:
    """CPU-only CTranslate2 (CI): skipped as 'no CUDA device'; on a GPU host it runs, TensorRT-LLM or not."""
    reason = skip_reason("ctranslate2-cuda")
    if ctranslate2.get_cuda_device_count() > 0:
        assert reason is None
    else:
        assert reason is not None and reason.startswith("no CUDA device") and "TensorRT" not in reason


def test_tensorrt_llm_needs_its_package_and_an_engine_directory(tmp_path: Path) -> None:
    one_gpu = {"count_cuda": lambda: 1}
    reason = skip_reason("tensorrt_llm", find_trtllm=lambda: False, engine_dir=lambda: str(tmp_path), **one_gpu)  # type: ignore[arg-type]
    assert reason is not None and reason.startswith("no TensorRT-LLM")
    reason = skip_reason("tensorrt_llm", find_trtllm=lambda: True, engine_dir=lambda: "", **one_gpu)  # type: ignore[arg-type]
    assert reason is not None and "LONGSCRIBE_TRTLLM_ENGINE_DIR" in reason
    missing = str(tmp_path / "none")
    reason = skip_reason("tensorrt_llm", find_trtllm=lambda: True, engine_dir=lambda: missing, **one_gpu)  # type: ignore[arg-type]
    assert reason is not None and "not a directory" in reason
    assert skip_reason("tensorrt_llm", find_trtllm=lambda: True, engine_dir=lambda: str(tmp_path), **one_gpu) is None  # type: ignore[arg-type]


def test_an_unknown_engine_is_an_error_not_a_skip() -> None:
    with pytest.raises(ValueError, match="ctranslate2-cuda"):
        skip_reason("vllm")
    assert set(ENGINES) == {"ctranslate2-cpu", "ctranslate2-cuda", "tensorrt_llm"}


def test_the_contract_suite_marks_its_gpu_engines_gpu() -> None:
    import tests.integration.test_engine_contract as contract

    marked = {p.id: {m.name for m in p.marks} for p in contract.configs()}  # type: ignore[attr-defined]
    assert marked == {
        "ctranslate2-cpu": set(),
        "tensorrt_llm": {"skipif", "gpu"},
        "ctranslate2-cuda": {"skipif", "gpu"},
    }
