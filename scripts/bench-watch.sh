#!/usr/bin/env bash
# Benchmark (not a test): save-to-new-video latency of `parender watch` for a
# one-scene edit in the example lecture, beside the render time of that scene
# alone with plain `manim render` (what the edit costs without parender).
#   RUNS=5 scripts/bench-watch.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cargo build --release --quiet
BIN=$ROOT/target/release/parender
PY=$ROOT/.venv/bin/python
RUNS=${RUNS:-4}
work=$(mktemp -d)
log=$work/watch.jsonl
cleanup() { [ -n "${wpid:-}" ] && kill -INT "$wpid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

proj=$work/lecture
mkdir -p "$proj"
cp -r examples/lecture/scenes examples/lecture/audio "$proj/"
printf 'python = "%s"\nname = "lecture"\n' "$PY" > "$proj/parender.toml"
scene=$proj/scenes/05_formula.py

finished() { grep -c '"reason":"build-finished"' "$log" 2>/dev/null || true; }
wait_build() { # wait for build-finished number $1
  while [ "$(finished)" -lt "$1" ]; do sleep 0.02; done
}

(cd "$proj" && exec "$BIN" watch --message-format json > "$log" 2>/dev/null) &
wpid=$!
echo "initial build of the example under watch..." >&2
wait_build 1
n=1
lat=()
for i in $(seq "$RUNS"); do
  # A visible change: the run time of one animation alternates.
  rt=$(( i % 2 == 1 ? 2 : 1 ))
  t0=$(date +%s%N)
  sed -i "s/self.play(FadeIn(note, shift=0.2 \* DOWN), run_time=[0-9.]*)/self.play(FadeIn(note, shift=0.2 * DOWN), run_time=$rt.5)/" "$scene"
  n=$((n + 1))
  wait_build "$n"
  t1=$(date +%s%N)
  lat+=($(( (t1 - t0) / 1000000 )))
done
grep '"reason":"build-finished"' "$log" | tail -n +2 | grep -q '"rendered":1' || { echo "edits did not re-render one scene" >&2; exit 1; }

# The same scene rendered alone with plain Manim (fresh media folder each time).
alone=()
for i in $(seq "$RUNS"); do
  t0=$(date +%s%N)
  (cd "$proj" && "$PY" -m manim render -ql --silent --media_dir "$work/m$i" scenes/05_formula.py Formula >/dev/null 2>&1)
  t1=$(date +%s%N)
  alone+=($(( (t1 - t0) / 1000000 )))
done
med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
l=$(med "${lat[@]}"); a=$(med "${alone[@]}")
printf '\n%-52s %8s\n' "one-scene edit, example lecture (median of $RUNS)" "time"
printf '%-52s %6s ms\n' "save -> new final video with parender watch" "$l"
printf '%-52s %6s ms\n' "plain \`manim render -ql\` of that scene alone" "$a"
printf '%-52s %6.2fx\n' "ratio" "$(echo "$l / $a" | bc -l)"
