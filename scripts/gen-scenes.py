#!/usr/bin/env python3
"""Generate a parender project of N small narrated scenes, for benchmarks.

    scripts/gen-scenes.py N OUTDIR [--python PATH]

Each scene lives in its own file (scenes/s001.py, class S001) and draws one
shape, a square or a circle with a colour that varies by index, in a single
one-second `Create`: the kind of project where a cold Python start and
`import manim` per scene dominate the build. Each scene is paired with a
narration audio/s001.wav, a sine tone of 0.8 to 1.2 s, so some segments hold
the last frame and some pad the audio. Only the standard library is used
(the tone is written with `wave`, no sox or ffmpeg needed), so it runs with
any Python 3. OUTDIR must not exist or be empty; `--python` goes into
parender.toml as `python = ...`.
"""

import argparse
import json
import math
import struct
import sys
import wave
from pathlib import Path

RATE = 48000
COLORS = ["BLUE", "GREEN", "GOLD", "MAROON", "TEAL", "RED", "PURPLE", "ORANGE"]

SCENE = """from manim import {color}, Create, {shape}, Scene


class {cls}(Scene):
    \"\"\"Generated scene {index} of {count}: one shape drawn in one second.\"\"\"

    def construct(self):
        shape = {shape}(color={color}).rotate({angle:.3f})
        self.play(Create(shape), run_time=1)
"""


def scene_source(index: int, cls: str, count: int) -> str:
    """A one-second scene whose colour, shape and angle depend on the index,
    so no two scenes render the same frames (no cache can share them)."""
    return SCENE.format(
        color=COLORS[index % len(COLORS)],
        shape="Square" if index % 2 else "Circle",
        cls=cls,
        index=index,
        count=count,
        angle=index * 0.07,
    )


def write_tone(path: Path, index: int) -> None:
    """A mono 16-bit sine of 0.8-1.2 s, its pitch varying by index."""
    seconds = 0.8 + (index % 5) * 0.1
    freq = 220.0 + 20.0 * (index % 12)
    frames = int(RATE * seconds)
    data = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * n / RATE)))
        for n in range(frames)
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("count", type=int, help="number of scenes")
    ap.add_argument("outdir", type=Path, help="project folder to create")
    ap.add_argument("--python", help="interpreter for parender.toml's `python`")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("N must be at least 1")
    out: Path = args.outdir
    if out.exists() and any(out.iterdir()):
        ap.error(f"{out} exists and is not empty")
    (out / "scenes").mkdir(parents=True, exist_ok=True)
    (out / "audio").mkdir(exist_ok=True)
    toml = 'name = "generated"\n'
    if args.python:
        # A JSON string is a valid TOML basic string.
        toml = f"python = {json.dumps(args.python)}\n" + toml
    (out / "parender.toml").write_text(toml)
    width = max(3, len(str(args.count)))
    for i in range(1, args.count + 1):
        stem = f"s{i:0{width}d}"
        (out / "scenes" / f"{stem}.py").write_text(scene_source(i, stem.upper(), args.count))
        write_tone(out / "audio" / f"{stem}.wav", i)
    return 0


if __name__ == "__main__":
    sys.exit(main())
