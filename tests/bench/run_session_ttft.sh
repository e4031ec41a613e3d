#!/usr/bin/env bash
# Time to first token per turn of one 20-turn session, with the KV prefix reuse on and
# off (--kv-reuse 1 / 0), on the same model:
#   tests/bench/run_session_ttft.sh MODEL.gguf [TURNS] [WORDS] [THREADS]
set -euo pipefail
model=${1:?usage: run_session_ttft.sh MODEL.gguf [TURNS] [WORDS] [THREADS]}
turns=${2:-20}
words=${3:-60}
threads=${4:-2}
here=$(cd "$(dirname "$0")/../.." && pwd)
chatd=${CHATD:-$here/build/chatd}
tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
for reuse in 1 0; do
    port=$((20000 + RANDOM % 20000))
    "$chatd" serve --model "$model" --port $port --db "$tmp/ttft-$reuse.db" --parallel 1 \
        --threads "$threads" --ctx-size 4096 --kv-reuse $reuse --backend "${BACKEND:-cpu}" \
        --log-level warn &
    pid=$!
    for _ in $(seq 600); do curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 0.1; done
    echo "== kv_reuse=$reuse"
    "$here/build/tests/bench/chat_bench" session --url "http://127.0.0.1:$port" --turns "$turns" \
        --words "$words" --tokens 16
    kill $pid; wait $pid 2>/dev/null || true
    pid=
done
