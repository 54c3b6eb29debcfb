#!/usr/bin/env bash
# The cache-format table on stories3M: every key format family x value format family
# at 8, 4, 3 and 2 bits as a uniform plan (group 32, residual 32; specs/stories3M.yaml),
# each measured by `kvc eval` on held-out text (data/text/heldout.txt, 8 x 512
# tokens, prompt 256; the reference kernels run every format).
#   key families:   KIVI (per channel), t (per token, unrotated), tr (per token,
#                   Hadamard-rotated), cr (rotated Lloyd-Max codebook)
#   value families: KIVI (per token, groups of 32), tr, cr
# The codebook has no 8-bit table, so its 8-bit rows are absent.
# Usage: scripts/formats_table.sh [MODEL] [SEQUENCES] (default ../shared/models/stories3M-q80.bin, 8)
# Prints markdown; progress goes to stderr.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-${KVC_SHARED_MODELS_DIR:-$root/../shared/models}/stories3M-q80.bin}"
sequences="${2:-8}"
"$root/scripts/setup.sh" "$root/build" >&2
kvc="$root/build/tools/kvc"
if [ -n "${KVC_RESULTS_DIR:-}" ]; then tmp="$KVC_RESULTS_DIR"; mkdir -p "$tmp"
else tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT; fi
heldout="$root/data/text/heldout.txt"

row() {  # row BITS PAIR: compile, evaluate and print one table row
  local bits="$1" pair="$2"
  "$kvc" compile "$root/specs/stories3M.yaml" -p "uniform<$pair>,estimate" -o "$tmp/$pair" >/dev/null
  echo "kvc eval $pair" >&2
  "$kvc" eval --model "$model" --plan "$tmp/$pair/plan.kvc" --text "$heldout" --sequences "$sequences" --length 512 \
    --prompt 256 --json 2>/dev/null > "$tmp/$pair.json"
  python3 - "$tmp/$pair.json" "$bits" "$pair" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {sys.argv[3]} | {j['bytes_plan']} | {j['kl_mean']:.4g} | {j['top1_agreement']:.3f} | {j['ppl_plan']:.3f} |")
PY
}

echo "| bits | pair | bytes/sequence | mean KL | top-1 agreement | perplexity |"
echo "| --- | --- | --- | --- | --- | --- |"
row 16 fp16
for bits in 8 4 3 2; do
  for key in "" t tr cr; do
    for value in "" tr cr; do
      [ "$bits" = 8 ] && { [ "$key" = cr ] || [ "$value" = cr ]; } && continue
      row "$bits" "K$bits${key}V$bits${value}"
    done
  done
done
