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
# The project's shared LaTeX cache (see `share_tex`), if parender gave one.
TEX_CACHE = os.environ.get("PARENDER_TEX_CACHE")
# Where parender may ask this render to stop early (see `answer_stop`).
CONTROL = os.environ.get("PARENDER_CONTROL")
_answered = [False]
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
        if CONTROL and not _answered[0] and answer_stop(self.num_plays):
            return original_play(self, scene, *args, **kwargs)
        report_resume(self)
        emit({"event": "animation", "index": self.num_plays})
        return original_play(self, scene, *args, **kwargs)

    CairoRenderer.play = play
    quote_concat_manifest()
    report_movie()
    if TEX_CACHE:
        share_tex(TEX_CACHE)


def share_tex(shared):
    """LaTeX compiled once per project, not once per scene and quality:
    Manim keeps the SVG of each `Tex`/`MathTex` in the render's own media
    folder (files written in place, so two renders must not share one).
    Each SVG compiled here is also published to `shared` under the same
    name (the hash of the whole .tex file), by copy and atomic rename, and
    an SVG found there is used instead of compiling: the same file LaTeX
    would make. Anything failing here leaves Manim's own behaviour."""
    import shutil
    import tempfile
    from pathlib import Path

    import manim.mobject.text.tex_mobject as tex_mobject
    import manim.utils.tex_file_writing as writing

    original = writing.tex_to_svg_file
    try:
        os.makedirs(shared, exist_ok=True)
    except OSError:
        return

    def publish(svg, kept):
        fd, tmp = tempfile.mkstemp(dir=shared, prefix=".tmp-", suffix=".svg")
        os.close(fd)
        try:
            shutil.copyfile(svg, tmp)
            os.replace(tmp, kept)
        except OSError:
            os.unlink(tmp)

    def tex_to_svg_file(expression, environment=None, tex_template=None):
        if tex_template is None:
            from manim import config

            tex_template = config["tex_template"]
        tex_file = writing.generate_tex_file(expression, environment, tex_template)
        kept = os.path.join(shared, tex_file.with_suffix(".svg").name)
        if os.path.isfile(kept):
            return Path(kept)
        svg = original(expression, environment, tex_template)
        try:
            publish(svg, kept)
        except OSError:
            pass
        return svg

    writing.tex_to_svg_file = tex_to_svg_file
    if getattr(tex_mobject, "tex_to_svg_file", None) is original:
        tex_mobject.tex_to_svg_file = tex_to_svg_file


def report_resume(renderer):
    """In a piece that starts at animation K (`-n K...`): the scene time it
    reached by skipping animations 0..K-1. Skipped animations add their exact
    run time, drawn ones whole frames, so parender moves the piece's
    subcaptions by the difference to where the whole render is at K."""
    from manim import config

    start = config.from_animation_number or 0
    if start > 0 and renderer.num_plays == start:
        emit({"event": "resumed", "at": start, "time": float(renderer.time)})


def stop_request():
    """The animation number parender asked this render to stop before (the
    control file holds it), if it asked."""
    try:
        with open(CONTROL, encoding="utf-8") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def answer_stop(index):
    """Before animation `index`: when parender asked to stop before animation
    K (another process renders K on), stop here if this is K, so the movie
    holds animations 0..K-1 exactly as `-n 0,K-1` would (Manim ends the scene
    early at the next play, through its own `upto_animation_number`), or
    decline when this render is already past K. Either answer is final and
    reported as an event; returns whether it stopped."""
    k = stop_request()
    if k is None or index < k:
        return False
    _answered[0] = True
    if index == k and k >= 2:
        from manim import config

        config.upto_animation_number = k - 1
        emit({"event": "stopped", "at": k})
        return True
    emit({"event": "declined", "at": k})
    return False


def probe(path):
    """What parender would otherwise ask ffprobe about the finished movie
    (an ffprobe start costs more than a small render's encode), read with the
    PyAV that Manim wrote it with: codec, size, rates, packets, audio."""
    import av

    with av.open(str(path)) as container:
        video = next(s for s in container.streams if s.type == "video")
        audio = any(s.type == "audio" for s in container.streams)
        # Every packet ffprobe would count; demux ends with an empty flush
        # packet that has no timestamp.
        frames = sum(1 for p in container.demux(video) if p.size or p.dts is not None)
        ctx = video.codec_context
        rate, base = video.base_rate, video.time_base
        return {
            "codec": ctx.name,
            "profile": ctx.profile,
            "pix_fmt": ctx.pix_fmt,
            "width": ctx.width,
            "height": ctx.height,
            "fps_num": rate.numerator,
            "fps_den": rate.denominator,
            "tb_num": base.numerator,
            "tb_den": base.denominator,
            "frames": frames,
            "audio": audio,
        }


def report_movie():
    """After Manim has written the movie (sound included), its path and
    `probe`; nothing when anything about that fails (parender then runs
    ffprobe)."""
    from manim.scene.scene_file_writer import SceneFileWriter

    original = SceneFileWriter.combine_to_movie

    def combine_to_movie(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        try:
            path = os.path.realpath(str(self.movie_file_path))
            emit({"event": "movie", "path": path, "info": probe(path)})
        except Exception:  # noqa: BLE001
            pass
        return result

    SceneFileWriter.combine_to_movie = combine_to_movie


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


# --- Split analysis (PARENDER_ANALYZE): a dry run (`-n 1000000`, every
# animation skipped, nothing encoded) that records, per animation, its run
# time and whether its end state could depend on the frames drawn (updaters,
# frame-by-frame animations), and anything that makes a render split into
# animation ranges differ from the whole one. parender splits a scene only
# where this says it is safe; when unsure, this says "unsafe".

# Animations whose end state depends on the steps taken (a skipped animation
# takes one step): user functions called per frame, numbers rebuilt per
# frame, flows integrated per frame.
PATH_DEPENDENT = (
    ("manim.animation.updaters.update", "UpdateFromFunc"),
    ("manim.animation.updaters.update", "MaintainPositionRelativeTo"),
    ("manim.animation.numbers", "ChangingDecimal"),
    ("manim.animation.movement", "PhaseFlow"),
)
FRAME_METHODS = ("interpolate", "interpolate_mobject", "interpolate_submobject", "update_mobjects")
CLOCK_READS = (
    "time", "time_ns", "perf_counter", "perf_counter_ns", "monotonic",
    "monotonic_ns", "process_time", "process_time_ns",
)
# These read the clock only when not given a time.
CLOCK_DEFAULTS = {"localtime": 0, "gmtime": 0, "ctime": 0, "asctime": 0, "strftime": 1}


class Analysis:
    def __init__(self, path):
        import builtins

        self.path = path
        self.write_open = builtins.open
        self.reasons = set()
        self.user_files = {}
        self.media_root = None

    def record(self, obj):
        if not self.path:
            return
        with self.write_open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(obj) + "\n")

    def unsafe(self, reason):
        if reason not in self.reasons:
            self.reasons.add(reason)
            self.record({"event": "unsafe", "reason": reason})

    def is_user(self, filename):
        known = self.user_files.get(filename)
        if known is None:
            # `<string>` (this driver, run with -c) and `<frozen ...>` are
            # not files of the project.
            user = not filename.startswith("<") and is_user_file(filename)
            known = self.user_files[filename] = user
        return known

    def caller_is_user(self, depth=2):
        return self.is_user(sys._getframe(depth).f_code.co_filename)

    def user_in_stack(self):
        frame = sys._getframe(2)
        while frame is not None:
            if self.is_user(frame.f_code.co_filename):
                return True
            frame = frame.f_back
        return False


def install_analysis(path):
    """Hooks for the dry run; `path` gets its JSON lines (`plan` per
    animation, `unsafe` per reason, `analyzed` at the end)."""
    a = Analysis(path)
    hook_plays(a)
    hook_scene_calls(a)
    hook_clock(a)
    hook_datetime(a)
    hook_open(a)


def leaf_animations(anim):
    yield anim
    for sub in getattr(anim, "animations", None) or ():
        yield from leaf_animations(sub)


def path_dependent_classes():
    import importlib

    found = []
    for module, name in PATH_DEPENDENT:
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def user_frame_methods(a, cls):
    """Whether a class the user wrote defines how frames are drawn."""
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        file = getattr(module, "__file__", None)
        if file and a.is_user(file) and any(m in klass.__dict__ for m in FRAME_METHODS):
            return True
    return False


def animation_mobjects(anim):
    """Every mobject an animation updates per frame: its own, and copies
    such as a Transform's start and target (which keep their updaters)."""
    if hasattr(anim, "get_all_mobjects"):
        return [m for m in anim.get_all_mobjects() if m is not None]
    mob = getattr(anim, "mobject", None)
    return [mob] if mob is not None else []


def has_updaters(scene, extra=()):
    if getattr(scene, "updaters", None) or getattr(scene, "always_update_mobjects", False):
        return True
    for mob in list(scene.mobjects) + list(extra):
        for m in mob.get_family():
            if getattr(m, "updaters", None):
                return True
    return False


def hook_plays(a):
    """One `plan` event per animation, after it ran (skipped) in the dry run."""
    from manim.animation.animation import Wait
    from manim.renderer.cairo_renderer import CairoRenderer
    from manim.scene.scene import Scene

    stepwise = path_dependent_classes()
    original_play = CairoRenderer.play

    def play(self, scene, *args, **kwargs):
        index = self.num_plays
        before = has_updaters(scene)
        original_play(self, scene, *args, **kwargs)
        anims = [x for top in (scene.animations or ()) for x in leaf_animations(top)]
        mobs = [m for x in anims for m in animation_mobjects(x)]
        frames = any(isinstance(x, stepwise) or user_frame_methods(a, type(x)) for x in anims)
        if any(isinstance(x, Wait) and x.stop_condition is not None for x in anims):
            a.unsafe("waits on a condition (wait_until or wait(stop_condition=...))")
        a.record({
            "event": "plan",
            "index": index,
            "run_time": float(scene.duration),
            "updaters": bool(before or frames or has_updaters(scene, mobs)),
        })

    CairoRenderer.play = play
    original_render = Scene.render

    def render(self, *args, **kwargs):
        result = original_render(self, *args, **kwargs)
        a.record({"event": "analyzed", "animations": self.renderer.num_plays})
        return result

    Scene.render = render


def hook_scene_calls(a):
    """Sound and the scene's clock: Manim drops the sound of skipped
    animations, and code that reads the clock may act on it. (Subcaptions
    are kept at their scene time in every piece: not a reason.)"""
    from manim.renderer.cairo_renderer import CairoRenderer
    from manim.scene.scene import Scene

    def flag(name, reason):
        original = getattr(Scene, name)

        def wrapper(self, *args, **kwargs):
            a.unsafe(reason)
            return original(self, *args, **kwargs)

        setattr(Scene, name, wrapper)

    flag("add_sound", "adds sound (add_sound)")

    def clock_property(store):
        def get(obj):
            if a.caller_is_user():
                a.unsafe("reads the scene's clock (Scene.time / renderer.time)")
            return store(obj)

        return get

    scene_time = Scene.time.fget
    Scene.time = property(clock_property(scene_time))

    def set_time(self, value):
        self.__dict__["_parender_time"] = value

    CairoRenderer.time = property(
        clock_property(lambda self: self.__dict__.get("_parender_time", 0.0)), set_time
    )


def hook_clock(a):
    import time

    def wrap(name, arg_index):
        original = getattr(time, name, None)
        if original is None:
            return

        def wrapper(*args, **kwargs):
            reads_now = arg_index is None or len(args) <= arg_index or args[arg_index] is None
            if reads_now and not kwargs and a.caller_is_user():
                a.unsafe(f"reads the clock (time.{name})")
            return original(*args, **kwargs)

        setattr(time, name, wrapper)

    for name in CLOCK_READS:
        wrap(name, None)
    for name, index in CLOCK_DEFAULTS.items():
        wrap(name, index)


def hook_datetime(a):
    """`datetime.now()` and friends, through stand-in classes that still pass
    `isinstance` checks against the originals."""
    import datetime

    def stand_in(base, names):
        class Meta(type):
            def __instancecheck__(cls, obj):
                return isinstance(obj, base)

            def __subclasscheck__(cls, sub):
                return issubclass(sub, base)

        def clock(name):
            def method(cls, *args, **kwargs):
                if a.caller_is_user():
                    a.unsafe(f"reads the clock (datetime.{base.__name__}.{name})")
                return getattr(super(Cls, cls), name)(*args, **kwargs)

            return classmethod(method)

        Cls = Meta(base.__name__, (base,), {n: clock(n) for n in names})
        Cls.__module__ = "datetime"
        return Cls

    datetime.datetime = stand_in(datetime.datetime, ("now", "utcnow", "today"))
    datetime.date = stand_in(datetime.date, ("today",))


def hook_open(a):
    """Reading a file from the scene's code (directly or through a library,
    e.g. an SVG or an image): a file the build may change under a piece.
    Files of Python itself, installed packages, Manim's media folder and the
    project's own Python sources (e.g. read for a warning) do not count."""
    import builtins
    import io

    original_open = builtins.open
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}

    def media_root():
        if a.media_root is None:
            from manim import config

            a.media_root = os.path.realpath(str(config.media_dir))
        return a.media_root

    def exempt(path):
        parts = path.split(os.sep)
        if "site-packages" in parts or "dist-packages" in parts or path.endswith(".py"):
            return True
        roots = prefixes | {media_root()}
        if TEX_CACHE:
            roots = roots | {os.path.realpath(TEX_CACHE)}
        return any(path == r or path.startswith(r + os.sep) for r in roots)

    def hooked_open(file, mode="r", *args, **kwargs):
        reads = "r" in mode or "+" in mode
        if reads and isinstance(file, (str, bytes, os.PathLike)) and a.user_in_stack():
            path = os.path.realpath(os.fsdecode(file))
            if not exempt(path):
                shown = os.path.relpath(path, ROOT) if is_user_file(path) else path
                a.unsafe(f"reads the file {shown}")
        return original_open(file, mode, *args, **kwargs)

    builtins.open = hooked_open
    io.open = hooked_open


def main():
    emit({"event": "started", "pid": os.getpid()})
    try:
        install_hooks()
        analysis = os.environ.get("PARENDER_ANALYZE")
        if analysis:
            install_analysis(REPORT if analysis == "1" else analysis)
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
