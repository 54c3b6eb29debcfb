#!/usr/bin/env bash
# The README's stories3M tables, from the project's own text:
#   1. calibrate on data/text/calibration.txt (8 x 512 tokens; the end-to-end error
#      probes on the first 4 of them);
#   2. uniform KIVI plans and specs/stories3M.yaml's plan (joint search on those
#      stats), each measured by `kvc eval` on held-out text, data/text/heldout.txt
#      (8 x 512 tokens, prompt 256);
#   3. `kvc sweep`: every method at 50/25/15/10% of the fp16 cache, measured on the
#      first 4 x 512 tokens of the held-out text.
# Usage: scripts/stories3m_results.sh [MODEL] (default ../shared/models/stories3M-q80.bin)
# Prints markdown; progress goes to stderr. About 14 minutes on 2 cores (calibration's
# 187 end-to-end probes are most of it; the sweep about a minute).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:-${KVC_SHARED_MODELS_DIR:-$root/../shared/models}/stories3M-q80.bin}"
"$root/scripts/setup.sh" "$root/build" >&2
kvc="$root/build/tools/kvc"
# KVC_RESULTS_DIR keeps the stats, plans and JSON reports; a temporary folder otherwise.
if [ -n "${KVC_RESULTS_DIR:-}" ]; then tmp="$KVC_RESULTS_DIR"; mkdir -p "$tmp"
else tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT; fi
calibration="$root/data/text/calibration.txt"
heldout="$root/data/text/heldout.txt"

"$kvc" calibrate --model "$model" --text "$calibration" --sequences 8 --length 512 \
  --spec "$root/specs/stories3M.yaml" -o "$tmp/stories3M.kvstats" >&2
sed "s|^calibration:.*||; s|^kvc: 1|kvc: 1\ncalibration: {stats: $tmp/stories3M.kvstats}|" \
  "$root/specs/stories3M.yaml" > "$tmp/stories3M.yaml"

echo "**Uniform plans and the spec's joint plan** (held-out text, 8 x 512 tokens, prompt 256):"
echo
echo "| plan | bytes/sequence | mean KL | max KL | top-1 agreement | ppl full | ppl plan |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for plan in fp16 K8V8 K4V4 K4V2 K2V2 joint; do
  if [ "$plan" = joint ]; then pipeline=""; else pipeline="-p uniform<$plan>,estimate"; fi
  "$kvc" compile "$tmp/stories3M.yaml" $pipeline -o "$tmp/$plan" >/dev/null
  "$kvc" eval --model "$model" --plan "$tmp/$plan/plan.kvc" --text "$heldout" --sequences 8 --length 512 \
    --prompt 256 --json 2>/dev/null > "$tmp/$plan.json"
  name="$plan"; [ "$plan" = joint ] && name="specs/stories3M.yaml (joint, ratio 0.25)"
  python3 - "$tmp/$plan.json" "$name" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {j['bytes_plan']} | {j['kl_mean']:.4g} | {j['kl_max']:.4g} | {j['top1_agreement']:.3f} | {j['ppl_full']:.3f} | {j['ppl_plan']:.3f} |")
PY
done
echo
echo "**Search methods** (mean KL(full || plan) in nats on held-out text, 4 x 512 tokens; lowest per budget in bold):"
echo
start=$(date +%s)
"$kvc" sweep --model "$model" --spec "$tmp/stories3M.yaml" --stats "$tmp/stories3M.kvstats" --text "$heldout" \
  --budgets 0.5,0.25,0.15,0.1 --sequences 4 --length 512 --json > "$tmp/sweep.json"
echo "(sweep: $(( $(date +%s) - start )) s)" >&2
python3 - "$tmp/sweep.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
methods = []
for r in j["rows"]:
    if r["method"] not in methods: methods.append(r["method"])
budgets = sorted({r["budget"] for r in j["rows"]}, reverse=True)
kl = {(r["budget"], r["method"]): r["kl_mean"] for r in j["rows"]}
print("| budget | " + " | ".join(methods) + " |")
print("|---|" + "---|" * len(methods))
for b in budgets:
    best = min(v for (bb, m), v in kl.items() if bb == b)
    cells = []
    for m in methods:
        v = kl.get((b, m))
        cells.append("-" if v is None else (f"**{v:.3g}**" if v == best else f"{v:.3g}"))
    print(f"| {b:.0%} | " + " | ".join(cells) + " |")
print()
print(f"Predicted error vs measured KL over these {len(j['rows'])} plans: Spearman {j['spearman']:.3f}.")
for n in j["notes"]: print(f"- note: {n}")
PY
