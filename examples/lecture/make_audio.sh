#!/usr/bin/env bash
# Regenerate the narration for the lecture example, fully offline.
#
# Requires espeak-ng and ffmpeg (with libvorbis and the native aac encoder).
# Naming rule used by parender:
#   one scene in a file      -> audio/<file stem>.<ext>
#   several scenes in a file -> audio/<file stem>.<ClassName>.<ext>
# 06_outro (class Outro) intentionally has no narration.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/audio"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

VOICE="${VOICE:-en-us}"
SPEED="${SPEED:-160}"   # words per minute

# say <output name without extension> <ext> <text>
say() {
    local name="$1" ext="$2" text="$3"
    local wav="$tmp/$name.wav"
    espeak-ng -v "$VOICE" -s "$SPEED" -w "$wav" "$text"
    case "$ext" in
        ogg) ffmpeg -nostdin -loglevel error -y -i "$wav" -fflags +bitexact -map_metadata -1 -ac 1 -ar 22050 \
                 -c:a libvorbis -q:a 0 "$out/$name.ogg" ;;
        m4a) ffmpeg -nostdin -loglevel error -y -i "$wav" -fflags +bitexact -map_metadata -1 -ac 1 -ar 22050 \
                 -c:a aac -b:a 32k "$out/$name.m4a" ;;
        *) echo "unsupported extension: $ext" >&2; exit 1 ;;
    esac
    echo "wrote audio/$name.$ext"
}

# Narration longer than its 4 s animation: the last frame is held.
say 01_intro ogg \
    "Welcome. Today we will see why adding up odd numbers always gives a perfect square."

# Shorter than its 5 s animation.
say 02_odd_numbers ogg \
    "The odd numbers are one, three, five, seven, and so on."

# Longer than its 6 s animation.
say 03_partial_sums ogg \
    "Add them up in order. One, then four, then nine, then sixteen. Every running total is a square number."

# Multi-scene file 04_examples.py: one narration per class.
say 04_examples.SmallCase ogg \
    "Each odd number is an L shape that wraps around the square before it."

say 04_examples.LargeCase m4a \
    "Five L shapes make a five by five square."

say 05_formula ogg \
    "So the sum of the first n odd numbers is n squared."
