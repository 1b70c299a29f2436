"""Which whisper engines can load on this machine, each gated on its own needs (the engine contract suite,
tests/integration/test_engine_contract.py): a reason to skip, or None where the engine can run.

CTranslate2 on CUDA, the GPU image's default, needs only a CUDA device CTranslate2 can see; TensorRT-LLM
needs its package and a built engine directory (`docker/build_engines.sh`). Neither waits for the other.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

TRTLLM_DIR_ENV = "LONGSCRIBE_TRTLLM_ENGINE_DIR"
ENGINES = ("ctranslate2-cpu", "ctranslate2-cuda", "tensorrt_llm")


def cuda_devices() -> int:
    """CUDA devices CTranslate2 can use (0 with a CPU-only build or no GPU)."""
    import ctranslate2

    return int(ctranslate2.get_cuda_device_count())


def has_tensorrt_llm() -> bool:
    return importlib.util.find_spec("tensorrt_llm") is not None


def trtllm_engine_dir() -> str:
    return os.environ.get(TRTLLM_DIR_ENV, "")


def skip_reason(
    engine: str,
    count_cuda: Callable[[], int] = cuda_devices,
    find_trtllm: Callable[[], bool] = has_tensorrt_llm,
    engine_dir: Callable[[], str] = trtllm_engine_dir,
) -> str | None:
    """Why `engine` (one of ENGINES) cannot run here, or None when it can."""
    if engine == "ctranslate2-cpu":
        return None
    if engine == "ctranslate2-cuda":
        return None if count_cuda() > 0 else "no CUDA device (ctranslate2.get_cuda_device_count() is 0)"
    if engine == "tensorrt_llm":
        if not find_trtllm():
            return "no TensorRT-LLM (the GPU image has it)"
        where = engine_dir()
        if not where:
            return f"no TensorRT-LLM engine: set {TRTLLM_DIR_ENV} to a docker/build_engines.sh output"
        if not Path(where).is_dir():
            return f"no TensorRT-LLM engine: {TRTLLM_DIR_ENV}={where} is not a directory"
        return None
    raise ValueError(f"unknown engine {engine!r}; the contract suite knows {', '.join(ENGINES)}")
