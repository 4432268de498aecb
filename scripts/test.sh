#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, and all tests (unit,
# integration on temp projects, end-to-end with real Manim and ffmpeg).
# Expects scripts/setup.sh to have run (the README's test command does both).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check
cargo clippy --locked --all-targets --quiet -- -D warnings
cargo test --locked 2>&1
