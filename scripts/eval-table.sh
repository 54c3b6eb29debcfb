#!/usr/bin/env bash
# Reproduces README's stories260K quality table: uniform KIVI-style plans (group 32,
# residual 32) and the default plan of specs/stories260K.yaml, each measured with
# `kvc eval` on 8 sampled sequences x 512 tokens (prompt 256, seed 0).
# Usage: scripts/eval-table.sh [MODEL] (default ../shared/models/stories260K.bin)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-${KVC_SHARED_MODELS_DIR:-$root/../shared/models}/stories260K.bin}"
"$root/scripts/setup.sh" "$root/build" >&2
kvc="$root/build/tools/kvc"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
echo "| plan | bytes/sequence | mean KL | max KL | top-1 agreement | ppl full | ppl plan |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for plan in fp16 K8V8 K4V4 K4V2 K2V2 default; do
  if [ "$plan" = default ]; then pipeline="uniform,estimate,legalize"; else pipeline="uniform<$plan>,estimate"; fi
  "$kvc" compile "$root/specs/stories260K.yaml" -p "$pipeline" -o "$tmp/$plan" >/dev/null
  "$kvc" eval --model "$model" --plan "$tmp/$plan/plan.kvc" --sequences 8 --length 512 --prompt 256 --seed 0 --json \
    2>/dev/null > "$tmp/$plan.json"
  name="$plan"; [ "$plan" = default ] && name="specs/stories260K.yaml (ratio 0.25)"
  python3 - "$tmp/$plan.json" "$name" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {j['bytes_plan']} | {j['kl_mean']:.4g} | {j['kl_max']:.4g} | {j['top1_agreement']:.3f} | {j['ppl_full']:.3f} | {j['ppl_plan']:.3f} |")
PY
done
