#!/usr/bin/env bash
# The runtime-kernel rows of docs/benchmarks.md: uniform K4V4 and K8V8 plans of
# specs/stories260K.yaml measured by `kvc eval` through the runtime's store with the
# reference kernels, the generated (llvm-jit) kernels and the int8-dot kernels,
# 8 sampled sequences x 512 tokens (prompt 256, seed 0).
# Usage: scripts/runtime-kernels-table.sh [MODEL] (default ../shared/models/stories260K.bin)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-${KVC_SHARED_MODELS_DIR:-$root/../shared/models}/stories260K.bin}"
"$root/scripts/setup.sh" "$root/build" >&2
kvc="$root/build/tools/kvc"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
echo "| plan | kernels | mean KL | max KL | top-1 | ppl plan |"
echo "| --- | --- | --- | --- | --- | --- |"
for plan in K4V4 K8V8; do
  "$kvc" compile "$root/specs/stories260K.yaml" -p "uniform<$plan>,estimate" -o "$tmp/$plan" >/dev/null
  for kernels in "reference" "llvm-jit" "llvm-jit --int8-dot"; do
    "$kvc" eval --model "$model" --plan "$tmp/$plan/plan.kvc" --cache runtime --backend $kernels --sequences 8 \
      --length 512 --prompt 256 --seed 0 --json 2>/dev/null > "$tmp/$plan-${kernels// /}.json"
  done
  python3 - "$plan" "$tmp/$plan-reference.json" "$tmp/$plan-llvm-jit.json" "$tmp/$plan-llvm-jit--int8-dot.json" <<'PY'
import json, sys
js = [json.load(open(p)) for p in sys.argv[2:]]
col = lambda k, f: " / ".join(format(j[k], f) for j in js)
print(f"| {sys.argv[1]} | reference / llvm-jit / llvm-jit int8-dot | {col('kl_mean', '.6g')} | {col('kl_max', '.4g')} "
      f"| {col('top1_agreement', '.3f')} | {col('ppl_plan', '.4g')} |")
PY
done
