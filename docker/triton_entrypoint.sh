#!/bin/sh
# The Triton image's entrypoint. The capacity model's one number, LONGSCRIBE_CHUNKS_PER_TRITON
# (set for Triton and the orchestrators alike), becomes micro_chunker's instance count: one
# instance per macro chunk in flight, so none waits inside Triton. Unset: config.pbtxt's count.
# Then the command runs as given (the image passes NVIDIA's entrypoint and tritonserver).
set -eu

repository=/models
for arg in "$@"; do
    case "$arg" in --model-repository=*) repository="${arg#*=}" ;; esac
done
chunks="${LONGSCRIBE_CHUNKS_PER_TRITON:-}"
if [ -n "$chunks" ]; then
    case "$chunks" in
        '' | *[!0-9]* | 0*)
            echo "LONGSCRIBE_CHUNKS_PER_TRITON must be a positive whole number, not '$chunks'" >&2
            exit 64
            ;;
    esac
    config="$repository/micro_chunker/config.pbtxt"
    line='^instance_group \[ \{ kind: (KIND_[A-Z]+), count: [0-9]+ \} \]$'
    sed -i -E "s/$line/instance_group [ { kind: \\1, count: $chunks } ]/" "$config"
    if ! grep -Eq "^instance_group \[ \{ kind: KIND_[A-Z]+, count: $chunks \} \]$" "$config"; then
        echo "$config: no one-line instance_group to set to $chunks instances" >&2
        exit 1
    fi
fi
exec "$@"
