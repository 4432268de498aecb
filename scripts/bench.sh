#!/usr/bin/env bash
# Benchmark (not a test): parender beside the tools it replaces, measured in
# ONE run on this machine, printed as a markdown table of ratios
# (parender ÷ baseline) with absolute times and the issue-9 targets.
#
#   scripts/bench.sh                       # everything, about 20 min on 2 cores
#   RUNS=1 N=6 SKIP=release scripts/bench.sh
#
# Sections (SKIP takes a comma- or space-separated list of their names):
#   release  clean build of examples/lecture with --release (-qh)
#   preview  the same at preview quality (-ql, the default profile)
#            Both: parender --jobs $JOBS vs the plain pipeline (one
#            `manim render` per scene in a pool of $JOBS, per-scene mux that
#            re-encodes, ffmpeg concat) vs sequential `manim`, and the lower
#            bound Σ(each scene's CPU seconds under plain manim) ÷ cores.
#   edit     one-scene edits under `parender watch` (first and last animation
#            of scenes/05_formula.py, and their reverts), save to new final
#            video, vs a cold `manim render -ql` of that scene; median of RUNS.
#   small    clean build of N generated one-second scenes (scripts/gen-scenes.py),
#            parender vs the plain pipeline.
#   noop     a revert with `parender build` (edit, build, revert, time the
#            build) and the no-op build, in ms, beside `parender --version`.
# Env: RUNS (3), CLEAN_RUNS (5: rounds of the release and preview
# sections), N (100), JOBS (nproc), NOOP_RUNS (10), SKIP, PARENDER_BIN (a
# prebuilt binary instead of `cargo build --release`), PYTHON (.venv/bin/python).
# scripts/bench-noop.sh keeps the 200-scene no-op build with the fake
# renderer; scripts/bench-watch.sh runs the edit section alone.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
RUNS=${RUNS:-3}
CLEAN_RUNS=${CLEAN_RUNS:-5}
N=${N:-100}
SKIP=${SKIP:-}
NOOP_RUNS=${NOOP_RUNS:-10}
CORES=$(nproc)
JOBS=${JOBS:-$CORES}
if [ -n "${PARENDER_BIN:-}" ]; then
  BIN=$PARENDER_BIN
else
  cargo build --release --quiet
  BIN=$ROOT/target/release/parender
fi
# Every project below keeps its cache in its own .parender/.
unset PARENDER_CACHE_DIR
export PY

work=$(mktemp -d "${TMPDIR:-/tmp}/parender-bench.XXXXXX")
started=() # background processes this script started (parender watch)
cleanup() {
  local p
  for p in "${started[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  for p in "${started[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" >&2; }
die() { say "bench: $*"; exit 1; }
skipped() { [[ ",${SKIP// /,}," == *",$1,"* ]]; }
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.3f", (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}'; }
# Prefix each line with the time it arrived (no fork per line).
stamp() { local l; while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
secs() { calc '%.1f s' "$1"; }
msecs() { calc '%.0f ms' "$1 * 1000"; }

rows=()
notes=()
# row WHAT PARENDER BASELINE RATIO TARGET MET
row() {
  rows+=("| $1 | $2 | $3 | $4 | $5 | $6 |")
  say "  => $1: $2 vs $3 ($4; target $5: $6)"
}
ratio() { calc '%.2f×' "$1 / $2"; }
met() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "yes" : "**no**" }'; }
note() { notes+=("- $*"); }

# A fresh copy of the example lecture with `python = ...`.
lecture_copy() {
  mkdir -p "$1"
  cp -r "$ROOT/examples/lecture/scenes" "$ROOT/examples/lecture/audio" "$1/"
  printf 'python = "%s"\nname = "lecture"\n' "$PY" >"$1/parender.toml"
}

# pbuild DIR LOG ARGS...: `parender build` with timestamped JSON events in
# LOG; sets ELAPSED (wall seconds) and checks that it succeeded.
pbuild() {
  local dir=$1 log=$2 t0
  shift 2
  t0=$EPOCHREALTIME
  "$BIN" build --project "$dir" --message-format json "$@" 2>"$log.err" | stamp >"$log" \
    || { tail -n 20 "$log.err" >&2; die "parender build failed in $dir"; }
  ELAPSED=$(calc '%.3f' "$EPOCHREALTIME - $t0")
  grep '"reason":"build-finished"' "$log" | grep -q '"success":true' \
    || die "parender build in $dir did not succeed (see its events)"
}
# field LINE KEY: a number from a JSON event line.
field() { sed -nE "s/.*\"$2\":([0-9.]+).*/\1/p" <<<"$1"; }
# Seconds from the last scene-finished event to build-finished in LOG.
tail_seconds() {
  local last fin
  last=$(grep '"reason":"scene-finished"' "$1" | tail -n1 | cut -d' ' -f1)
  fin=$(grep '"reason":"build-finished"' "$1" | tail -n1 | cut -d' ' -f1)
  calc '%.3f' "${fin:-0} - ${last:-$fin}"
}
vduration() { ffprobe -v error -show_entries format=duration -of csv=p=0 "$1"; }

# Scenes the simple way: `class X(...Scene...)` in scenes/*.py, files in
# natural order, classes in source order. Prints "file class" lines.
scene_list() {
  (cd "$1" && find scenes -name '*.py' | sort -V | while read -r f; do
    { grep -oE '^class[[:space:]]+[A-Za-z_][A-Za-z0-9_]*\([^)]*Scene[^)]*\)' "$f" || true; } \
      | sed -E 's/^class[[:space:]]+([A-Za-z0-9_]+).*/\1/' \
      | while read -r c; do printf '%s %s\n' "$f" "$c"; done
  done)
}

# audio_for PROJECT FILE CLASS: the narration parender would pair.
audio_for() {
  local stem=${2#scenes/} ext
  stem=${stem%.py}
  for ext in wav flac m4a mp3 ogg; do
    [ -f "$1/audio/$stem.$3.$ext" ] && { printf '%s' "$1/audio/$stem.$3.$ext"; return; }
  done
  for ext in wav flac m4a mp3 ogg; do
    [ -f "$1/audio/$stem.$ext" ] && { printf '%s' "$1/audio/$stem.$ext"; return; }
  done
  return 0
}

# mux_segment VIDEO AUDIO OUT: what a plain pipeline does per scene, with a
# re-encode: the video held on its last frame while the narration goes on,
# the audio padded with silence, to max(video, audio) in whole frames.
mux_segment() {
  local v a fps d hold ain
  v=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$1")
  fps=$(ffprobe -v error -select_streams v:0 -show_entries stream=r_frame_rate -of csv=p=0 "$1")
  if [ -n "$2" ]; then
    a=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$2")
    ain=(-i "$2")
  else
    a=0
    ain=(-f lavfi -i anullsrc=r=48000:cl=stereo)
  fi
  d=$(awk -v v="$v" -v a="$a" -v f="$fps" 'BEGIN { split(f, r, "/"); f = r[1] / r[2]; m = (a > v) ? a : v; n = int(m * f); if (n < m * f - 1e-6) n++; printf "%.6f", n / f }')
  hold=$(awk -v d="$d" -v v="$v" 'BEGIN { h = d - v; printf "%.6f", (h > 0) ? h : 0 }')
  ffmpeg -nostdin -v error -y -i "$1" "${ain[@]}" \
    -filter_complex "[0:v]tpad=stop_mode=clone:stop_duration=$hold[v];[1:a]aresample=48000,apad[a]" \
    -map '[v]' -map '[a]' -t "$d" -c:v libx264 -preset medium -crf 23 -pix_fmt yuv420p \
    -c:a aac -b:a 192k -ac 2 -movflags +faststart "$3"
}

# plain_job IDX FILE CLASS (run by xargs): one cold `manim render`, then
# the per-scene mux. Writes the start/rendered/muxed times to t/IDX.
# (Called through `export -f`, which shellcheck cannot see.)
# shellcheck disable=SC2317,SC2329
plain_job() {
  local m=$PLAIN_DIR/media/$1 t0 t1 video
  t0=$EPOCHREALTIME
  (cd "$PLAIN_PROJ" && exec "$PY" -m manim render "$PLAIN_Q" --silent --disable_caching \
    --media_dir "$m" "$2" "$3") >"$PLAIN_DIR/log/$1.log" 2>&1 \
    || { echo "manim failed on $2 $3 (log: $PLAIN_DIR/log/$1.log)" >&2; return 255; }
  t1=$EPOCHREALTIME
  video=$(find "$m/videos" -name "$3.mp4" -not -path '*/partial_movie_files/*' | head -n1)
  mux_segment "$video" "$(audio_for "$PLAIN_PROJ" "$2" "$3")" "$PLAIN_DIR/seg/$1.mp4" \
    2>>"$PLAIN_DIR/log/$1.log" || { echo "mux failed on $2 $3" >&2; return 255; }
  echo "$t0 $t1 $EPOCHREALTIME" >"$PLAIN_DIR/t/$1"
}
export -f plain_job mux_segment audio_for

# plain_pipeline PROJECT DIR QFLAG: sets ELAPSED, PLAIN_RENDER (Σ render
# wall), PLAIN_MUX (Σ mux wall), PLAIN_CONCAT, PLAIN_OUT.
plain_pipeline() {
  export PLAIN_PROJ=$1 PLAIN_DIR=$2 PLAIN_Q=$3
  mkdir -p "$2/media" "$2/log" "$2/seg" "$2/t"
  scene_list "$1" | awk '{ printf "%04d %s %s\n", NR, $1, $2 }' >"$2/jobs"
  local t0 t1
  t0=$EPOCHREALTIME
  # The single-quoted $@ is for the inner bash.
  # shellcheck disable=SC2016
  xargs -P "$JOBS" -n 3 bash -c 'plain_job "$@"' _ <"$2/jobs" || die "plain pipeline failed"
  t1=$EPOCHREALTIME
  for f in "$2"/seg/*.mp4; do printf "file '%s'\n" "$f"; done >"$2/concat.txt"
  PLAIN_OUT=$2/plain.mp4
  ffmpeg -nostdin -v error -y -f concat -safe 0 -i "$2/concat.txt" -c copy -movflags +faststart "$PLAIN_OUT" \
    || die "concat failed"
  ELAPSED=$(calc '%.3f' "$EPOCHREALTIME - $t0")
  PLAIN_CONCAT=$(calc '%.3f' "$EPOCHREALTIME - $t1")
  PLAIN_RENDER=$(cat "$2"/t/* | awk '{ s += $2 - $1 } END { printf "%.1f", s }')
  PLAIN_MUX=$(cat "$2"/t/* | awk '{ s += $3 - $2 } END { printf "%.1f", s }')
}

# cpu_run LOG CMD...: runs CMD, sets WALL and CPU (user+sys of CMD and all
# its children, from bash `times`).
cpu_run() {
  local log=$1 t0 out
  shift
  t0=$EPOCHREALTIME
  out=$( ("$@" >"$log" 2>&1 || exit $?; times) | tail -n1) || { tail -n 20 "$log" >&2; die "failed: $*"; }
  WALL=$(calc '%.3f' "$EPOCHREALTIME - $t0")
  CPU=$(awk '{ for (i = 1; i <= 2; i++) { split($i, p, "m"); sub("s", "", p[2]); s += p[1] * 60 + p[2] } } END { printf "%.3f", s }' <<<"$out")
}
manim_in() { # DIR ARGS...: `manim render ARGS` with DIR as working directory
  local d=$1
  shift
  (cd "$d" && exec "$PY" -m manim render "$@")
}

# sequential PROJECT DIR QFLAG: every scene, one after the other, plain
# manim; sets SEQ_WALL and SEQ_CPU (Σ user+sys).
sequential() {
  local scenes s i=0
  mkdir -p "$2"
  SEQ_WALL=0 SEQ_CPU=0
  mapfile -t scenes < <(scene_list "$1")
  for s in "${scenes[@]}"; do
    i=$((i + 1))
    cpu_run "$2/$i.log" manim_in "$1" "$3" --silent --disable_caching --media_dir "$2/m$i" "${s% *}" "${s#* }"
    SEQ_WALL=$(calc '%.3f' "$SEQ_WALL + $WALL")
    SEQ_CPU=$(calc '%.3f' "$SEQ_CPU + $CPU")
  done
}

# Clean build of the example: parender vs plain pipeline vs sequential,
# in CLEAN_RUNS rounds (each round all three, one after the other, so a
# change in the machine's load reaches all of them; odd rounds run them in
# that order, even rounds in the reverse one, so a load that rises or falls
# through a round favours none of them); the medians compared.
section_clean() {
  local name=$1 q=$2 dir p pl r what ps=() pls=() seqw=() seqc=() per=()
  shift 2
  for r in $(seq "$CLEAN_RUNS"); do
    dir=$work/$name/$r
    local order=(parender plain sequential)
    [ $((r % 2)) -eq 0 ] && order=(sequential plain parender)
    for what in "${order[@]}"; do
      case $what in
        parender)
          say "[$name] round $r of $CLEAN_RUNS: clean build of examples/lecture ($q), parender --jobs $JOBS $*..."
          lecture_copy "$dir/parender"
          pbuild "$dir/parender" "$dir/parender.jsonl" --jobs "$JOBS" -o "$dir/parender.mp4" "$@"
          p=$ELAPSED
          ps+=("$p")
          note "$name, round $r, parender: $(secs "$p"), of which $(secs "$(tail_seconds "$dir/parender.jsonl")") after its last render finished (mux + stitch tail); video $(calc '%.2f' "$(vduration "$dir/parender.mp4")") s"
          ;;
        plain)
          say "[$name] round $r: plain pipeline (pool of $JOBS)..."
          lecture_copy "$dir/plain-project"
          plain_pipeline "$dir/plain-project" "$dir/plain" "$q"
          pl=$ELAPSED
          pls+=("$pl")
          note "$name, round $r, plain pipeline: $(secs "$pl"): Σ render $PLAIN_RENDER s, Σ per-scene mux $PLAIN_MUX s, concat after the pool $(secs "$PLAIN_CONCAT"); video $(calc '%.2f' "$(vduration "$PLAIN_OUT")") s"
          ;;
        sequential)
          say "[$name] round $r: sequential manim..."
          lecture_copy "$dir/seq-project"
          sequential "$dir/seq-project" "$dir/seq" "$q"
          seqw+=("$SEQ_WALL")
          seqc+=("$SEQ_CPU")
          note "$name, round $r, sequential manim: $(secs "$SEQ_WALL") wall, $(secs "$SEQ_CPU") CPU (user+sys) over all scenes"
          ;;
      esac
    done
    per+=("$(ratio "$p" "$pl") / $(ratio "$p" "$(calc '%.3f' "$SEQ_CPU / $CORES")")")
  done
  note "$name, each round's ratios (vs plain pipeline / vs lower bound): ${per[*]}"
  local seq_wall bound
  p=$(med "${ps[@]}") pl=$(med "${pls[@]}") seq_wall=$(med "${seqw[@]}")
  bound=$(calc '%.3f' "$(med "${seqc[@]}") / $CORES")
  local target_pl='—' met_pl='' target_lb='—' met_lb='' of=''
  [ "$CLEAN_RUNS" -gt 1 ] && of=" (medians of $CLEAN_RUNS rounds)"
  if [ "$name" = release ]; then
    target_pl='≤ 0.70×' met_pl=$(met "$p" "$(calc '%.3f' "0.7 * $pl")")
    target_lb='≤ 1.05×' met_lb=$(met "$p" "$(calc '%.3f' "1.05 * $bound")")
  fi
  row "clean build, $name ($q): vs plain pipeline$of" "$(secs "$p")" "$(secs "$pl")" "$(ratio "$p" "$pl")" "$target_pl" "$met_pl"
  row "clean build, $name ($q): vs lower bound Σcpu ÷ $CORES$of" "$(secs "$p")" "$(secs "$bound")" "$(ratio "$p" "$bound")" "$target_lb" "$met_lb"
  row "clean build, $name ($q): vs sequential manim$of" "$(secs "$p")" "$(secs "$seq_wall")" "$(ratio "$p" "$seq_wall")" "—" ""
}

# ---- edit: one-scene edits under `parender watch` ------------------------
WLOG=
# (0 until the log exists: the watcher may not have written yet)
finished() {
  if [ -s "$WLOG" ]; then grep -c '"reason":"build-finished"' "$WLOG" || true; else echo 0; fi
}
# wait_build K: wait for the K-th build-finished event; sets BUILD_LINE.
wait_build() {
  local deadline=$((SECONDS + 600))
  while [ "$(finished)" -lt "$1" ]; do
    kill -0 "$WPID" 2>/dev/null || { tail -n 20 "$WLOG.err" >&2; die "parender watch exited"; }
    [ "$SECONDS" -lt "$deadline" ] || die "no build-finished #$1 from parender watch in 600 s"
    sleep 0.01
  done
  BUILD_LINE=$(grep '"reason":"build-finished"' "$WLOG" | sed -n "${1}p")
}
# phases K T0: for watch build K after a save at T0, "save→render started,
# render, render finished→video" in seconds (the latter two blank when
# nothing was rendered).
phases() {
  awk -v k="$1" -v t0="$2" '
    /"reason":"build-finished"/ { n++; if (n == k) { fin = $1 } next }
    n == k - 1 && /"reason":"scene-started"/ && !s { s = $1 }
    n == k - 1 && /"reason":"scene-finished"/ { f = $1 }
    END { if (s) printf "%.2f+%.2f+%.2f", s - t0, f - s, fin - f; else printf "%.2f", fin - t0 }' "$WLOG"
}
# save_and_time K SRC DEST EXPECT: atomically save SRC as DEST (as editors
# do), wait for build K, check it rendered EXPECT scenes; sets LAT.
save_and_time() {
  local t0 line
  t0=$EPOCHREALTIME
  mv "$2" "$3"
  wait_build "$1"
  line=$BUILD_LINE
  [ "$(field "$line" rendered)" = "$4" ] || die "watch build #$1 rendered $(field "$line" rendered) scenes, expected $4: $line"
  grep -q '"success":true' <<<"$line" || die "watch build #$1 failed: $line"
  LAT=$(calc '%.3f' "${line%% *} - $t0")
  PHASES+=("$(phases "$1" "$t0")")
}
# variant SED OUT: the original scene with one edit; fails if nothing changed.
variant() {
  sed -E "$1" "$EDIT_ORIG" >"$2"
  ! cmp -s "$EDIT_ORIG" "$2" || die "edit '$1' matched nothing in 05_formula.py"
}

section_edit() {
  local dir=$work/edit proj scene k=1 i
  proj=$dir/lecture
  lecture_copy "$proj"
  lecture_copy "$dir/cold-project"
  scene=$proj/scenes/05_formula.py
  EDIT_ORIG=$dir/05_formula.orig
  cp "$scene" "$EDIT_ORIG"
  WLOG=$dir/watch.jsonl
  say "[edit] parender watch: initial build..."
  "$BIN" watch --project "$proj" --jobs "$JOBS" --message-format json 2>"$WLOG.err" > >(stamp >"$WLOG") &
  WPID=$!
  started+=("$WPID")
  wait_build 1
  local last=() first=() rev=() cold=()
  PHASES=()
  for i in $(seq "$RUNS"); do
    say "[edit] run $i of $RUNS: last animation, revert, first animation, revert, cold manim..."
    # Last animation: the colour of the closing Circumscribe (unique per run).
    variant "s/Circumscribe\(formula\[2\], color=ACCENT\)/Circumscribe(formula[2], color=\"#$(printf '%02X' $((64 + i % 190)))C0E0\")/" "$dir/next"
    k=$((k + 1)); save_and_time "$k" "$dir/next" "$scene" 1; last+=("$LAT")
    cp "$EDIT_ORIG" "$dir/next"
    k=$((k + 1)); save_and_time "$k" "$dir/next" "$scene" 0; rev+=("$LAT")
    # First animation: the run time of the opening Write (unique per run).
    variant "s/self\.play\(Write\(formula\), run_time=2\.0\)/self.play(Write(formula), run_time=$(printf '2.%03d' "$i"))/" "$dir/next"
    k=$((k + 1)); save_and_time "$k" "$dir/next" "$scene" 1; first+=("$LAT")
    cp "$EDIT_ORIG" "$dir/next"
    k=$((k + 1)); save_and_time "$k" "$dir/next" "$scene" 0; rev+=("$LAT")
    # The same scene, cold, with plain Manim (its own copy of the project).
    cpu_run "$dir/cold$i.log" manim_in "$dir/cold-project" -ql --silent --disable_caching \
      --media_dir "$dir/cold$i" scenes/05_formula.py Formula
    cold+=("$WALL")
  done
  kill -INT "$WPID" 2>/dev/null || true
  wait "$WPID" 2>/dev/null || true
  started=()
  local c l f r target
  c=$(med "${cold[@]}") l=$(med "${last[@]}") f=$(med "${first[@]}") r=$(med "${rev[@]}")
  target=$(calc '%.3f' "0.5 * $c + 0.2")
  row "one-scene edit, last animation, save → video (median of $RUNS)" "$(secs "$l")" "$(secs "$c") cold manim" "$(ratio "$l" "$c")" "≤ 0.5×cold + 0.2 s = $(secs "$target")" "$(met "$l" "$target")"
  row "one-scene edit, first animation, save → video (median of $RUNS)" "$(secs "$f")" "$(secs "$c") cold manim" "$(ratio "$f" "$c")" "≤ 0.5×cold + 0.2 s = $(secs "$target")" "$(met "$f" "$target")"
  row "revert under watch (0 rendered), save → video (median of $((2 * RUNS)))" "$(msecs "$r")" "—" "" "≤ 300 ms" "$(met "$r" 0.3)"
  note "edit: the samples, in seconds: last animation ${last[*]}; first ${first[*]}; reverts ${rev[*]}; cold manim ${cold[*]} (watch debounce included)"
  note "edit: each watch build in order (last, revert, first, revert, ...) as save→render started + render + render finished→video, in seconds: ${PHASES[*]}"
}

# ---- small: N generated one-second scenes --------------------------------
SMALL_PROJ=
section_small() {
  local dir=$work/small p
  say "[small] generating $N scenes..."
  "$PY" "$ROOT/scripts/gen-scenes.py" "$N" "$dir/parender" --python "$PY"
  "$PY" "$ROOT/scripts/gen-scenes.py" "$N" "$dir/plain-project"
  say "[small] parender --jobs $JOBS, $N scenes..."
  pbuild "$dir/parender" "$dir/parender.jsonl" --jobs "$JOBS" -o "$dir/parender.mp4"
  p=$ELAPSED
  SMALL_PROJ=$dir/parender
  note "small, parender: $(secs "$p"), of which $(secs "$(tail_seconds "$dir/parender.jsonl")") after its last render finished; video $(calc '%.2f' "$(vduration "$dir/parender.mp4")") s"
  say "[small] plain pipeline, $N scenes..."
  plain_pipeline "$dir/plain-project" "$dir/plain" -ql
  note "small, plain pipeline: $(secs "$ELAPSED"): Σ render $PLAIN_RENDER s, Σ per-scene mux $PLAIN_MUX s, concat after the pool $(secs "$PLAIN_CONCAT"); video $(calc '%.2f' "$(vduration "$PLAIN_OUT")") s"
  row "clean build, $N generated 1-s scenes (-ql): vs plain pipeline" "$(secs "$p")" "$(secs "$ELAPSED")" "$(ratio "$p" "$ELAPSED")" "≤ 0.40×" "$(met "$p" "$(calc '%.3f' "0.4 * $ELAPSED")")"
}

# ---- noop: a revert with `parender build`, and the no-op build ------------
# median_build_ms PROJECT: median wall seconds of NOOP_RUNS no-op builds.
median_noop() {
  local t=() i t0
  for i in $(seq "$NOOP_RUNS"); do
    t0=$EPOCHREALTIME
    "$BIN" build --project "$1" >"$work/noop.log" 2>&1 || die "no-op build failed in $1"
    t+=("$(calc '%.6f' "$EPOCHREALTIME - $t0")")
  done
  pbuild "$1" "$work/noop-check.jsonl"
  [ "$(field "$(grep '"reason":"build-finished"' "$work/noop-check.jsonl")" rendered)" = 0 ] \
    || die "the no-op build of $1 rendered something"
  med "${t[@]}"
}

section_noop() {
  local dir=$work/noop proj scene i revs=() r base n1 n2
  proj=$dir/lecture
  lecture_copy "$proj"
  scene=$proj/scenes/05_formula.py
  EDIT_ORIG=$dir/05_formula.orig
  cp "$scene" "$EDIT_ORIG"
  say "[noop] first build of the example..."
  pbuild "$proj" "$dir/b0.jsonl" --jobs "$JOBS"
  for i in $(seq "$RUNS"); do
    say "[noop] revert $i of $RUNS: edit, build, revert, timed build..."
    variant "s/Circumscribe\(formula\[2\], color=ACCENT\)/Circumscribe(formula[2], color=\"#$(printf '%02X' $((64 + i % 190)))80E0\")/" "$dir/next"
    mv "$dir/next" "$scene"
    pbuild "$proj" "$dir/e$i.jsonl" --jobs "$JOBS"
    cp "$EDIT_ORIG" "$scene"
    pbuild "$proj" "$dir/r$i.jsonl" --jobs "$JOBS"
    [ "$(field "$(grep '"reason":"build-finished"' "$dir/r$i.jsonl")" rendered)" = 0 ] \
      || die "the revert build rendered something"
    revs+=("$ELAPSED")
  done
  r=$(med "${revs[@]}")
  row "revert, \`parender build\` (0 rendered; median of $RUNS)" "$(msecs "$r")" "—" "" "≤ 300 ms" "$(met "$r" 0.3)"
  say "[noop] no-op builds..."
  base=$(median_version)
  n1=$(median_noop "$proj")
  row "no-op build, example lecture (median of $NOOP_RUNS)" "$(msecs "$n1")" "$(msecs "$base") \`--version\`" "$(ratio "$n1" "$base")" "≤ 50 ms (issue 3)" "$(met "$n1" 0.05)"
  if [ -n "$SMALL_PROJ" ]; then
    n2=$(median_noop "$SMALL_PROJ")
    row "no-op build, $N generated scenes (median of $NOOP_RUNS)" "$(msecs "$n2")" "$(msecs "$base") \`--version\`" "$(ratio "$n2" "$base")" "—" ""
  fi
}
median_version() {
  local t=() i t0
  for i in $(seq "$NOOP_RUNS"); do
    t0=$EPOCHREALTIME
    "$BIN" --version >"$work/version.log" 2>&1
    t+=("$(calc '%.6f' "$EPOCHREALTIME - $t0")")
  done
  med "${t[@]}"
}

# ---- run -----------------------------------------------------------------
for tool in ffmpeg ffprobe awk xargs; do command -v "$tool" >/dev/null || die "$tool is missing"; done
[ -x "$PY" ] || die "no Python at $PY (run scripts/setup.sh or set PYTHON)"
versions=$("$PY" -c 'import sys, manim; print(manim.__version__, sys.version.split()[0])') || die "manim does not import with $PY"
load=$(cut -d' ' -f1-3 /proc/loadavg)
begin=$SECONDS
if ! skipped release; then section_clean release -qh --release; fi
if ! skipped preview; then section_clean preview -ql; fi
if ! skipped edit; then section_edit; fi
if ! skipped small; then section_small; fi
if ! skipped noop; then section_noop; fi

cpu=$(sed -nE 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
ram=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
echo
echo "## parender benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "- machine: $CORES × ${cpu:-unknown CPU} (nproc $CORES), $ram RAM, $(uname -sr)"
echo "- load average at start $load, at end $(cut -d' ' -f1-3 /proc/loadavg)$(awk -v l="${load%% *}" -v c="$CORES" 'BEGIN { if (l > c / 2) printf " (a busy machine: wall times are inflated)" }')"
echo "- manim ${versions% *} (Python ${versions#* }), $(ffmpeg -version | head -n1 | cut -d' ' -f1-3), $("$BIN" --version)"
echo "- jobs $JOBS, RUNS=$RUNS, N=$N${SKIP:+, skipped: $SKIP}; whole run $((SECONDS - begin)) s"
echo
echo "| measurement | parender | baseline | ratio | target | met |"
echo "|---|---:|---:|---:|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "Ratios are parender ÷ baseline. Plain pipeline: one \`manim render --silent --disable_caching\` per scene in a pool of $JOBS (xargs -P), each followed by a re-encoding mux (tpad hold + apad), then the ffmpeg concat demuxer."
echo
printf '%s\n' "${notes[@]}"
