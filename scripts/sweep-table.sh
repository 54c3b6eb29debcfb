#!/usr/bin/env bash
# Regenerates the README's search table: every method's plan of stories260K at 50%,
# 25%, 15% and 10% of the fp16 cache, measured (KL, top-1) and predicted. Calibrates
# in-process (4 x 512 tokens, the end-to-end probes on those sequences), then
# evaluates every plan on 2 other sequences x 512 tokens (seeds 1000, 1001).
#   scripts/sweep-table.sh [BUILD_DIR] [extra kvc sweep options, e.g. --json]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build}"
shift || true
models="${KVC_SHARED_MODELS_DIR:-$root/../shared/models}"
exec "$build/tools/kvc" sweep --model "$models/stories260K.bin" --spec "$root/specs/stories260K-search.yaml" \
  --budgets 0.5,0.25,0.15,0.1 --sequences 2 --length 512 --calibration-sequences 4 --calibration-length 512 "$@"
