#!/usr/bin/env bash
# Benchmark (not a test): wall time of a no-op `parender build`, i.e. a
# rebuild after which nothing changed, for a generated 200-scene project and
# for the bundled example, side by side with a baseline run of
# `parender --version` (process start-up alone) on the same machine.
# Targets (issue 3): 200 scenes < 150 ms, the example < 50 ms.
#   N=30 scripts/bench-noop.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
cargo build --release --quiet
BIN=$ROOT/target/release/parender
PY=$ROOT/.venv/bin/python
N=${N:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Median wall time of N runs of a command, in milliseconds.
median_ms() {
  local times=()
  for _ in $(seq "$N"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}'
}

# A generated project: 200 scenes in 200 files, 10 shared helper modules
# (each imported by 20 scenes), an asset per helper, narration for half.
gen=$work/gen200
mkdir -p "$gen/scenes" "$gen/assets" "$gen/audio"
printf 'python = "%s"\n' "$PY" > "$gen/parender.toml"
for h in $(seq 0 9); do
  printf 'from manim import *\nLOGO = "assets/logo%d.svg"\n\ndef helper():\n    return Dot()\n' "$h" > "$gen/scenes/helper$h.py"
  printf '<svg xmlns="http://www.w3.org/2000/svg"><!-- %d --></svg>\n' "$h" > "$gen/assets/logo$h.svg"
done
sox -n -r 48000 -c 1 "$work/narration.wav" synth 1.5 sine 440
for i in $(seq 1 200); do
  n=$(printf '%03d' "$i")
  printf 'from manim import *\nfrom helper%d import helper\n\n\nclass Scene%s(Scene):\n    def construct(self):\n        self.add(helper())\n        self.wait(0.2)\n' "$((i % 10))" "$n" > "$gen/scenes/${n}_scene.py"
  if (( i % 2 == 0 )); then cp "$work/narration.wav" "$gen/audio/${n}_scene.wav"; fi
done
echo "first build of the generated project (fake renderer, 200 scenes)..." >&2
(cd "$gen" && PARENDER_FAKE_RENDERER=1 "$BIN" build --jobs 2 >/dev/null 2>&1)
echo "first build of the example (real Manim)..." >&2
export PARENDER_CACHE_DIR=$work/example-cache
"$BIN" build --project "$ROOT" -o "$work/example.mp4" >/dev/null 2>&1

base=$(median_ms "$BIN" --version)
gen_ms=$(cd "$gen" && PARENDER_CACHE_DIR= PARENDER_FAKE_RENDERER=1 median_ms "$BIN" build)
ex_ms=$(median_ms "$BIN" build --project "$ROOT" -o "$work/example.mp4")
# Check the no-op really was one.
(cd "$gen" && PARENDER_CACHE_DIR= PARENDER_FAKE_RENDERER=1 "$BIN" build --message-format json) | grep -q '"rendered":0,"cached":200' \
  || { echo "the 200-scene rebuild was not a no-op" >&2; exit 1; }

printf '\n%-34s %10s %10s %8s %8s\n' "no-op build (median of $N)" "time" "baseline" "ratio" "target"
printf '%-34s %8s ms %7s ms %7.1fx %5s ms\n' "generated project, 200 scenes" "$gen_ms" "$base" "$(echo "$gen_ms / $base" | bc -l)" 150
printf '%-34s %8s ms %7s ms %7.1fx %5s ms\n' "example lecture, 7 scenes" "$ex_ms" "$base" "$(echo "$ex_ms / $base" | bc -l)" 50
echo "(baseline: \`parender --version\`, process start-up alone)"
