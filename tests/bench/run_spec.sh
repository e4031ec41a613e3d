#!/usr/bin/env bash
# Speculative decoding, single stream: decode tokens/s of chatd without speculation, with
# n-gram drafts and with a draft model, and of the reference peer's server without and
# with the same draft model (-md), on a target / draft pair that agrees by construction:
#   tests/bench/run_spec.sh [PEER_SERVER_BINARY] [ROUNDS] [TOKENS] [RESIDUAL_SCALE]
# chatd drafts draft_max (5) tokens every step; the peer runs with its own defaults and
# with that policy. The pair (written once into $SPEC_DIR, default /tmp/chatd-spec): bench-llama in Q8_0
# whose attn_output / ffn_down are scaled by RESIDUAL_SCALE (default 0.0002), so each layer
# changes the residual stream little, and the same seed with one layer in Q4_0 as the
# draft (the same embeddings and output matrix, Q8_0 in both). Rounds are interleaved;
# each prints chat_bench's table (decode tok/s excludes the time to first token) and the
# acceptance ratio from chatd's /metrics.
set -euo pipefail
peer=${1:-}
rounds=${2:-2}
tokens=${3:-128}
scale=${4:-0.0002}
here=$(cd "$(dirname "$0")/../.." && pwd)
chatd=${CHATD:-$here/build/chatd}
dir=${SPEC_DIR:-/tmp/chatd-spec}
mkdir -p "$dir"
vocab=$here/tests/fixtures/tokenizer/ggml-vocab-llama-spm.gguf
target=$dir/target-$scale.gguf
draft=$dir/draft-$scale.gguf
[ -f "$target" ] || "$chatd" gen-model --preset bench-llama --arch llama --vocab "$vocab" \
    --type q8_0 --residual-scale "$scale" --out "$target"
[ -f "$draft" ] || "$chatd" gen-model --preset bench-llama --arch llama --vocab "$vocab" \
    --type q4_0 --n-layer 1 --residual-scale "$scale" --out "$draft"
run=$here/tests/bench/run_concurrency.sh
for r in $(seq "$rounds"); do
    echo "#### round $r: chatd, no speculation"
    "$run" "$target" "" 1 "$tokens"
    echo "#### round $r: chatd, n-gram drafts"
    EXTRA_ARGS="--spec ngram" "$run" "$target" "" 1 "$tokens"
    echo "#### round $r: chatd, draft model"
    EXTRA_ARGS="--draft-model $draft" "$run" "$target" "" 1 "$tokens"
    if [ -n "$peer" ]; then
        echo "#### round $r: peer, no speculation"
        PEER_ONLY=1 "$run" "$target" "$peer" 1 "$tokens"
        echo "#### round $r: peer, draft model (its defaults: up to 16 drafts while p >= 0.8)"
        PEER_ARGS="-md $draft" PEER_ONLY=1 "$run" "$target" "$peer" 1 "$tokens"
        echo "#### round $r: peer, draft model, chatd's policy (always 5 drafts)"
        PEER_ARGS="-md $draft --draft-max 5 --draft-min 0 --draft-p-min 0" PEER_ONLY=1 \
            "$run" "$target" "$peer" 1 "$tokens"
    fi
done
