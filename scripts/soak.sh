#!/usr/bin/env bash
# The runtime soak (tests/runtime/soak.h) for SECONDS (default 600), outside CI:
# two host threads drive sequences of a mixed plan through the C API, half the
# time on the reference backend (outputs bit-identical to the reference caches;
# the plan has its rotated layers there), half on llvm-jit (to 1e-5 of their
# norm; rotated layers only once it generates them), with the memory statistics checked
# against the plan's estimate after every operation. It runs in the ASan build
# (build-asan) with LeakSanitizer on: a leak fails the run. (LLVM's JIT leaves
# nothing LeakSanitizer reports once the runtime is destroyed, so nothing is
# suppressed; a runtime left undestroyed is reported.)
# Usage: scripts/soak.sh [SECONDS] [THREADS]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-600}"
threads="${2:-2}"
build="${KVC_SOAK_BUILD:-$root/build-asan}"

export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(dirname "$root")}"
cmake -S "$root" -B "$build" -G Ninja -DKVC_SANITIZE=ON -DKVC_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target runtime_soak

half="$(awk -v s="$seconds" 'BEGIN { printf "%.3f", s / 2 }')"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for backend in reference llvm-jit; do
  echo "== soak: $backend, $threads threads, ${half}s" >&2
  "$build/tests/runtime/runtime_soak" --seconds "$half" --threads "$threads" --backend "$backend" \
    --seed "${KVC_SOAK_SEED:-1}" || status=1
done
exit "$status"
