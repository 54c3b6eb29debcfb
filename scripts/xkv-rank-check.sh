#!/usr/bin/env bash
# Measures what key rank costs on stories260K at 50% of the fp16 cache: every uniform
# precision pair that keeps every token, at full key rank and at per-KV-head ranks 7..2
# (bases shared by layers 0-3 and by layer 4, from the prefill, as xkv plans them),
# on the sweep's evaluation sequences (2 x 512 tokens, seeds 1000-1001). Prints the
# plans that fit the budget, lowest KL first: the evidence (docs/benchmarks.md) that no low-rank
# plan of this model beats uniform K4V4 (kivi) at 50%.
#   scripts/xkv-rank-check.sh [BUILD_DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
models="${KVC_SHARED_MODELS_DIR:-$root/../shared/models}"
budget=163840  # 50% of the 320 KiB fp16 cache of one 512-token sequence
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

plan() {  # K bits, V bits, rank (8 = full keys)
  printf '; kvc plan v1\nmodule "stories260K" {\n'
  printf '  model    layers=5 q_heads=8 kv_heads=4 head_dim=8 rope_theta=10000 cache=fp16\n'
  printf '  workload context=512 batch=1 generate=256\n  budget   bytes=%d\n}\n' "$budget"
  for layer in 0 1 2 3 4; do
    local rank=none
    if [ "$3" -lt 8 ]; then rank="$3/cross-layer(group=$((layer < 4 ? 0 : 1)),source=prefill)"; fi
    printf 'layer %d: k=int%d/per-channel/g32 v=int%d/per-token/g8 residual=32 keep=full rank=%s\n' \
      "$layer" "$1" "$2" "$rank"
  done
}

echo "K V rank kl_mean bytes"
for kv in "8 8" "8 4" "4 8" "4 4" "8 2" "4 2" "2 8" "2 4" "2 2"; do
  for rank in 8 7 6 5 4 3 2; do
    # shellcheck disable=SC2086
    plan $kv "$rank" >"$work/plan.kvc"
    "$build/tools/kvc" eval --model "$models/stories260K.bin" --plan "$work/plan.kvc" --sequences 2 --length 512 \
      --seed 1000 --json 2>/dev/null >"$work/eval.json"
    kl=$(sed -n 's/.*"kl_mean": *\([0-9.eE+-]*\).*/\1/p' "$work/eval.json")
    bytes=$(sed -n 's/.*"bytes_plan": *\([0-9]*\).*/\1/p' "$work/eval.json")
    if [ "$bytes" -le "$budget" ]; then
      # shellcheck disable=SC2086
      echo $kv "$rank" "$kl" "$bytes"
    fi
  done
done | sort -g -k4
