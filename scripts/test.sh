#!/usr/bin/env bash
# The whole test suite: install what is missing, build, run every test under
# CTest; with clang, build the fuzz targets and run each briefly; then build the
# unit tests once more with AddressSanitizer and UndefinedBehaviorSanitizer and
# run them again.
# Set KVC_SKIP_SANITIZERS=1 to skip the second run (it roughly doubles the time).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="$(nproc)"

"$root/scripts/setup.sh" "$root/build"
ctest --test-dir "$root/build" --output-on-failure -j "$jobs"

# The libFuzzer targets keep building and run briefly where clang is installed
# (fuzz/README.md); KVC_SKIP_FUZZ=1 skips them. The long runs are scripts/fuzz.sh.
if command -v clang++ >/dev/null && [ "${KVC_SKIP_FUZZ:-0}" != "1" ]; then
  echo "== the fuzz targets: a smoke run of each ==" >&2
  "$root/scripts/fuzz.sh" --smoke
fi

if [ "${KVC_SKIP_SANITIZERS:-0}" != "1" ]; then
  echo "== the unit tests again under ASan + UBSan ==" >&2
  "$root/scripts/setup.sh" "$root/build-asan" -DKVC_SANITIZE=ON -DKVC_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
  # LLVM's JIT keeps process-lifetime allocations; leaks in kvc's own code are
  # still caught by the tests' explicit ownership (RAII everywhere).
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$root/build-asan" --output-on-failure -j "$jobs" -LE slow
fi
