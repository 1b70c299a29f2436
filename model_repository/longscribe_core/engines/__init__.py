"""Whisper engines behind one interface (`base.Engine`): CTranslate2, and TensorRT-LLM on GPU images.

`base` holds what every engine shares (config, errors, the per-item check,
window -> segments); each engine module imports only `base`, never another
engine, and TensorRT-LLM is imported only when asked for.
"""

from __future__ import annotations

from longscribe_core.engines.base import ENGINES, Engine, EngineConfig
from longscribe_core.engines.ct2 import CTranslate2Engine


def load_engine(config: EngineConfig) -> Engine:
    """The engine `config.engine` names; TensorRT-LLM is imported only when asked for."""
    if config.engine == "ctranslate2":
        return CTranslate2Engine(config)
    if config.engine == "tensorrt_llm":
        from longscribe_core.engines.trtllm import TensorRTLLMEngine  # needs the GPU image's tensorrt_llm and torch

        return TensorRTLLMEngine(config)
    raise ValueError(f"unknown engine {config.engine!r}; use one of {ENGINES}")
