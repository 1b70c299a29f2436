# longscribe: `make demo` installs everything (the client, the CLI, the orchestrator and the `server`
# extra: Triton, CTranslate2, the weights) and transcribes the bundled recording; `make test` installs
# everything and runs the tests. A client alone is `pip install .` on Python 3.11 to 3.13.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEMO   := demo/lj001-printing.mp3

.PHONY: install system-deps browser-deps demo test test-unit serve lint clean bench bench-accuracy bench-memory bench-long bench-speakers bench-paths perf soak gpu-smoke gpu-contract

install: $(STAMP)

# FFmpeg decodes media; libpython3.11 is what Triton's Python-backend stub links;
# python3-venv makes the virtual environment on a bare Debian; redis-server keeps jobs;
# libjemalloc2 is the managed Triton's malloc (glibc's grew with the audio; optional at run time).
system-deps:
	@if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null \
	  || ! /sbin/ldconfig -p | grep -q 'libpython3.11.so.1.0' \
	  || ! /sbin/ldconfig -p | grep -q 'libjemalloc.so.2' \
	  || ! command -v redis-server >/dev/null \
	  || ! $(PYTHON) -c 'import ensurepip' 2>/dev/null; then \
	  echo "installing FFmpeg, libpython3.11, python3-venv, redis-server and libjemalloc2 with apt-get"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    ffmpeg libpython3.11 python3-venv redis-server libjemalloc2; \
	fi

$(STAMP): pyproject.toml | system-deps
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "the server (make'"'"'s install) needs Python 3.11: Triton'"'"'s stub links libpython3.11; set PYTHON=python3.11 (a client alone: pip install . on 3.11 to 3.13)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,server]'
	$(BIN)/python -m pip install -q --no-deps resemblyzer==0.1.4  # the speaker encoder's weights, without torch
	touch $@

demo: install
	$(BIN)/longscribe transcribe $(DEMO) --format text

# on 127.0.0.1, to try it out: without API keys, said so (set LONGSCRIBE_API_KEYS for anything shared)
serve: install
	$(BIN)/longscribe serve --no-auth

test: install browser-deps
	$(BIN)/python -m pytest -q -rs

# the web page's end-to-end test drives Debian's Chromium (no browser download at run time)
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  echo "installing chromium and chromium-driver with apt-get (the web page's test)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	    chromium chromium-driver; \
	fi

test-unit: install
	$(BIN)/python -m pytest -q tests/unit

# longscribe vs faster-whisper (sequential and batched) on two 30-minute MP3s, the bench's and one of other
# speakers: speedup, WER, windows per audio minute, longscribe ÷ batched against 1.2, longscribe's time split
bench: install
	$(BIN)/python -m bench.speed

# peak memory (PSS) of the service (orchestrator, Triton, stubs) on 1-hour and 10-hour recordings (about 12 minutes)
bench-memory: install
	$(BIN)/python -m bench.memory

# 1-hour and 10-hour recordings as jobs, each followed by the CLI and a bare SSE client: wall time, speedup, peak memory
# of each process, the largest SSE event, the worst event-loop block, 10 h ÷ 1 h against 1.10 per process (about 10 minutes)
bench-long: install
	$(BIN)/python -m bench.long --hours 1 10

# who spoke when through the service: DER (0.25 s collar) and the count of speakers on conversations of two speaker
# sets, diarize's extra wall and CPU time over the transcription's, 1-hour and 10-hour diarized jobs: every process's
# peak memory, 10 h ÷ 1 h against 1.10, DER at hours (about 35 minutes)
bench-speakers: install
	$(BIN)/python -m bench.speakers --hours 1 10

# a 2-hour recording through the CLI, the Python client, the OpenAI endpoint (official client, upload) and the web
# page (Chromium); then who spoke when on a 2-hour conversation by REST, OpenAI diarized_json and the web page: DER
bench-paths: install browser-deps
	$(BIN)/python -m bench.paths

# perf_analyzer against the whisper and micro_chunker models, real speech as input, several concurrencies
perf: install
	@/sbin/ldconfig -p | grep -q 'libb64.so.0d' || { echo "installing libb64-0d (perf_analyzer needs it)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libb64-0d; }
	$(BIN)/python -m pip install -q -e '.[perf]'
	$(BIN)/python -m bench.perf

# 40 concurrent short requests for 60 s plus 3 long ones: only 200 or 429, and no leak afterwards; then
# 150 SSE followers and a short job posted every 2 s against a 20-minute job: only 2xx or 429, the job
# succeeds, 150/150 followers get `end`, Redis connections stay within the pool (a shorter run: SOAK_ARGS)
soak: install
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# longscribe vs faster-whisper (sequential and batched) on a long recording: WER, forced cuts, formatted WER,
# join artifacts, windows per audio minute, clip-start error
bench-accuracy: install
	$(BIN)/python -m bench.accuracy

lint: install
	$(BIN)/ruff check longscribe orchestrator model_repository tests bench
	$(BIN)/mypy longscribe orchestrator model_repository/longscribe_core

# The first thing to run on a GPU host: in the Triton image (docker/Dockerfile.triton, built as GPU_IMAGE),
# builds a tiny.en TensorRT-LLM engine into the volume longscribe-smoke (fetching the checkpoint and
# tokenizer.json once) and checks what the GPU engine assumes, one line per check (docker/gpu_smoke.py).
# Without a GPU it says so and exits 2.
GPU_IMAGE ?= longscribe-triton:0.1.0
gpu-smoke:
	@if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && command -v docker >/dev/null; then \
	  docker run --rm --gpus all -v "$(CURDIR):/src:ro" -v longscribe-smoke:/engines -w /src \
	    --entrypoint python3 $(GPU_IMAGE) docker/gpu_smoke.py --engines /engines/smoke/tiny.en; \
	else $(PYTHON) docker/gpu_smoke.py; fi

# Then the engine contract suite on that GPU: the Triton image plus the suite (docker/Dockerfile.contract),
# on the smoke engine (TensorRT-LLM) and CTranslate2 on CUDA. Without a GPU it says so and exits 2.
gpu-contract:
	@if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1 && command -v docker >/dev/null; then \
	  docker build -f docker/Dockerfile.contract --build-arg GPU_IMAGE=$(GPU_IMAGE) -t longscribe-contract . && \
	  docker run --rm --gpus all -v longscribe-smoke:/engines:ro \
	    -e LONGSCRIBE_TRTLLM_ENGINE_DIR=/engines/smoke/tiny.en longscribe-contract; \
	else echo "no GPU: make gpu-contract needs nvidia-smi, a GPU and docker (make gpu-smoke first)"; exit 2; fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
