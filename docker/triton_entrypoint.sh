#!/bin/sh
# The Triton image's entrypoint. The capacity model's one number, LONGSCRIBE_CHUNKS_PER_TRITON
# (set for Triton and the orchestrators alike), becomes micro_chunker's instance count: one
# instance per macro chunk in flight, so none waits inside Triton. Unset: config.pbtxt's count.
# Then the command runs as given (the image passes NVIDIA's entrypoint and tritonserver), with
# Triton's own access control added: its model-repository API (load, unload, index; loading a
# model runs its code), shared memory, trace and logging answer only requests whose header
# longscribe-admin-token (gRPC: triton-grpc-protocol-longscribe-admin-token) is
# LONGSCRIBE_TRITON_ADMIN_TOKEN. Unset or empty: a random token nobody holds, so nobody can load or
# unload. The orchestrator needs none of these APIs (orchestrator/infer/triton_server.py locks the
# same ones for `longscribe serve`); health, metadata and the metrics port stay open for probes.
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

token="${LONGSCRIBE_TRITON_ADMIN_TOKEN:-}"
if [ -z "$token" ]; then
    token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
fi
case "$token" in
    *[!A-Za-z0-9._~-]*)
        echo "LONGSCRIBE_TRITON_ADMIN_TOKEN may hold only letters, digits and . _ ~ -" >&2
        exit 64
        ;;
esac
if [ "${#token}" -lt 32 ]; then
    echo "LONGSCRIBE_TRITON_ADMIN_TOKEN must be at least 32 characters (openssl rand -hex 32)" >&2
    exit 64
fi
# Triton's gRPC frontend keeps up to N request objects for reuse (default 8), each holding on to the
# largest macro chunk it carried: none are kept (orchestrator/infer/triton_server.py, the same for
# `longscribe serve`), so Triton does not grow with the hours it has served.
restricted="model-repository,shared-memory,trace,logging:longscribe-admin-token=$token"
# The orchestrators ping every 10 s, also between calls (orchestrator/infer/pool.py): gRPC's defaults
# would close their connections for it. The same flags as `longscribe serve` (keepalive_args).
exec "$@" "--http-restricted-api=$restricted" "--grpc-restricted-protocol=$restricted" \
    --grpc-keepalive-permit-without-calls=1 --grpc-http2-min-recv-ping-interval-without-data=5000 \
    --grpc-infer-allocation-pool-size=0
