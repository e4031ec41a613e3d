#!/usr/bin/env bash
# Concurrent streams over HTTP, chatd and (optionally) the reference peer's server, one
# after the other on the same GGUF file and the same slot count, with the same client:
#   tests/bench/run_concurrency.sh MODEL.gguf [PEER_SERVER_BINARY] [LEVELS] [TOKENS] [THREADS]
# BACKEND=vulkan runs chatd on its Vulkan backend; PEER_ARGS adds options to the peer's
# command line (e.g. PEER_ARGS="-ngl 99" to offload all layers to its Vulkan device).
# Prints, per server, aggregate decode tokens/s and client-side TTFT / inter-token
# latency percentiles at each concurrency level (build/tests/bench/chat_bench concurrency).
# MODE=arrival instead runs `chat_bench arrival`: the first level's streams decode TOKENS
# tokens and a request with a WORDS-word prompt (default 400) arrives; prints how long
# its prefill holds up their tokens. EXTRA_ARGS adds options to chatd's command line
# (with speculative decoding, the drafts' acceptance ratio from /metrics is printed too);
# PEER_ONLY=1 runs only the peer.
set -euo pipefail
model=${1:?usage: run_concurrency.sh MODEL.gguf [PEER_SERVER] [LEVELS] [TOKENS] [THREADS]}
peer=${2:-}
levels=${3:-1,2,4,8,16}
tokens=${4:-64}
threads=${5:-2}
here=$(cd "$(dirname "$0")/../.." && pwd)
chatd=${CHATD:-$here/build/chatd}
client=$here/build/tests/bench/chat_bench
slots=$(echo "$levels" | tr ',' '\n' | sort -n | tail -1)
[ "${MODE:-concurrency}" = arrival ] && slots=$((${levels%%,*} + 1)) # the newcomer's slot
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT

wait_up() {
    for _ in $(seq 600); do
        curl -fs "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "server on port $1 did not start" >&2
    return 1
}

run_client() {
    if [ "${MODE:-concurrency}" = arrival ]; then
        "$client" arrival --url "http://127.0.0.1:$1" --levels "${levels%%,*}" \
            --tokens "$tokens" --words "${WORDS:-400}"
    else
        "$client" concurrency --url "http://127.0.0.1:$1" --levels "$levels" --tokens "$tokens"
    fi
}

port=$((20000 + RANDOM % 20000))
if [ -z "${PEER_ONLY:-}" ]; then
    echo "== chatd ($(basename "$model"), $slots slots, $threads threads, $tokens tokens per stream)"
    "$chatd" serve --model "$model" --port $port --db "$tmp/bench.db" --parallel "$slots" \
        --threads "$threads" --ctx-size 1024 --backend "${BACKEND:-cpu}" --log-level warn \
        ${EXTRA_ARGS:-} &
    pid=$!
    wait_up $port
    run_client $port
    curl -fs "http://127.0.0.1:$port/metrics" | grep '^chatd_draft_acceptance_ratio' || true
    kill $pid; wait $pid 2>/dev/null || true
fi

if [ -n "$peer" ] && [ -x "$peer" ]; then
    port=$((port + 1))
    echo "== reference peer server ($(basename "$peer"), same model, $slots slots)"
    "$peer" -m "$model" --host 127.0.0.1 --port $port -np "$slots" -c $((slots * 1024)) \
        -t "$threads" ${PEER_ARGS:-} >"$tmp/peer.log" 2>&1 &
    pid=$!
    wait_up $port
    run_client $port
    kill $pid; wait $pid 2>/dev/null || true
fi
