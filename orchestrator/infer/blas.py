"""OPENBLAS_CORETYPE for the managed Triton's stubs, where numpy's OpenBLAS would run kernels below the CPU's
(`longscribe_core.blas` says why and which); never over a value of the user's."""

from __future__ import annotations

import logging

from longscribe_core.blas import coretype, cpu_flags, openblas_kernels

log = logging.getLogger("longscribe.triton")


def blas_env(env: dict[str, str]) -> dict[str, str]:
    """`env` with OPENBLAS_CORETYPE set where OpenBLAS would otherwise run kernels below the CPU's."""
    if "OPENBLAS_CORETYPE" in env:
        return env
    chosen = openblas_kernels()
    better = coretype(chosen, cpu_flags())
    if better is None:
        return env
    log.info("OpenBLAS took this CPU for %s: Triton's stubs run its %s kernels (OPENBLAS_CORETYPE)", chosen, better)
    return {**env, "OPENBLAS_CORETYPE": better}
