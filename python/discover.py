# parender scene discovery: asks Python (and Manim) which classes in each file
# Manim itself would render. Run with the project root as the working directory:
#   python -c <this> TIMEOUT_SECONDS FILE...
# (paths relative to the root); prints one JSON document on stdout. Embedded in
# the parender binary.
#
# Manim is imported once, here; the files are then loaded in children forked
# from this process (one per CPU, each loading its share of the files one after
# the other and reporting each as it is done), so a file that exits (os._exit),
# crashes (a segfault) or never finishes loading (`while True: pass`) fails
# alone, with its name: the child that was loading it is gone (or killed after
# TIMEOUT_SECONDS), and the files after it go to a new child.
import gc
import importlib.util
import inspect
import json
import os
import platform
import selectors
import signal
import sys
import time
import traceback

sys.dont_write_bytecode = True
if sys.path and sys.path[0] in ("", os.getcwd()):
    sys.path.pop(0)

ROOT = os.path.realpath(os.getcwd())


def is_user_file(path):
    real = os.path.realpath(path)
    if not real.startswith(ROOT + os.sep):
        return False
    rel = os.path.relpath(real, ROOT).split(os.sep)
    return not any(part in (".venv", "venv", "site-packages", ".parender") for part in rel)


def describe_error(exc):
    frames = traceback.extract_tb(exc.__traceback__)
    # SyntaxError carries its own location, which is the user's line.
    if isinstance(exc, SyntaxError) and exc.filename and is_user_file(exc.filename):
        loc = (exc.filename, exc.lineno)
    else:
        loc = None
        for frame in reversed(frames):
            if is_user_file(frame.filename):
                loc = (frame.filename, frame.lineno)
                break
    message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {
        "type": type(exc).__name__,
        "message": message.splitlines()[-1] if message else type(exc).__name__,
        "file": os.path.relpath(os.path.realpath(loc[0]), ROOT) if loc else None,
        "line": loc[1] if loc else None,
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }


def load(rel, scene_base):
    """Loads one scene file as Manim does and lists its scenes (in the child)."""
    entry = {"file": rel, "scenes": []}
    path = os.path.join(ROOT, rel)
    # The same module name Manim gives a scene file (manim.utils.module_ops.get_module).
    name = ".".join(os.path.splitext(rel)[0].split(os.sep))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        spec.loader.exec_module(module)
        seen = set()
        found = []
        for obj in list(vars(module).values()):
            if (
                inspect.isclass(obj)
                and issubclass(obj, scene_base)
                and obj is not scene_base
                and obj.__module__.startswith(module.__name__)
                and id(obj) not in seen
            ):
                seen.add(id(obj))
                try:
                    line = inspect.getsourcelines(obj)[1]
                except (OSError, TypeError):
                    line = None
                bases = [b.__module__ + "." + b.__qualname__ for b in obj.__mro__[1:] if b is not object]
                found.append({"class": obj.__name__, "line": line, "bases": bases})
        # Source order; classes whose line is unknown keep definition order at the end.
        found.sort(key=lambda s: (s["line"] is None, s["line"] or 0))
        entry["scenes"] = found
    except BaseException as exc:  # noqa: BLE001 - report anything, including SystemExit
        entry["error"] = describe_error(exc)
    return entry


def load_clean(rel, scene_base):
    """`load`, then forgets the file's modules, so the next file in the same
    child imports its own helpers afresh."""
    before_modules = set(sys.modules)
    before_path = list(sys.path)
    name = ".".join(os.path.splitext(rel)[0].split(os.sep))
    try:
        return load(rel, scene_base)
    finally:
        for mod in set(sys.modules) - before_modules:
            m = sys.modules.get(mod)
            f = getattr(m, "__file__", None)
            if mod == name or (f and is_user_file(f)):
                sys.modules.pop(mod, None)
        sys.path[:] = before_path


def crash(rel, message):
    return {"file": rel, "scenes": [], "error": {
        "type": "Crash", "message": message, "file": rel, "line": None, "traceback": ""}}


def die_with(parent):
    """In a child: be killed when `parent` dies (parender killed with -9 takes
    its discovery with it, and the discovery its children)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG (Linux)
    except Exception:  # noqa: BLE001 - elsewhere, the process group still goes
        pass
    if os.getppid() != parent:
        os._exit(1)


def start(batch, scene_base):
    """Forks a child that loads the files of `batch` in order and writes each
    one's entry, one JSON line each, to a pipe."""
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            die_with(parent)
            os.close(r)
            # What the files print goes to stderr: stdout carries the report.
            os.dup2(2, 1)
            for rel in batch:
                entry = load_clean(rel, scene_base)
                try:
                    data = (json.dumps(entry) + "\n").encode()
                except BaseException as exc:  # noqa: BLE001
                    data = (json.dumps(crash(rel, "cannot report the scenes of %s: %s" % (rel, exc))) + "\n").encode()
                view = memoryview(data)
                while view:
                    view = view[os.write(w, view):]
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    return r, pid


def status_text(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = "signal %d" % sig
        return "crashed (signal %d, %s)" % (sig, name)
    return "exited (status %d)" % os.waitstatus_to_exitcode(status)


def drain(job):
    """Reads what is already in a job's pipe, without waiting."""
    fd = job["fd"]
    while fd is not None:
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            if not sel.select(0):
                return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        job["data"] += chunk


def take_reports(job, results):
    """Moves the whole lines a child wrote into `results`; True if any."""
    got = False
    while b"\n" in job["data"]:
        line, _, job["data"] = job["data"].partition(b"\n")
        if job["done"] >= len(job["batch"]):
            # More lines than files: something the files forked wrote too.
            job["data"] = b""
            break
        rel = job["batch"][job["done"]]
        try:
            entry = json.loads(line)
        except ValueError:
            entry = crash(rel, "the report about %s was garbled" % rel)
        entry["file"] = rel
        results[rel] = entry
        job["done"] += 1
        got = True
    return got


def main():
    timeout = float(sys.argv[1])
    files = sys.argv[2:]
    out = {"python": platform.python_version(), "executable": sys.executable, "manim": None, "files": []}
    try:
        import manim
        from manim.scene.scene import Scene
    except BaseException as exc:  # noqa: BLE001 - report anything, including SystemExit
        out["manim_error"] = describe_error(exc)
        print(json.dumps(out))
        return
    out["manim"] = getattr(manim, "__version__", "unknown")
    if not files:
        print(json.dumps(out))
        return
    # Children share the parent's memory copy-on-write: keep the collector
    # from touching (and so copying) every object Manim created.
    gc.freeze()
    try:
        width = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        width = os.cpu_count() or 1
    width = min(width, len(files)) or 1
    # Contiguous shares, one per child; what a failed child did not get to
    # goes back to the front of the queue as a batch of its own.
    size = -(-len(files) // width)
    queue = [files[i:i + size] for i in range(0, len(files), size)]
    results = {}
    running = []
    sel = selectors.DefaultSelector()
    while queue or running:
        while queue and len(running) < width:
            batch = queue.pop(0)
            fd, pid = start(batch, Scene)
            running.append({"batch": batch, "pid": pid, "fd": fd, "data": b"", "done": 0,
                            "deadline": time.monotonic() + timeout})
            sel.register(fd, selectors.EVENT_READ, running[-1])
        # Wake at the next deadline, and now and then to notice a child that
        # ended without writing (its pipe may be held open by what it started).
        wait = min(j["deadline"] for j in running) - time.monotonic()
        for key, _ in sel.select(max(0.0, min(wait, 0.1))):
            job = key.data
            chunk = os.read(job["fd"], 65536)
            job["data"] += chunk
            if not chunk:
                sel.unregister(job["fd"])
                os.close(job["fd"])
                job["fd"] = None
            if take_reports(job, results):
                # Each file gets its own time.
                job["deadline"] = time.monotonic() + timeout
        still = []
        for job in running:
            batch, pid = job["batch"], job["pid"]
            if job["done"] == len(batch):
                # All reported; it is exiting.
                reap(job, sel, kill=True)
                continue
            ended, status = os.waitpid(pid, os.WNOHANG)
            if ended:
                drain(job)
                take_reports(job, results)
                if job["done"] < len(batch):
                    rel = batch[job["done"]]
                    how = status_text(status)
                    hint = " (a top-level os._exit?)" if how == "exited (status 0)" else ""
                    results[rel] = crash(rel, "Python %s while loading %s%s, before it reported its scenes"
                                         % (how, rel, hint))
                    job["done"] += 1
                reap(job, sel, kill=False)
            elif time.monotonic() >= job["deadline"]:
                rel = batch[job["done"]]
                results[rel] = crash(rel, "loading %s took longer than %gs (module-level code that never ends?); it was stopped"
                                     % (rel, timeout))
                job["done"] += 1
                reap(job, sel, kill=True)
            else:
                still.append(job)
                continue
            if job["done"] < len(batch):
                queue.insert(0, batch[job["done"]:])
        running = still
    out["files"] = [results[rel] for rel in files]
    print(json.dumps(out))


def reap(job, sel, kill):
    """Ends a child (if `kill`), waits for it and closes its pipe."""
    if kill:
        try:
            os.kill(job["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(job["pid"], 0)
    if job["fd"] is not None:
        sel.unregister(job["fd"])
        os.close(job["fd"])
        job["fd"] = None


main()
