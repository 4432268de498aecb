#!/usr/bin/env bash
# Makes the separate Python venv that tests/e2e_voiceover.rs renders with:
# .venv-voiceover, with the pinned Manim from requirements.txt and
# manim-voiceover (no extras: the test brings its own offline espeak-ng speech
# service). Users bring their own environment; this one is only for the test,
# kept apart from .venv so the main suites run on plain Manim.
#
# Safe to run again: does nothing when both packages are already installed at
# the pinned versions. When the package index cannot be reached, it writes
# .venv-voiceover.unavailable with pip's error, removes the half-made venv and
# exits 0 so scripts/setup.sh carries on; the test then reports itself as
# skipped. Any other failure is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

ENV=.venv-voiceover
MARKER="$ENV.unavailable"
VOICEOVER_VERSION=0.4.0
PY="${PYTHON:-python3}"
MANIM_VERSION=$(sed -n 's/^manim==//p' requirements.txt)
if [ -z "$MANIM_VERSION" ]; then
  echo "error: no manim==VERSION pin in requirements.txt" >&2
  exit 1
fi

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

installed() {
  "$ENV/bin/python" -c "import importlib.metadata as m; print(m.version('manim'), m.version('manim-voiceover'))" 2>/dev/null || true
}

if [ -x "$ENV/bin/python" ] && [ "$(installed)" = "$MANIM_VERSION $VOICEOVER_VERSION" ]; then
  rm -f "$MARKER"
  exit 0
fi

started=$SECONDS
if [ ! -x "$ENV/bin/python" ]; then
  say "creating $ENV with $($PY --version)"
  "$PY" -m venv "$ENV"
fi
say "installing manim==$MANIM_VERSION and manim-voiceover==$VOICEOVER_VERSION into $ENV"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! "$ENV/bin/pip" install -q --disable-pip-version-check \
  "manim==$MANIM_VERSION" "manim-voiceover==$VOICEOVER_VERSION" >"$log" 2>&1; then
  # pip retries a few times (naming the connection error), then reports that
  # nothing satisfies the requirement; "from versions: none" for packages
  # that certainly exist also means the index answered with nothing.
  if grep -qiE 'from versions: none|NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|Network is unreachable|Connection refused|ConnectTimeoutError|Read timed out|ProxyError|Could not fetch URL|SSLError|No route to host' "$log"; then
    {
      echo "package index unreachable while installing manim==$MANIM_VERSION manim-voiceover==$VOICEOVER_VERSION ($(date -u +%Y-%m-%dT%H:%M:%SZ)):"
      cat "$log"
    } >"$MARKER"
    rm -rf "$ENV"
    say "package index unreachable: skipped $ENV (the voice-over test will be skipped); details in $MARKER"
    exit 0
  fi
  cat "$log" >&2
  echo "error: installing into $ENV failed (see above)" >&2
  exit 1
fi
have=$(installed)
if [ "$have" != "$MANIM_VERSION $VOICEOVER_VERSION" ]; then
  echo "error: $ENV has manim, manim-voiceover = '$have' after installing, expected '$MANIM_VERSION $VOICEOVER_VERSION'" >&2
  exit 1
fi
rm -f "$MARKER"
say "$ENV ready in $((SECONDS - started)) s: manim $MANIM_VERSION, manim-voiceover $VOICEOVER_VERSION"
