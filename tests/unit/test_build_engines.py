"""docker/build_engines.sh calls TensorRT-LLM 0.16's Whisper converter with arguments it accepts.

No GPU or TensorRT-LLM here: the converter and trtllm-build are stand-ins that check and record
their arguments. The stand-in converter has the argument surface of v0.16's
examples/whisper/convert_checkpoint.py: --model_name is one of a fixed list (no large-v3-turbo, no
--model_path), and the checkpoint it loads is <model_dir>/<model_name>.pt.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "docker" / "build_engines.sh"

# v0.16's --model_name choices (examples/whisper/convert_checkpoint.py, parse_arguments)
CONVERTER = """
import argparse, json, os, sys
parser = argparse.ArgumentParser()
parser.add_argument("--model_dir", default="assets")
parser.add_argument("--model_name", default="large-v3", choices=[
    "large-v3", "large-v2", "medium", "small", "base", "tiny", "medium.en", "small.en", "base.en", "tiny.en",
    "distil-large-v3", "distil-large-v2", "distil-medium.en", "distil-small.en"])
parser.add_argument("--dtype")
parser.add_argument("--use_weight_only", action="store_true")
parser.add_argument("--weight_only_precision")
parser.add_argument("--output_dir")
args = parser.parse_args()
path = os.path.join(args.model_dir, args.model_name + ".pt")
assert os.path.exists(path), f"Model {path} does not exist."
with open(path) as f, open(os.environ["CONVERTED"], "w") as out:
    json.dump({"model_name": args.model_name, "checkpoint": f.read()}, out)
"""


def build(model: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    example = tmp_path / "example"
    example.mkdir()
    (example / "convert_checkpoint.py").write_text(CONVERTER)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    trtllm_build = bin_dir / "trtllm-build"
    trtllm_build.write_text('#!/bin/sh\necho "$@" >> "$BUILDS"\n')
    trtllm_build.chmod(0o755)
    checkpoint = tmp_path / f"{model}.pt"
    checkpoint.write_text(f"weights of {model}")
    tokenizer = tmp_path / "tokenizer.json"
    tokenizer.write_text("{}")
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "TRTLLM_WHISPER_EXAMPLE": str(example),
        "TOKENIZER_JSON": str(tokenizer),
        "CONVERTED": str(tmp_path / "converted.json"),
        "BUILDS": str(tmp_path / "builds.txt"),
    }
    return subprocess.run(
        ["bash", str(SCRIPT), model, str(tmp_path / "engines"), str(checkpoint)],
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


@pytest.mark.parametrize(
    ("model", "converter_name"),
    [("large-v3", "large-v3"), ("large-v3-turbo", "large-v3"), ("tiny.en", "tiny.en"), ("base", "base")],
)
def test_every_model_reaches_the_converter_under_a_name_it_accepts(
    model: str, converter_name: str, tmp_path: Path
) -> None:
    done = build(model, tmp_path)
    assert done.returncode == 0, done.stderr
    converted = (tmp_path / "converted.json").read_text()
    assert f'"model_name": "{converter_name}"' in converted
    assert f"weights of {model}" in converted  # the checkpoint given, whatever name it goes in under
    builds = (tmp_path / "builds.txt").read_text().splitlines()
    assert [line.split()[1].rsplit("/", 1)[1] for line in builds] == ["encoder", "decoder"]
    assert (tmp_path / "engines" / "tokenizer.json").exists()


def test_a_missing_checkpoint_stops_before_any_work(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(SCRIPT), "large-v3-turbo", str(tmp_path / "engines"), str(tmp_path / "nothing.pt")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "no checkpoint" in done.stderr
