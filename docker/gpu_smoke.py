"""`make gpu-smoke`: the first thing to run on a GPU host, in the Triton image, in under 5 minutes.

It builds a tiny.en TensorRT-LLM engine (docker/build_engines.sh; the checkpoint is fetched once,
its sha256 checked) unless one is there, loads it as the `whisper` model would, and prints one
line per check of what the TensorRT-LLM engine assumes of the runtime and of itself:

  the prompt is echoed at the start of output_ids    (engines/runtime_output.generated_part)
  the runtime's own log-probs at greedy              (information: the engine scores from the logits)
  the engine's avg_logprob is a real log-probability (not the zeros that pass every guard)
  the first generated token is a timestamp           (the prompt keeps timestamps on)
  the GPU log-mel matches longscribe_core.mel.log_mel within 1e-2
  jfk.flac's words within a WER bound, and silence heard as silence (no_speech_prob)

Exit status: 0 every check passed, 1 one failed, 2 no GPU here (nothing was checked).
Standard library and numpy at the top level: it must say "no GPU" on any machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "model_repository"))

TINY_EN_URL = (  # openai/whisper's _MODELS: the path segment is the file's sha256
    "https://openaipublic.azureedge.net/main/whisper/models/"
    "d3dd57d32accea0b295c96e26691aa14d8822fac7d9d27d5dc00b4ca2826dd03/tiny.en.pt"
)
JFK = REPO / "tests" / "data" / "jfk.flac"
JFK_TEXT = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
MAX_WER = 0.15  # tiny.en on jfk: about 0 on the CPU path
MEL_TOLERANCE = 1e-2
NO_GPU = 2


def no_gpu_reason() -> str | None:
    """Why nothing can be checked here, or None on a GPU host with the runtime."""
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode:
        return "no NVIDIA GPU (nvidia-smi finds none)"
    for module in ("torch", "tensorrt_llm"):
        if importlib.util.find_spec(module) is None:
            return f"no {module} here: run it in the Triton image (make gpu-smoke does)"
    return None


def report(ok: bool, name: str, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    return ok


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def read_jfk() -> np.ndarray:
    if importlib.util.find_spec("soundfile") is not None:
        import soundfile

        audio, rate = soundfile.read(str(JFK), dtype="float32")
        assert rate == 16_000
        return np.asarray(audio, dtype=np.float32)
    pcm = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(JFK), "-f", "s16le", "-ac", "1", "-ar", "16000", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


def built_engine(out: Path) -> Path:
    if (out / "decoder" / "config.json").exists():
        return out
    assets = out.parent / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    checkpoint = assets / "tiny.en.pt"
    if not checkpoint.exists():
        subprocess.run(["curl", "-fsSL", "-o", str(checkpoint), TINY_EN_URL], check=True)
    digest = TINY_EN_URL.split("/")[-2]
    subprocess.run(["sha256sum", "-c", "-"], input=f"{digest}  {checkpoint}\n", text=True, check=True)
    subprocess.run([str(REPO / "docker" / "build_engines.sh"), "tiny.en", str(out), str(checkpoint)], check=True)
    return out


def run_checks(engine_dir: Path) -> bool:
    import tensorrt_llm
    import transformers

    from longscribe_core.engines.base import EngineConfig
    from longscribe_core.engines.runtime_output import reports_zero_log_probs
    from longscribe_core.engines.trtllm import TensorRTLLMEngine
    from longscribe_core.mel import log_mel
    from longscribe_core.quality import MAX_NO_SPEECH_PROB
    from longscribe_core.segments import ChunkResult

    print(f"INFO versions: tensorrt_llm {tensorrt_llm.__version__}, transformers {transformers.__version__}")
    started = time.monotonic()
    engine = TensorRTLLMEngine(EngineConfig(model_path=str(built_engine(engine_dir)), engine="tensorrt_llm"))
    print(f"INFO engine: {engine_dir} loaded in {time.monotonic() - started:.0f} s (build included)")
    audio = read_jfk()
    torch = engine._torch
    prompt = engine._prompt(None)
    raw = engine._runner.generate(  # the runtime as the engine calls it, with its own log-probs asked for
        batch_input_ids=[torch.tensor(prompt, dtype=torch.int32)],
        encoder_input_features=[engine._mel(audio).transpose(0, 1).contiguous()],
        encoder_output_lengths=torch.full((1,), 1500, dtype=torch.int32, device="cuda"),
        max_new_tokens=96,
        end_id=engine._eot,
        pad_id=engine._eot,
        num_beams=1,
        output_sequence_lengths=True,
        output_log_probs=True,
        output_generation_logits=True,
        return_dict=True,
    )
    output = [int(t) for t in raw["output_ids"][0][0][: int(raw["sequence_lengths"][0][0])]]
    echoed = output[: len(prompt)] == prompt
    ok = report(echoed, "prompt in output_ids", f"output starts {output[: len(prompt) + 2]}, prompt {prompt}")
    generated = output[len(prompt) :] if echoed else output
    zeros = reports_zero_log_probs([raw["log_probs"][0][0][: len(generated)].tolist()])
    print(f"INFO runtime log-probs at greedy: {'all zero (as #276; unused)' if zeros else 'non-zero'}")
    first = generated[0] if generated else None
    ok &= report(first is not None and first >= engine._timestamp_begin, "timestamp first", f"first token {first}")
    gpu_mel = engine._mel(audio).float().cpu().numpy()
    gap = float(np.max(np.abs(gpu_mel - log_mel(audio, engine.n_mels))))
    ok &= report(gap <= MEL_TOLERANCE, "mel parity", f"max |GPU - log_mel| = {gap:.2e} (bound {MEL_TOLERANCE})")
    (heard,) = engine.transcribe([audio], "en")
    assert isinstance(heard, ChunkResult), heard
    score = heard.segments[0].avg_logprob if heard.segments else 0.0
    ok &= report(-5.0 < score < 0.0, "avg_logprob", f"{score:.3f} on jfk (a real log-probability is below 0)")
    text = " ".join(s.text for s in heard.segments)
    error = word_error_rate(JFK_TEXT, text)
    ok &= report(error <= MAX_WER, "jfk WER", f"{error:.3f} (bound {MAX_WER}): {text!r}")
    silence = np.zeros(30 * 16_000, dtype=np.float32)
    _, _, (quiet, speech) = engine._generate([silence, audio], [prompt, prompt], 8, 0.0)
    ok &= report(
        quiet > MAX_NO_SPEECH_PROB > speech,
        "no_speech_prob",
        f"{quiet:.3f} on 30 s of zeros, {speech:.3f} on jfk (the silence exit needs above {MAX_NO_SPEECH_PROB})",
    )
    print(f"INFO total: {time.monotonic() - started:.0f} s")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", type=Path, default=Path("/engines/smoke/tiny.en"), help="built here if missing")
    args = parser.parse_args(argv)
    reason = no_gpu_reason()
    if reason is not None:
        print(f"no GPU: {reason}. Nothing was checked; on a GPU host run `make gpu-smoke`.")
        return NO_GPU
    return 0 if run_checks(args.engines) else 1


if __name__ == "__main__":
    sys.exit(main())
