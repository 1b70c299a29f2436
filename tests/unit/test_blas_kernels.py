"""numpy in Triton's stubs runs OpenBLAS kernels for the CPU it has, not the SSE3 ones it falls back to: under
`longscribe serve` and in the Triton image alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from longscribe_core import blas as core
from orchestrator.infer import blas

from ..corpus import REPO

AVX512 = core.SKYLAKEX | core.HASWELL | {"sse4_2", "avx"}


def test_a_cpu_openblas_does_not_know_gets_the_kernels_its_flags_allow() -> None:
    assert core.coretype("Prescott", frozenset(AVX512)) == "SkylakeX"
    assert core.coretype("Nehalem", frozenset({"avx", "avx2", "fma"})) == "Haswell"
    assert core.coretype("Prescott", frozenset({"sse3", "ssse3"})) is None, "nothing better to run"
    for known in ("Haswell", "SkylakeX", "Zen", "SapphireRapids", None):
        assert core.coretype(known, frozenset(AVX512)) is None, "OpenBLAS's own choice stands"


def test_the_users_own_coretype_is_kept() -> None:
    assert blas.blas_env({"OPENBLAS_CORETYPE": "Haswell"}) == {"OPENBLAS_CORETYPE": "Haswell"}


def test_the_flags_are_read_from_the_kernels_cpuinfo(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert core.cpu_flags(info) == {"fpu", "sse", "avx2", "fma"}
    assert core.cpu_flags(tmp_path / "missing") == frozenset()


def test_on_this_machine_the_stubs_numpy_runs_the_kernels_chosen_and_the_encoder_stays_exact() -> None:
    """On the machine the tests run on, whatever it is: the environment Triton gets names the kernels a
    numpy started with it runs, and the speaker encoder under them still matches resemblyzer and embeds a
    clip the same to the bit alone or in any batch (the two tests, run again under those kernels)."""
    env = blas.blas_env(dict(os.environ))
    expected = env.get("OPENBLAS_CORETYPE") or core.openblas_kernels()
    probe = "import numpy; from threadpoolctl import threadpool_info as t; print([i['architecture'] for i in t()][0])"
    ran = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert ran.stdout.strip().lower() == str(expected).lower()
    tests = [
        "tests/unit/test_speaker_encoder.py::test_embeddings_match_resemblyzer_and_torch",
        "tests/unit/test_speaker_encoder.py::test_a_clip_embeds_the_same_to_the_bit_alone_or_anywhere_in_any_batch",
    ]
    again = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0 and "2 passed" in again.stdout, again.stdout[-2000:]


def test_the_triton_images_entrypoint_names_the_same_kernels_and_keeps_a_set_one() -> None:
    """docker/triton_entrypoint.sh asks longscribe_core.blas with the image's python3 (here this environment's)."""
    entrypoint = REPO / "docker" / "triton_entrypoint.sh"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    show = [
        "sh",
        "-c",
        'echo "kernels=${OPENBLAS_CORETYPE:-}"',
        "sh",
        f"--model-repository={REPO / 'model_repository'}",
    ]
    for preset, expected in [
        ({}, core.coretype(core.openblas_kernels(), core.cpu_flags()) or ""),
        ({"OPENBLAS_CORETYPE": "Haswell"}, "Haswell"),
    ]:
        done = subprocess.run([str(entrypoint), *show], env={"PATH": path, **preset}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"kernels={expected}"
