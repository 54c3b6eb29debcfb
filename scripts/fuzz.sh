#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (clang, ASan + UBSan, into build-fuzz)
# and runs each for SECONDS (default 60), one after another, then prints every
# target's executions, coverage and whether it found something.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (targets: fuzz/CMakeLists.txt)
#        scripts/fuzz.sh --smoke     build, then CTest's fuzz_smoke tests (each target
#                                    over its corpus and regressions, then 2 s of
#                                    fuzzing): what scripts/test.sh runs.
#
# Each target keeps what it learns in build-fuzz/fuzz/work/TARGET (seeded from the
# committed corpus fuzz/corpus/TARGET and fuzz/regressions/TARGET, which are only
# read); a finding is written to build-fuzz/fuzz/work/TARGET-findings/ and the
# script exits 1. Turn a finding into a regression: fix it, then copy the input
# into fuzz/regressions/TARGET/ (the normal build replays that folder in CTest).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
seconds="${1:-60}"; shift || true
build="${KVC_FUZZ_BUILD:-$root/build-fuzz}"

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ is needed (apt-get install clang)" >&2; exit 2; }
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(dirname "$root")}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKVC_FUZZ=ON \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build "$build" -j "$(nproc)"
if ((smoke)); then
  exec ctest --test-dir "$build" --output-on-failure -j "$(nproc)" -L fuzz
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(sed -n 's/^kvc_fuzz_target(\([a-z0-9_]*\).*/\1/p' "$root/fuzz/CMakeLists.txt")
fi

status=0
summary=()
for t in "${targets[@]}"; do
  work="$build/fuzz/work/$t"
  findings="$build/fuzz/work/$t-findings"
  log="$build/fuzz/work/$t.log"
  mkdir -p "$work" "$findings"
  echo "== fuzz_$t for ${seconds}s" >&2
  rc=0
  # -rss_limit_mb: a reader must refuse a file claiming gigabytes, not allocate them.
  "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$findings/" "$work" "$root/fuzz/corpus/$t" \
    $( [ -d "$root/fuzz/regressions/$t" ] && echo "$root/fuzz/regressions/$t" ) >"$log" 2>&1 || rc=$?
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  ft="$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)"
  corpus="$(find "$work" -type f | wc -l)"
  verdict="ok"
  if ((rc != 0)); then
    verdict="FINDING (see $log and $findings)"
    status=1
  fi
  summary+=("$(printf '%-12s execs %-10s cov %-6s ft %-6s corpus %-6s %s' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$corpus" "$verdict")")
done
echo
echo "fuzz.sh: ${seconds}s per target"
printf '%s\n' "${summary[@]}"
exit "$status"
