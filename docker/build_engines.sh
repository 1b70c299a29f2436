#!/usr/bin/env bash
# Build TensorRT-LLM Whisper engines for the `whisper` model's engine "tensorrt_llm".
#
# Run inside the Triton image (it carries TensorRT-LLM 0.16, trtllm-build and the
# example's convert_checkpoint.py), on the GPU the engines will serve on: an engine is
# specific to its GPU architecture and TensorRT-LLM version.
#
#   docker compose -f docker/compose.yaml --profile tools run --rm -v "$PWD/assets:/assets:ro" \
#       build-engines large-v3 /engines/large-v3
#   usage: build_engines.sh MODEL OUT_DIR [CHECKPOINT.pt]
#     MODEL: large-v3 | large-v3-turbo (128 mel bins) | large-v2 | medium | small | base | tiny (80 mel bins)
#     CHECKPOINT.pt: OpenAI's checkpoint file; default: $WHISPER_ASSETS/MODEL.pt (/assets)
#     TOKENIZER_JSON: the checkpoint's Hugging Face tokenizer.json; default: fetched from the Hub
#     (openai/whisper-MODEL), the one download of the build
#
# Not exercised in CI (no GPU there); the flags follow NVIDIA's Whisper example
# (TensorRT-LLM examples/whisper/README.md) and are explained one by one below.
set -euo pipefail

MODEL=${1:?model name, e.g. large-v3}
OUT=${2:?output directory, e.g. /engines/large-v3}
ASSETS=${WHISPER_ASSETS:-/assets}
CHECKPOINT=${3:-$ASSETS/$MODEL.pt}
# The image has no TensorRT-LLM examples: Dockerfile.triton fetches the v0.16.0 converter, which
# must match the runtime's version (another version's tensor names fail trtllm-build)
EXAMPLE=${TRTLLM_WHISPER_EXAMPLE:-/opt/longscribe/whisper}

# Batch: the `whisper` model's max_batch_size in the GPU image (docker/Dockerfile.triton sets 16).
MAX_BATCH_SIZE=16
# Greedy decoding, as on the CPU path. A beam_size parameter above this needs engines rebuilt with it.
MAX_BEAM_WIDTH=${MAX_BEAM_WIDTH:-1}
# float16 activations; weights int8 weight-only: half the memory, near-float accuracy on Whisper.
DTYPE=float16
WEIGHT_ONLY=int8

case "$MODEL" in
  large-v3|large-v3-turbo) N_MELS=128 ;;
  *) N_MELS=80 ;;
esac
[ -f "$CHECKPOINT" ] || { echo "no checkpoint at $CHECKPOINT (set WHISPER_ASSETS or pass its path)" >&2; exit 2; }

# The v0.16 converter has no --model_path: it loads $model_dir/$model_name.pt, and --model_name must be one of
# its choices, which lack large-v3-turbo. The name only picks the file (the layer counts, widths and mel bins
# come from the checkpoint's own "dims"), so turbo's checkpoint goes in under large-v3's name.
case "$MODEL" in
  large-v3-turbo) CONVERTER_NAME=large-v3 ;;
  *) CONVERTER_NAME=$MODEL ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/assets" "$OUT"
ln -s "$(readlink -f "$CHECKPOINT")" "$work/assets/$CONVERTER_NAME.pt"

python3 "$EXAMPLE/convert_checkpoint.py" \
  --model_dir "$work/assets" --model_name "$CONVERTER_NAME" \
  --dtype "$DTYPE" --use_weight_only --weight_only_precision "$WEIGHT_ONLY" \
  --output_dir "$work/checkpoint"

# Encoder: one 30 s window is 3000 mel frames in, 1500 positions out. No GEMM plugin
# (TensorRT's own kernels win for the encoder); the BERT attention plugin fuses its attention.
trtllm-build --checkpoint_dir "$work/checkpoint/encoder" --output_dir "$OUT/encoder" \
  --moe_plugin disable \
  --max_batch_size "$MAX_BATCH_SIZE" \
  --gemm_plugin disable \
  --bert_attention_plugin "$DTYPE" \
  --max_input_len 3000 --max_seq_len 3000 \
  --max_num_tokens $((MAX_BATCH_SIZE * 3000))  # the default 8192 would run two windows per step

# Decoder: inputs of at most 208 tokens (a prompt's 200 with <|startofprev|>, then
# <|startoftranscript|><|lang|><|transcribe|>), 224 generated tokens (half of Whisper's 448-token context, as the CPU engine),
# cross-attention over the encoder's 3000-frame input. Paged KV cache and packed inputs
# are what the C++ runtime (ModelRunnerCpp) needs for in-flight batching. The engine scores from the
# logits it gathers (context: the no-speech probability after <|startoftranscript|>; generation: each
# token's log-probability, which the runtime has reported as zeros at greedy) and refuses to load without.
trtllm-build --checkpoint_dir "$work/checkpoint/decoder" --output_dir "$OUT/decoder" \
  --moe_plugin disable \
  --max_beam_width "$MAX_BEAM_WIDTH" \
  --max_batch_size "$MAX_BATCH_SIZE" \
  --max_input_len 208 --max_seq_len 432 \
  --max_encoder_input_len 3000 \
  --gemm_plugin "$DTYPE" \
  --bert_attention_plugin "$DTYPE" \
  --gpt_attention_plugin "$DTYPE" \
  --paged_kv_cache enable --remove_input_padding enable \
  --gather_context_logits --gather_generation_logits

# The engine reads the tokenizer beside the engines; the mel bin count is in encoder/config.json.
if [ -n "${TOKENIZER_JSON:-}" ]; then
  cp "$TOKENIZER_JSON" "$OUT/tokenizer.json"
else
  python3 -c 'import sys; from tokenizers import Tokenizer; Tokenizer.from_pretrained("openai/whisper-" + sys.argv[1]).save(sys.argv[2])' \
    "$MODEL" "$OUT/tokenizer.json"
fi
echo "built $MODEL ($N_MELS mel bins) into $OUT: set LONGSCRIBE_WHISPER_ENGINE=tensorrt_llm LONGSCRIBE_WHISPER_MODEL=$OUT"
