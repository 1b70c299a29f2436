"""Which malloc the managed tritonserver (and the Python-backend stubs it starts) runs with.

glibc's malloc keeps what tritonserver and the stubs free (gRPC buffers, the macro chunks' PCM)
in per-thread arenas and hands little of it back, so they grew with every audio hour
(tritonserver about 36 MB an hour, the micro_chunker stubs up to 1.42 times from 1 to 3 hours;
on jemalloc 1.18 and 1.11, docs/benchmarks.md). The usual cure is tcmalloc or jemalloc through
LD_PRELOAD. jemalloc comes with Debian's redis-server (libjemalloc2), which the service installs
anyway; tcmalloc-minimal is libtcmalloc-minimal4. Neither is required: when the chosen one is
not installed, glibc runs with fewer arenas and a fixed mmap threshold, which slows the growth.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

Allocator = Literal["jemalloc", "tcmalloc", "glibc"]

LIBRARIES: dict[str, str] = {"jemalloc": "libjemalloc.so.2", "tcmalloc": "libtcmalloc_minimal.so.4"}
# Debian's and Red Hat's library directories (multiarch first), where the packages put them
LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/lib64")
# glibc, when no other allocator is there: two arenas (not 8 per core) and blocks over 1 MiB in their
# own mappings, returned on free, so large tensors do not pin a heap
GLIBC_TUNING = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(1024 * 1024)}
# jemalloc hands freed pages back after 1 s (default 10 s): a stub's peak between chunks stays low. Its
# decay only runs when the arena that freed them allocates again, unless a background thread runs it:
# without one, tritonserver's resident heap grew 59 -> 73 -> 88 MB over three 20-minute runs while
# its live heap was 6 MB; with one, 19 -> 22 -> 23 MB
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000"


def find_library(name: str, dirs: Iterable[str] = LIB_DIRS) -> Path | None:
    """The first `dirs`/`name` that exists."""
    return next((Path(d, name) for d in dirs if Path(d, name).is_file()), None)


def allocator_env(choice: Allocator, env: dict[str, str], dirs: Iterable[str] = LIB_DIRS) -> tuple[dict[str, str], str]:
    """`env` with `choice` set up, and the allocator in effect (glibc when the library is missing).

    The library goes first in LD_PRELOAD, before any the caller set; settings already in `env` win."""
    library = find_library(LIBRARIES[choice], dirs) if choice in LIBRARIES else None
    if library is None:
        return {**GLIBC_TUNING, **env}, "glibc"
    preload = os.pathsep.join(filter(None, [str(library), env.get("LD_PRELOAD")]))
    extra = {"MALLOC_CONF": JEMALLOC_CONF} if choice == "jemalloc" else {}
    return {**extra, **env, "LD_PRELOAD": preload}, choice
