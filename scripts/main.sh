#!/usr/bin/env bash
# The main job: install what is missing, build, and compile the example spec
# (default specs/llama-3.1-8b.yaml), printing its per-layer plan.
# Usage: scripts/main.sh [SPEC] [extra kvc compile options]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" "$root/build" >&2
spec="${1:-$root/specs/llama-3.1-8b.yaml}"; shift || true
exec "$root/build/tools/kvc" compile "$spec" "$@"
