# parender render driver: runs Manim's own command line in this process, exactly
# as `manim render ...` would, and records structured events (animation progress,
# the exception with the innermost frame in the user's code) as JSON lines in
# the file named by PARENDER_REPORT. Embedded in the parender binary.
import json
import os
import sys
import traceback

sys.dont_write_bytecode = True
# `python -c` puts '' (the working directory) first on sys.path; the `manim`
# console script does not, so neither do we.
if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.pop(0)

ROOT = os.path.realpath(os.getcwd())
REPORT = os.environ.get("PARENDER_REPORT")
_reported = [False]


def emit(obj):
    if not REPORT:
        return
    with open(REPORT, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")


def is_user_file(path):
    real = os.path.realpath(path)
    if not real.startswith(ROOT + os.sep):
        return False
    rel = os.path.relpath(real, ROOT).split(os.sep)
    return not any(part in (".venv", "venv", "site-packages", ".parender") for part in rel)


def report_exception(exc):
    if _reported[0] or exc is None:
        return
    _reported[0] = True
    frames = traceback.extract_tb(exc.__traceback__)
    loc = None
    if isinstance(exc, SyntaxError) and exc.filename and is_user_file(exc.filename):
        loc = (exc.filename, exc.lineno)
    else:
        for frame in reversed(frames):
            if is_user_file(frame.filename):
                loc = (frame.filename, frame.lineno)
                break
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    emit({
        "event": "error",
        "type": type(exc).__name__,
        "message": message.splitlines()[-1] if message else type(exc).__name__,
        "file": os.path.relpath(os.path.realpath(loc[0]), ROOT) if loc else None,
        "line": loc[1] if loc else None,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    })


def install_hooks():
    import rich.console

    original_print_exception = rich.console.Console.print_exception

    def print_exception(self, *args, **kwargs):
        # Manim's CLI catches the scene's exception and prints it with Rich;
        # take the live exception from here before it is rendered as boxes.
        report_exception(sys.exc_info()[1])
        return original_print_exception(self, *args, **kwargs)

    rich.console.Console.print_exception = print_exception

    from manim.renderer.cairo_renderer import CairoRenderer

    original_play = CairoRenderer.play

    def play(self, scene, *args, **kwargs):
        emit({"event": "animation", "index": self.num_plays})
        return original_play(self, scene, *args, **kwargs)

    CairoRenderer.play = play
    quote_concat_manifest()


def quote_concat_manifest():
    """Manim 0.22 writes its concat list as `file 'file:PATH'` without
    escaping quotes, so a project whose path holds a `'` failed every scene
    inside PyAV. Write the list with the concat demuxer's own escaping."""
    from pathlib import Path

    from manim.scene.scene_file_writer import SceneFileWriter

    if "_concat_manifest_bytes" not in SceneFileWriter.__dict__:
        return

    def quoted(path):
        return "file '" + ("file:" + Path(path).as_posix()).replace("'", "'\\''") + "'\n"

    def concat_manifest_bytes(input_files):
        text = "# This file records the segment order used by Manim.\n"
        return (text + "".join(quoted(f) for f in input_files)).encode("utf-8")

    SceneFileWriter._concat_manifest_bytes = staticmethod(concat_manifest_bytes)


def seed_randomness(scene_seed):
    """Same inputs, same frames: `random` and `numpy.random` start from a
    seed parender derives from the scene's name, before the scene's module is
    imported and again when the `Scene` is created, unless the user chose a
    seed (Manim's `--seed`, `seed` in manim.cfg, `Scene(random_seed=...)`),
    which then wins. An unseeded `numpy.random.default_rng()` draws from the
    same seed too."""
    import random

    import numpy as np

    random.seed(scene_seed)
    np.random.seed(scene_seed)

    original_default_rng = np.random.default_rng
    streams = [0]

    def default_rng(seed=None):
        if seed is None:
            # A distinct, reproducible stream for each unseeded generator.
            streams[0] += 1
            seed = np.random.SeedSequence([scene_seed, streams[0]])
        return original_default_rng(seed)

    default_rng.__doc__ = original_default_rng.__doc__
    np.random.default_rng = default_rng

    from manim.scene.scene import Scene

    original_init = Scene.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        # Manim seeds from `random_seed`, which defaults to `config.seed`;
        # None means the user chose no seed, and Manim seeded from the OS
        # (0.22) or left the generators alone (older versions).
        if getattr(self, "random_seed", None) is None:
            random.seed(scene_seed)
            np.random.seed(scene_seed)
            self.random_seed = scene_seed

    Scene.__init__ = __init__


def main():
    emit({"event": "started", "pid": os.getpid()})
    try:
        install_hooks()
        seed = os.environ.get("PARENDER_SEED")
        if seed:
            seed_randomness(int(seed))
        from manim.__main__ import main as manim_main
    except BaseException as exc:  # noqa: BLE001
        report_exception(exc)
        raise
    sys.argv = ["manim"] + sys.argv[1:]
    try:
        manim_main()
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001
        report_exception(exc)
        raise


main()
