#!/usr/bin/env bash
# Benchmark (not a test): save-to-new-video latency of `parender watch` for
# one-scene edits in the example lecture (the first and the last animation of
# scenes/05_formula.py, and their reverts) beside a cold `manim render -ql` of
# that scene alone. Now the `edit` section of scripts/bench.sh, which see.
#   RUNS=5 scripts/bench-watch.sh
set -euo pipefail
RUNS=${RUNS:-4} SKIP=release,preview,small,noop exec "$(dirname "$0")/bench.sh"
