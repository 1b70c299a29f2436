"""`make gpu-smoke`, the first step on a GPU host, says plainly when there is no GPU, and its own
helpers (a WER without the test extras, which the Triton image lacks) are right."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "docker"))

import gpu_smoke  # noqa: E402


@pytest.mark.skipif(gpu_smoke.no_gpu_reason() is None, reason="a GPU host: the smoke would run for real")
def test_without_a_gpu_it_checks_nothing_and_says_so() -> None:
    done = subprocess.run([sys.executable, str(REPO / "docker" / "gpu_smoke.py")], capture_output=True, text=True)
    assert done.returncode == gpu_smoke.NO_GPU == 2
    assert done.stdout.startswith("no GPU: ") and "Nothing was checked" in done.stdout
    assert "PASS" not in done.stdout


def test_make_runs_it_in_the_triton_image_on_a_gpu_host() -> None:
    makefile = (REPO / "Makefile").read_text()
    target = makefile[makefile.index("\ngpu-smoke:") :].split("\n\n")[0]
    assert "docker/gpu_smoke.py" in target and "--gpus all" in target and "$(GPU_IMAGE)" in target


def test_its_word_error_rate_ignores_case_and_punctuation() -> None:
    assert gpu_smoke.word_error_rate(gpu_smoke.JFK_TEXT, gpu_smoke.JFK_TEXT.upper().replace(",", "")) == 0.0
    assert gpu_smoke.word_error_rate("ask not what", "ask what") == pytest.approx(1 / 3)
    assert gpu_smoke.word_error_rate("a b", "a b c d") == 1.0
