# parender scene discovery: asks Python (and Manim) which classes in each file
# Manim itself would render. Run with the project root as the working directory;
# reads a JSON list of file paths (relative to the root) on stdin and prints one
# JSON document on stdout. Embedded in the parender binary.
import importlib.util
import inspect
import json
import os
import platform
import sys
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


def main():
    files = json.loads(sys.stdin.read())
    out = {"python": platform.python_version(), "executable": sys.executable, "manim": None, "files": []}
    try:
        import manim
        from manim.scene.scene import Scene
    except BaseException as exc:  # noqa: BLE001 - report anything, including SystemExit
        out["manim_error"] = describe_error(exc)
        print(json.dumps(out))
        return
    out["manim"] = getattr(manim, "__version__", "unknown")
    for rel in files:
        entry = {"file": rel, "scenes": []}
        path = os.path.join(ROOT, rel)
        before_modules = set(sys.modules)
        before_path = list(sys.path)
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
                    and issubclass(obj, Scene)
                    and obj is not Scene
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
        except BaseException as exc:  # noqa: BLE001 - a broken file must not stop discovery of others
            entry["error"] = describe_error(exc)
        finally:
            for mod in set(sys.modules) - before_modules:
                m = sys.modules.get(mod)
                f = getattr(m, "__file__", None)
                if mod == name or (f and is_user_file(f)):
                    sys.modules.pop(mod, None)
            sys.path[:] = before_path
        out["files"].append(entry)
    print(json.dumps(out))


main()
