"""Which OpenBLAS kernels numpy should run on this CPU: `longscribe serve` and the Triton image's entrypoint
ask it before Triton starts, as OPENBLAS_CORETYPE must be set before a process loads OpenBLAS.

numpy's wheel bundles an OpenBLAS built for many CPUs, which picks its kernels by the CPU's model
number. A model it does not know (newer than its release; virtual machines may report a bare "Intel
Xeon Processor") gets the oldest, Prescott's SSE3 kernels, whatever the CPU can do: on the project's
2-core machine (AVX-512) single-precision GEMM ran at 22 GFLOPS instead of 72, and the speaker
encoder, nearly all GEMM, about that much slower. The kernels are named only when a library chose
some older than AVX2 on a CPU whose flags have AVX2 (Haswell's) or AVX-512 (SkylakeX's).

    python -m longscribe_core.blas    # prints the OPENBLAS_CORETYPE to set, or nothing
"""

from __future__ import annotations

import sys
from pathlib import Path

# OpenBLAS's names for kernels without AVX2, lower-cased: what it falls back to for a CPU it does not know
PRE_AVX2 = frozenset({"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge"})
SKYLAKEX = frozenset({"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"})
HASWELL = frozenset({"avx2", "fma"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags as the kernel reports them (none where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def openblas_kernels() -> str | None:
    """The kernels this process's OpenBLAS libraries chose (their "architecture"): one older than AVX2 if any
    chose one, None when it cannot be told. numpy 1.26 bundles OpenBLAS 0.3.23, scipy its own 0.3.30: here
    the older took this CPU for Prescott and the newer for SkylakeX."""
    try:
        import numpy  # noqa: F401  (loads the OpenBLAS that threadpoolctl reads)
        from threadpoolctl import threadpool_info  # scikit-learn's, which the server extra's librosa brings
    except ImportError:
        return None
    chosen = [str(i.get("architecture")) for i in threadpool_info() if i.get("internal_api") == "openblas"]
    return next((a for a in chosen if a.lower() in PRE_AVX2), chosen[0] if chosen else None)


def coretype(chosen: str | None, flags: frozenset[str]) -> str | None:
    """The OPENBLAS_CORETYPE to set: None unless `chosen` is older than AVX2 and `flags` allow better."""
    if chosen is None or chosen.lower() not in PRE_AVX2:
        return None
    if SKYLAKEX <= flags:
        return "SkylakeX"
    if HASWELL <= flags:
        return "Haswell"
    return None


def main() -> None:
    print(coretype(openblas_kernels(), cpu_flags()) or "")


if __name__ == "__main__":
    sys.exit(main())
