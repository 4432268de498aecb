# parender's Ray client: one long-lived local process (started as
# `python -c <this>`) that connects to the Ray cluster once and runs each
# render as one Ray task. Embedded in the parender binary.
#
# Protocol, one JSON document per line:
#   stdin   first line: {"address":S|null,"cpus":N,"root":S,"scratch":S,"excludes":[S],
#                        "worker":SOURCE,"python_env":{NAME:S}}
#   stdout  {"event":"ready","ray":VERSION,"cpus":N,"address":S}
#           or {"event":"failed","error":TEXT,"fix":TEXT} (then it exits)
#   stdin   {"op":"run","id":N,"script":S,"argv":[V],"env":{NAME:V},"cwd":V,
#            "collect":[V],"dirs":[V],"mounts":[{"local":S,"rel":S}],"timeout":SECONDS}
#           where V is {"s":S} (a string kept as is), {"hex":BYTES} (not
#           UTF-8) or {"rel":S} (a path relative to the task's working
#           directory); each mount names the local folder (the project root,
#           or a collected folder outside it) found at `rel` there
#   stdin   {"op":"cancel","id":N}   (ray.cancel(force=True) of that run)
#   stdin   {"op":"probe","id":N}    (a task that imports Manim)
#   stdout  {"id":N,"code":C}|{"id":N,"signal":S} plus "timed_out":bool,
#           "stdout":HEX,"stderr":HEX,"node":S,"pid":N,"files":N
#           or {"id":N,"cancelled":true}, {"id":N,"error":TEXT},
#           {"id":N,"manim":VERSION,"node":S}
# Files the task brings back (everything created or changed under the
# collected paths) are written under the local root before the answer.
# End of stdin ends the client.
import json
import os
import sys
import threading
import time
import traceback

PROTOCOL = os.dup(1)
os.dup2(2, 1)
_send_lock = threading.Lock()


def send(obj):
    data = memoryview((json.dumps(obj) + "\n").encode())
    with _send_lock:
        while data:
            data = data[os.write(PROTOCOL, data):]


def log(msg):
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)


def host_port(address):
    a = address
    if a.startswith("ray://"):
        a = a[len("ray://"):]
    a = a.split("/", 1)[0]
    host, _, port = a.rpartition(":")
    if not host:
        return a, None
    return host.strip("[]"), int(port)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


# ---------------------------------------------------------------- the task
# Everything below up to `connect` runs on a Ray worker (pickled by value).


def _state():
    """This worker process's state, kept across tasks: the warm helper."""
    import types

    mod = sys.modules.get("_parender_ray_state")
    if mod is None:
        mod = types.ModuleType("_parender_ray_state")
        mod.helper = None
        sys.modules["_parender_ray_state"] = mod
    return mod


# Run before worker.py in the helper. The helper dies with its Ray worker
# (PR_SET_PDEATHSIG; Ray also kills a worker's children when it ends, which
# ray.cancel(force=True) does), and worker.py's renders die with the helper
# (their own PR_SET_PDEATHSIG), but what a render started would not: a
# watchdog process, forked first, hears of every render the helper forks
# and, once the helper is gone (end of file on its pipe), kills the process
# groups of those still running (each render leads its own group).
_HELPER_PREFIX = r"""
import ctypes as _c, os as _o
try:
    _c.CDLL(None).prctl(1, 9, 0, 0, 0)
except Exception:
    pass
if _o.getppid() != int(_o.environ.pop("PARENDER_RAY_PARENT", "0")):
    _o._exit(1)


def _parender_watchdog():
    r, w = _o.pipe()
    if _o.fork() == 0:
        _o.close(w)
        null = _o.open(_o.devnull, _o.O_RDWR)
        for fd in (0, 1):
            _o.dup2(null, fd)
        running, buf = set(), b""
        while True:
            chunk = _o.read(r, 4096)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                pid = int(line[1:])
                (running.add if line[:1] == b"+" else running.discard)(pid)
        for pid in running:
            for kill in (_o.killpg, _o.kill):
                try:
                    kill(pid, 9)
                except OSError:
                    pass
        _o._exit(0)
    _o.close(r)
    helper, fork, waitpid = _o.getpid(), _o.fork, _o.waitpid

    def tell(what):
        if _o.getpid() == helper:
            _o.write(w, what.encode())

    def watched_fork():
        pid = fork()
        if pid == 0:
            if _o.getppid() == helper:
                _o.close(w)
        else:
            tell("+%d\n" % pid)
        return pid

    def watched_waitpid(pid, options):
        got = waitpid(pid, options)
        if got[0] > 0:
            tell("-%d\n" % got[0])
        return got

    _o.fork, _o.waitpid = watched_fork, watched_waitpid


_parender_watchdog()
del _parender_watchdog
"""


def _read_line(proc, deadline):
    """The helper's next reply, or None at the deadline or its end of output."""
    import select

    buf = proc._parender_buf
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            proc._parender_buf = buf
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            proc._parender_buf = buf
            raise EOFError("the warm helper exited")
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    proc._parender_buf = rest
    return json.loads(line)


def _helper(worker_src, python_env):
    """This worker's warm helper: a single-threaded Python that imported
    Manim once (python/worker.py), started on first use."""
    import subprocess

    st = _state()
    h = st.helper
    if h is not None and h.poll() is None:
        return h
    env = dict(os.environ)
    env.update(python_env)
    env["PARENDER_RAY_PARENT"] = str(os.getpid())
    h = subprocess.Popen(
        [sys.executable, "-c", _HELPER_PREFIX + worker_src],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=os.getcwd(),
        env=env,
    )
    h._parender_buf = b""
    first = _read_line(h, time.monotonic() + 300)
    if not first or first.get("event") != "ready":
        h.kill()
        h.wait()
        err = (first or {}).get("traceback") or (first or {}).get("error") or "no answer"
        raise RuntimeError("the warm helper could not import Manim on %s:\n%s" % (_node(), err))
    st.helper = h
    return h


def _node():
    import socket

    return socket.gethostname()


def _value(v, wd):
    if "rel" in v:
        return os.path.join(wd, v["rel"]) if v["rel"] else wd
    if "hex" in v:
        return os.fsdecode(bytes.fromhex(v["hex"]))
    return v["s"]


def _snapshot(paths):
    seen = {}
    for p in paths:
        if os.path.isfile(p):
            st = os.stat(p)
            seen[p] = (st.st_mtime_ns, st.st_size)
        for d, _, files in os.walk(p):
            for f in files:
                full = os.path.join(d, f)
                try:
                    st = os.stat(full)
                except OSError:
                    continue
                seen[full] = (st.st_mtime_ns, st.st_size)
    return seen


def _tail(path, keep=64 * 1024):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - keep))
            return f.read()
    except OSError:
        return b""


def render_task(worker_src, python_env, req):
    """One run of a script, as `python -c` would run it, forked from this
    worker's warm helper; the files it made under the collected paths come
    back with its exit status and output."""
    wd = os.getcwd()
    argv = [_value(a, wd) for a in req["argv"]]
    env = {k: _value(v, wd) for k, v in req["env"].items()}
    env["PARENDER_RAY_NODE"] = _node()
    cwd = _value(req["cwd"], wd)
    collect = [_value(c, wd) for c in req["collect"]]
    for d in req.get("dirs", []):
        os.makedirs(_value(d, wd), exist_ok=True)
    # What an earlier run on this node left must not pass for this run's.
    if env.get("PARENDER_REPORT"):
        try:
            os.remove(env["PARENDER_REPORT"])
        except OSError:
            pass
    before = _snapshot(collect)
    tmp = os.path.join(wd, ".parender", "ray-tmp")
    os.makedirs(tmp, exist_ok=True)
    out = os.path.join(tmp, "%d-%d.out" % (os.getpid(), req["id"]))
    err = os.path.join(tmp, "%d-%d.err" % (os.getpid(), req["id"]))
    h = _helper(worker_src, python_env)
    msg = {"id": req["id"], "script": req["script"], "argv": argv, "env": env,
           "cwd": cwd, "stdout": out, "stderr": err}
    h.stdin.write((json.dumps(msg) + "\n").encode())
    h.stdin.flush()
    deadline = time.monotonic() + req["timeout"]
    timed_out = False
    child = None
    while True:
        reply = _read_line(h, None if timed_out else deadline)
        if reply is None:
            # The timeout: end the render's process group, then hear its end.
            timed_out = True
            if child:
                import signal

                try:
                    os.killpg(child, signal.SIGKILL)
                except OSError:
                    pass
            continue
        if reply.get("event") == "forked":
            child = reply["pid"]
        elif reply.get("event") == "error":
            raise RuntimeError(reply.get("message"))
        elif reply.get("event") == "exited":
            break
    result = {
        "timed_out": timed_out,
        "stdout": _tail(out),
        "stderr": _tail(err),
        "wd": wd,
        "node": _node(),
        "pid": os.getpid(),
        "files": {},
    }
    if "signal" in reply:
        result["signal"] = reply["signal"]
    else:
        result["code"] = reply["code"]
    for p in (out, err):
        try:
            os.remove(p)
        except OSError:
            pass
    for path, stamp in _snapshot(collect).items():
        if before.get(path) != stamp:
            try:
                with open(path, "rb") as f:
                    result["files"][os.path.relpath(path, wd)] = f.read()
            except OSError:
                pass
    return result


def probe_task():
    import manim

    return {"manim": getattr(manim, "__version__", "unknown"), "node": _node()}


# ---------------------------------------------------------------- the client


def connect(cfg):
    address = cfg.get("address")
    try:
        host, port = host_port(address) if address else (None, None)
        if host in LOOPBACK:
            # Ray would otherwise replace a loopback address by this machine's
            # outward one, where a loopback head does not listen. Read when
            # Ray is imported.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        try:
            import ray
        except ImportError as exc:
            return None, (
                "Ray is not installed in %s: %s" % (sys.executable, exc),
                "%s -m pip install ray   (the same version as on the cluster; "
                "\"ray[client]\" for a ray:// address)" % sys.executable,
            )
        if port is not None:
            import socket

            try:
                socket.create_connection((host, port), 5).close()
            except OSError as exc:
                return None, (
                    "the Ray cluster at %s does not answer: %s" % (address, exc),
                    "start it (`ray start --head` on the head node) or correct "
                    "`[executor] address` in parender.toml (host:port of the head, "
                    "by default port 6379, or ray://host:10001 for Ray Client)",
                )
        ray.init(
            address=address or "auto",
            runtime_env={"working_dir": cfg["root"], "excludes": cfg["excludes"]},
            logging_level="WARNING",
            log_to_driver=False,
            configure_logging=False,
        )
        return ray, None
    except BaseException as exc:  # noqa: BLE001 - report anything
        log(traceback.format_exc())
        return None, (
            "cannot connect to the Ray cluster at %s: %s"
            % (address or "auto", "".join(traceback.format_exception_only(type(exc), exc)).strip()),
            "start it (`ray start --head`) or check `[executor] address` in parender.toml",
        )


class Client:
    def __init__(self, ray, cfg):
        self.ray = ray
        self.cfg = cfg
        self.refs = {}
        self.lock = threading.Lock()
        self.upload_lock = threading.Lock()
        self.remote = ray.remote(num_cpus=cfg.get("cpus") or 1, max_retries=0)(render_task)
        self.probe = ray.remote(num_cpus=0, max_retries=0)(probe_task)

    def runtime_env(self):
        """The project as it is now, uploaded if it changed (content
        addressed: an unchanged project is not sent again). The job's
        runtime_env (uploaded by ray.init) is what Ray Client uses."""
        if self.ray.util.client.ray.is_connected():
            return None
        from ray._private.runtime_env.working_dir import upload_working_dir_if_needed

        env = {"working_dir": self.cfg["root"], "excludes": self.cfg["excludes"]}
        include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
        with self.upload_lock:
            try:
                env = upload_working_dir_if_needed(
                    env, include_gitignore=include_gitignore,
                    scratch_dir=self.cfg["scratch"], logger=None)
            except TypeError:  # Ray before include_gitignore
                env = upload_working_dir_if_needed(
                    env, scratch_dir=self.cfg["scratch"], logger=None)
        return {"working_dir": env["working_dir"]}

    def submit(self, remote, *args):
        env = self.runtime_env()
        if env is not None:
            remote = remote.options(runtime_env=env)
        return remote.remote(*args)

    def handle(self, req):
        op = req.get("op")
        rid = req.get("id")
        if op == "cancel":
            with self.lock:
                ref = self.refs.get(rid)
            if ref is not None:
                log("cancel %s" % rid)
                try:
                    self.ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - it may have finished
                    log(traceback.format_exc())
            return
        threading.Thread(target=self.serve, args=(req,), daemon=True).start()

    def serve(self, req):
        rid = req.get("id")
        try:
            if req.get("op") == "probe":
                ref = self.submit(self.probe)
                send(dict(self.ray.get(ref), id=rid))
                return
            started = time.monotonic()
            ref = self.submit(self.remote, self.cfg["worker"], self.cfg["python_env"], req)
            with self.lock:
                self.refs[rid] = ref
            try:
                result = self.ray.get(ref)
            finally:
                with self.lock:
                    self.refs.pop(rid, None)
            send(self.answer(rid, req, result))
            log("run %s done on %s (pid %s) in %.2f s, %d files back"
                % (rid, result["node"], result["pid"], time.monotonic() - started,
                   len(result["files"])))
        except BaseException as exc:  # noqa: BLE001 - every request is answered
            if type(exc).__name__ in ("TaskCancelledError", "WorkerCrashedError") and req.get("op") == "run":
                log("run %s cancelled" % rid)
                send({"id": rid, "cancelled": True})
                return
            log(traceback.format_exc())
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            send({"id": rid, "error": text})

    @staticmethod
    def places(wd, mounts):
        """(remote folder, local folder) pairs, the innermost first."""
        pairs = [(os.path.join(wd, m["rel"]) if m["rel"] else wd, m["local"]) for m in mounts]
        pairs += [(os.path.realpath(r), l) for r, l in pairs]
        return sorted(set(pairs), key=lambda p: -len(p[0]))

    @staticmethod
    def local_text(places, data):
        """`data` with the task's folders named as their local ones."""
        for remote, local in places:
            data = data.replace(remote.encode(), local.encode())
        return data

    @staticmethod
    def local_path(places, path):
        """Where the task's file `path` goes locally; None outside the mounts."""
        for remote, local in places:
            rest = os.path.relpath(path, remote)
            if rest == "." or rest.startswith(".." + os.sep) or rest == "..":
                continue
            dest = os.path.normpath(os.path.join(local, rest))
            if dest.startswith(os.path.normpath(local) + os.sep):
                return dest
        return None

    def answer(self, rid, req, result):
        wd = result["wd"]
        places = self.places(wd, req["mounts"])
        for rel, data in result["files"].items():
            dest = self.local_path(places, os.path.join(wd, rel))
            if dest is None:
                continue
            if rel.endswith((".jsonl", ".log", ".txt", ".srt")):
                data = self.local_text(places, data)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            tmp = "%s.parender-%d.tmp" % (dest, threading.get_ident())
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        reply = {
            "id": rid,
            "timed_out": result["timed_out"],
            "stdout": self.local_text(places, result["stdout"]).hex(),
            "stderr": self.local_text(places, result["stderr"]).hex(),
            "node": result["node"],
            "pid": result["pid"],
            "files": len(result["files"]),
        }
        if "signal" in result:
            reply["signal"] = result["signal"]
        else:
            reply["code"] = result["code"]
        return reply


def lines():
    for raw in sys.stdin.buffer:
        raw = raw.strip()
        if raw:
            yield json.loads(raw)


def main():
    it = lines()
    cfg = next(it, None)
    if cfg is None:
        return
    ray, failure = connect(cfg)
    if failure:
        send({"event": "failed", "error": failure[0], "fix": failure[1]})
        sys.exit(1)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    address = cfg.get("address") or "auto"
    log("connected to %s: ray %s, %d CPUs" % (address, ray.__version__, cpus))
    send({"event": "ready", "ray": ray.__version__, "cpus": cpus, "address": address})
    os.makedirs(cfg["scratch"], exist_ok=True)
    client = Client(ray, cfg)
    for req in it:
        client.handle(req)


main()
