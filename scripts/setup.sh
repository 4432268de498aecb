#!/usr/bin/env bash
# Installs everything parender and its tests need on a fresh Debian machine,
# then builds parender. Safe to run again: it only installs what is missing.
#   - apt: ffmpeg, Cairo/Pango headers + pkg-config (for Manim's wheels' deps),
#     a minimal LaTeX with dvisvgm and the `standalone` class (MathTex/Tex),
#     espeak-ng and sox (test and example audio), python3-venv,
#     chromium (the headless browser of the `watch --serve` test),
#     apache2-bin (the WebDAV server of the remote-cache tests),
#     slurmctld slurmd slurm-client munge (a one-node Slurm for the executor
#     tests; the tests start it on loopback with a config in a temp folder)
#   - .venv: a Python venv with the pinned Manim from requirements.txt, and
#     Ray from requirements-cluster.txt (the Ray executor's tests start a head
#     on loopback)
#   - cargo build --release
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  ffmpeg pkg-config libcairo2-dev libpango1.0-dev python3-venv python3-dev build-essential
  texlive-latex-base texlive-latex-recommended texlive-latex-extra
  texlive-fonts-recommended texlive-science dvisvgm
  espeak-ng sox
  chromium fonts-dejavu-core
  apache2-bin
  slurmctld slurmd slurm-client munge
)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
want=$(sed -n 's/^manim==//p' requirements.txt)
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
have=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('manim'))" 2>/dev/null || true)
if [ "$have" != "$want" ]; then
  say "installing manim==$want into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
fi

ray_want=$(sed -n 's/^ray==//p' requirements-cluster.txt)
ray_have=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('ray'))" 2>/dev/null || true)
if [ "$ray_have" != "$ray_want" ]; then
  say "installing ray==$ray_want into .venv (the Ray executor's tests)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-cluster.txt
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install the stable Rust toolchain (rustup) and run this again" >&2
  exit 1
fi
say "building parender"
cargo build --release --locked --quiet
PYTHON="$PY" scripts/setup-voiceover-env.sh
say "ready: $(./target/release/parender --version), manim $want, $(ffmpeg -version | head -1 | cut -d' ' -f1-3)"
