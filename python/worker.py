# parender warm worker: imports Manim once, then runs each request in a child
# forked from this process, the way `python -c SCRIPT ARGS...` would run it, so
# a render (or a discovery) skips the cold start and `import manim`. Started as
# `python -c <this>` with the project root as working directory (Manim reads
# manim.cfg from there when it is imported). Embedded in the parender binary.
#
# Protocol, one JSON document per line:
#   stdout  {"event":"ready","manim":VERSION,"python":VERSION,"pid":PID}
#           or {"event":"failed","error":TEXT,"traceback":TEXT} (then it exits)
#   stdin   {"id":N,"script":SOURCE,"argv":[S...],"env":{NAME:S},"cwd":S,
#            "stdout":S,"stderr":S}   where each S is a string, or
#            {"hex":BYTES} for a value that is not UTF-8 (os.fsdecode'd)
#   stdout  {"id":N,"event":"forked","pid":PID}
#           then {"id":N,"event":"exited","code":C} or {...,"signal":SIG}
#           or {"id":N,"event":"error","message":TEXT} if it could not fork
# One request at a time; end of stdin ends the worker. The worker has no
# threads of its own (forking is only safe so), and it never imports a scene
# module: module-level `config` changes would leak into later renders and
# edited code would be missed. Only the children do.
import gc
import json
import os
import platform
import sys
import traceback

sys.dont_write_bytecode = True
# `python -c` puts '' (the working directory) first on sys.path. Children get
# exactly that back; Manim is imported without it, as the render driver does
# (it pops '' before importing Manim), so a project file named like a library
# module cannot shadow it here either.
PATH_OF_C = list(sys.path)
if sys.path and sys.path[0] == "":
    sys.path.pop(0)

# The protocol uses private copies of stdin and stdout; fd 1 then points at
# stderr, so whatever an import prints cannot garble a reply, and fd 0 reads
# nothing (as the CLI renderer's stdin does). Both are closed in children.
REQUESTS = os.dup(0)
REPLIES = os.dup(1)
_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_null, 0)
os.close(_null)
os.dup2(2, 1)


def send(obj):
    data = memoryview((json.dumps(obj) + "\n").encode())
    while data:
        data = data[os.write(REPLIES, data):]


def os_str(value):
    """A string of the request as Python's own argv and environ hold it."""
    if isinstance(value, dict):
        return os.fsdecode(bytes.fromhex(value["hex"]))
    return value


def requests():
    """The request lines, read without Python's buffering: a child inherits
    no half-read request."""
    buf = b""
    while True:
        while b"\n" not in buf:
            chunk = os.read(REQUESTS, 1 << 16)
            if not chunk:
                return
            buf += chunk
        line, _, buf = buf.partition(b"\n")
        yield line


def import_manim():
    """Everything a render imports, imported once; the version, or None
    after reporting why it failed."""
    try:
        import manim
        import manim.__main__  # noqa: F401
        import manim.renderer.cairo_renderer  # noqa: F401
        import manim.scene.scene_file_writer  # noqa: F401
        import numpy  # noqa: F401
        import rich.console  # noqa: F401
    except BaseException as exc:  # noqa: BLE001 - report anything, SystemExit too
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        send({"event": "failed", "error": message, "traceback": traceback.format_exc()})
        return None
    return getattr(manim, "__version__", "unknown")


def prctl(option, value):
    import ctypes

    ctypes.CDLL(None).prctl(option, value, 0, 0, 0)


def contain(parent):
    """In a child: lead a process group of its own (parender stops the group),
    die with the worker (PR_SET_PDEATHSIG), and keep the orphans of its
    descendants below it (PR_SET_CHILD_SUBREAPER), as parender's CLI renders
    do, so parender's walk of the tree finds them."""
    os.setpgid(0, 0)
    try:
        prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
        prctl(36, 1)  # PR_SET_CHILD_SUBREAPER
    except Exception:  # noqa: BLE001 - not Linux: the process group still goes
        pass
    if os.getppid() != parent:
        os._exit(1)


def redirect(req):
    os.close(REQUESTS)
    os.close(REPLIES)
    for fd, key in ((1, "stdout"), (2, "stderr")):
        f = os.open(os_str(req[key]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(f, fd)
        os.close(f)


def become_python_c(req):
    """The state `python -c SCRIPT ARGS...` would start the script in."""
    os.environ.update({k: os_str(v) for k, v in req["env"].items()})
    os.chdir(os_str(req["cwd"]))
    sys.argv = ["-c"] + [os_str(a) for a in req["argv"]]
    sys.path[:] = PATH_OF_C
    # `random` reseeds itself in a forked child; numpy's global generator
    # does not, and a fresh process would draw fresh entropy.
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()


def run(script):
    """Runs `script` as `__main__` and returns its exit code, as the
    interpreter would: SystemExit's code, 1 after an uncaught exception."""
    import builtins
    import types

    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main
    try:
        exec(compile(script, "<string>", "exec"), main.__dict__)
    except SystemExit as exc:
        return exit_code(exc.code)
    except KeyboardInterrupt:
        uncaught()
        return DIED_OF_SIGINT
    except BaseException:  # noqa: BLE001
        uncaught()
        return 1
    return 0


def uncaught():
    """Prints the exception being handled as the interpreter would, from the
    script's first frame (this worker's own frame left out)."""
    kind, exc, tb = sys.exc_info()
    tb = tb.tb_next if tb is not None else None
    sys.excepthook(kind, exc.with_traceback(tb), tb)


# Python's death by an uncaught KeyboardInterrupt: it kills itself with SIGINT.
DIED_OF_SIGINT = "SIGINT"


def exit_code(code):
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def finish(code):
    """What the interpreter does on the way out, then leave without running
    the worker's own cleanup: wait for the script's threads, run atexit
    handlers, flush."""
    try:
        import atexit
        import threading

        getattr(threading, "_shutdown", lambda: None)()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    if code == DIED_OF_SIGINT:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(code & 0xFF if isinstance(code, int) else 1)


def child(req, parent):
    code = 1
    try:
        contain(parent)
        redirect(req)
        become_python_c(req)
        code = run(req["script"])
    except BaseException:  # noqa: BLE001 - the setup failed: say why, on its stderr
        traceback.print_exc()
    finally:
        finish(code)


def serve(line):
    try:
        req = json.loads(line)
        rid = req["id"]
    except (ValueError, KeyError, TypeError) as exc:
        send({"id": None, "event": "error", "message": "bad request: %s" % exc})
        return
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError as exc:
        send({"id": rid, "event": "error", "message": "cannot fork: %s" % exc})
        return
    if pid == 0:
        child(req, parent)
    # Also here, so the group exists before parender can signal it.
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass
    send({"id": rid, "event": "forked", "pid": pid})
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        send({"id": rid, "event": "exited", "signal": os.WTERMSIG(status)})
    else:
        send({"id": rid, "event": "exited", "code": os.waitstatus_to_exitcode(status)})


def main():
    version = import_manim()
    if version is None:
        sys.exit(1)
    # Children share this memory copy-on-write: keep the collector from
    # touching (and so copying) every object Manim created.
    gc.freeze()
    send({"event": "ready", "manim": version, "python": platform.python_version(), "pid": os.getpid()})
    for line in requests():
        serve(line)


main()
