//! Which Python runs Manim, and where ffmpeg is: resolved once per command.
use std::path::{Path, PathBuf};

use std::os::unix::fs::MetadataExt;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::project::Project;

/// The pinned Manim version the project's set-up installs.
pub const PINNED_MANIM: &str = "0.22.0";

#[derive(Debug, Clone)]
pub struct Toolchain {
    /// The Python interpreter that imports Manim.
    pub python: PathBuf,
    /// How it was chosen, for `doctor` and error messages.
    pub source: String,
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
}

fn setup_help() -> String {
    format!(
        "create the project's venv: `python3 -m venv .venv && .venv/bin/pip install manim=={PINNED_MANIM}`, \
         or set `python = \"/path/to/python\"` in parender.toml (run `parender doctor` for details)"
    )
}

/// The interpreter named on a script's `#!` line (pip's console scripts).
fn shebang_interpreter(script: &Path) -> Option<PathBuf> {
    let text = std::fs::read(script).ok()?;
    let first = text.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(first).ok()?.strip_prefix("#!")?.trim();
    let mut parts = line.split_whitespace();
    let prog = parts.next()?;
    if prog.ends_with("/env") {
        return which::which(parts.next()?).ok();
    }
    Some(PathBuf::from(prog))
}

fn resolve_program(project: &Project, name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = project.root.join(name);
        p.exists().then_some(p)
    } else {
        which::which(name).ok()
    }
}

/// Whether this process may execute `path` (`access(X_OK)`: as root, some
/// execute bit must be set).
fn executable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// The interpreter named by `python = "..."`: a path (with a `/`, from the
/// project root) or a command on PATH; an error that says what is wrong
/// with it (missing, a folder, not executable) and how to fix that.
fn resolve_configured_python(project: &Project, py: &str) -> Result<PathBuf, Error> {
    let not_executable = |p: &Path| Error::Toolchain {
        message: format!(
            "the Python interpreter `{py}` set in parender.toml ({}) is not executable",
            p.display()
        ),
        help: format!(
            "make it executable (`chmod +x {}`), or set `python` to an interpreter that has Manim",
            p.display()
        ),
    };
    if py.contains('/') {
        // `components` drops the `.` of `./py`, so messages show a clean path.
        let p: PathBuf = project.root.join(py).components().collect();
        return match std::fs::metadata(&p) {
            Err(e) => Err(Error::Toolchain {
                message: format!(
                    "the Python interpreter `{py}` set in parender.toml ({}) does not exist: {e}",
                    p.display()
                ),
                help: setup_help(),
            }),
            Ok(m) if m.is_dir() => Err(Error::Toolchain {
                message: format!(
                    "the Python interpreter `{py}` set in parender.toml ({}) is a folder",
                    p.display()
                ),
                help: format!(
                    "name the interpreter inside it, e.g. `python = \"{}/bin/python\"`",
                    py.trim_end_matches('/')
                ),
            }),
            Ok(_) if !executable(&p) => Err(not_executable(&p)),
            Ok(_) => Ok(p),
        };
    }
    if let Ok(p) = which::which(py) {
        return Ok(p);
    }
    // On PATH but not executable: say so, not "does not exist".
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(py);
            if p.is_file() {
                return Err(not_executable(&p));
            }
        }
    }
    let local = project.root.join(py);
    Err(Error::Toolchain {
        message: format!("the Python interpreter `{py}` set in parender.toml is not on PATH"),
        help: if local.exists() {
            format!("to use the file in the project folder, write `python = \"./{py}\"`")
        } else {
            setup_help()
        },
    })
}

/// The Python environment an executable is installed in: `pip install
/// parender` puts the binary into `<env>/bin/` beside that environment's
/// interpreter, the way ruff's and uv's wheels do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledEnv {
    /// The environment's folder (`<env>`).
    pub root: PathBuf,
    /// Its interpreter, `<env>/bin/python3` (or `python`), not resolved: a
    /// venv's `bin/python` is a link to the base interpreter, and only the
    /// link's path makes Python use the venv.
    pub python: PathBuf,
    /// A virtual environment (`pyvenv.cfg`) rather than a conda environment
    /// or another prefix that pip installed parender into.
    pub venv: bool,
}

impl InstalledEnv {
    /// The environment `exe` (this process's executable, as
    /// [`std::env::current_exe`] gives it: links already resolved) lives in,
    /// if it lives in one: its folder is `<env>/bin`, next to a `python3`
    /// or `python`, and `<env>` is a venv (`pyvenv.cfg`), a conda
    /// environment (`conda-meta/`) or a prefix that pip installed parender
    /// into (`lib/python*/site-packages/parender-*.dist-info`). A binary
    /// merely copied next to some interpreter (`cargo install --root /usr/local`
    /// beside `/usr/local/bin/python3`) is not in an environment: that
    /// interpreter need not have Manim, and the project's `.venv` must win.
    pub fn of_executable(exe: &Path) -> Option<InstalledEnv> {
        let bin = exe.parent()?;
        if bin.file_name()? != "bin" {
            return None;
        }
        let root = bin.parent()?;
        let python = ["python3", "python"]
            .iter()
            .map(|name| bin.join(name))
            .find(|p| p.is_file())?;
        let venv = root.join("pyvenv.cfg").is_file();
        if !venv && !root.join("conda-meta").is_dir() && !installed_by_pip(root) {
            return None;
        }
        Some(InstalledEnv {
            root: root.to_path_buf(),
            python,
            venv,
        })
    }

    /// How `doctor` and error messages name this choice.
    pub fn why(&self) -> String {
        format!(
            "the Python environment parender is installed in ({})",
            self.root.display()
        )
    }
}

/// Whether pip installed parender into the prefix `root`: a
/// `parender-*.dist-info` folder in one of its `lib/python*/site-packages`.
fn installed_by_pip(root: &Path) -> bool {
    let Ok(libs) = std::fs::read_dir(root.join("lib")) else {
        return false;
    };
    libs.flatten()
        .filter(|lib| lib.file_name().to_string_lossy().starts_with("python"))
        .filter_map(|lib| std::fs::read_dir(lib.path().join("site-packages")).ok())
        .flatten()
        .flatten()
        .any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("parender-") && name.ends_with(".dist-info")
        })
}

impl Toolchain {
    pub fn resolve(project: &Project) -> Result<Toolchain, Error> {
        let (python, source) = Self::resolve_python(project)?;
        let ffmpeg = which::which("ffmpeg").map_err(|_| Error::Toolchain {
            message: "ffmpeg was not found on PATH".into(),
            help: "install it: `apt-get install ffmpeg` (or run scripts/setup.sh)".into(),
        })?;
        let ffprobe = which::which("ffprobe").map_err(|_| Error::Toolchain {
            message: "ffprobe was not found on PATH".into(),
            help: "install it: `apt-get install ffmpeg` (or run scripts/setup.sh)".into(),
        })?;
        Ok(Toolchain {
            python,
            source,
            ffmpeg,
            ffprobe,
        })
    }

    /// The interpreter that runs Manim and why it was chosen, first found of:
    /// `python` in parender.toml, the `#!` line of `manim` in parender.toml,
    /// the Python environment parender itself is installed in (`pip install
    /// parender`), the project's `.venv`, the `#!` line of `manim` on PATH.
    pub fn resolve_python(project: &Project) -> Result<(PathBuf, String), Error> {
        let cfg = &project.config;
        if let Some(py) = &cfg.python {
            return resolve_configured_python(project, py)
                .map(|p| (p, format!("`python = \"{py}\"` in parender.toml")));
        }
        if let Some(m) = &cfg.manim {
            let script = resolve_program(project, m).ok_or_else(|| Error::Toolchain {
                message: format!("the Manim command `{m}` set in parender.toml was not found"),
                help: setup_help(),
            })?;
            return shebang_interpreter(&script)
                .map(|p| {
                    (
                        p,
                        format!("the `#!` line of `{m}` (`manim` in parender.toml)"),
                    )
                })
                .ok_or_else(|| Error::Toolchain {
                    message: format!("cannot tell which Python runs `{}`", script.display()),
                    help: "set `python = \"/path/to/python\"` in parender.toml instead".into(),
                });
        }
        if let Some(env) = std::env::current_exe()
            .ok()
            .and_then(|exe| InstalledEnv::of_executable(&exe))
        {
            let why = env.why();
            return Ok((env.python, why));
        }
        let venv = project.root.join(".venv/bin/python");
        if venv.exists() {
            return Ok((venv, "the project's .venv".into()));
        }
        if let Ok(manim) = which::which("manim")
            && let Some(py) = shebang_interpreter(&manim)
        {
            return Ok((py, format!("the `#!` line of {}", manim.display())));
        }
        Err(Error::Toolchain {
            message: "no Python with Manim found: no `.venv` in the project and no `manim` on PATH"
                .into(),
            help: format!(
                "{}; or install parender into the environment that has Manim (`pip install parender`)",
                setup_help()
            ),
        })
    }
}

/// What identifies an installed toolchain without running it: the
/// interpreter binary and Manim's package file, by path, size and mtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ToolStamp {
    python: PathBuf,
    python_real: (PathBuf, u64, i64),
    manim_init: Option<(PathBuf, u64, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Probed {
    stamp: ToolStamp,
    versions: ToolVersions,
}

fn stat(p: &Path) -> Option<(PathBuf, u64, i64)> {
    let real = std::fs::canonicalize(p).ok()?;
    let m = std::fs::metadata(&real).ok()?;
    Some((real, m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec()))
}

const PROBE_PY: &str = "import importlib.metadata as m, importlib.util as u, json, platform\n\
try:\n    v = m.version('manim')\nexcept Exception:\n    v = None\n\
s = u.find_spec('manim')\n\
print(json.dumps({'python': platform.python_version(), 'manim': v, 'init': s.origin if s else None}))";

/// How long the version probe may take: it imports no Manim, so a Python
/// that takes longer hangs (a broken `sitecustomize`, a stuck network mount).
pub const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The Python and Manim versions, probed once (without importing Manim)
/// and remembered in `memo` while the interpreter and Manim's package file
/// are unchanged.
pub async fn versions(
    python: &Path,
    memo: &Path,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<ToolVersions, Error> {
    if let Ok(bytes) = std::fs::read(memo)
        && let Ok(p) = serde_json::from_slice::<Probed>(&bytes)
        && p.stamp.python == python
        && stat(python).as_ref() == Some(&p.stamp.python_real)
        && p.stamp.manim_init.as_ref().map(|(path, _, _)| stat(path))
            == p.stamp.manim_init.as_ref().map(|s| Some(s.clone()))
    {
        return Ok(p.versions);
    }
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg("-c").arg(PROBE_PY);
    let out = crate::procs::run_group(cmd, PROBE_TIMEOUT, cancel)
        .await
        .map_err(|e| Error::Toolchain {
            message: if e.kind() == std::io::ErrorKind::PermissionDenied {
                format!(
                    "the Python interpreter `{}` is not executable: {e}",
                    python.display()
                )
            } else {
                format!("cannot run Python `{}`: {e}", python.display())
            },
            help: setup_help(),
        })?;
    match out.outcome {
        crate::procs::Outcome::Exited(_) => {}
        crate::procs::Outcome::Cancelled => return Err(Error::Interrupted),
        crate::procs::Outcome::TimedOut => {
            let said = crate::procs::tail_lines(&out.stderr, 5);
            return Err(Error::Toolchain {
                message: format!(
                    "`{}` did not answer a version probe (`python -c \"import platform...\"`) within {}s; it was stopped{}",
                    python.display(),
                    PROBE_TIMEOUT.as_secs(),
                    if said.trim().is_empty() {
                        String::new()
                    } else {
                        format!(". It said:\n{said}")
                    }
                ),
                help: format!(
                    "check that `{} -c pass` returns at once (a hanging sitecustomize, .pth file or network mount?), or set `python = \"...\"` in parender.toml to another interpreter",
                    python.display()
                ),
            });
        }
    }
    #[derive(Deserialize)]
    struct Raw {
        python: String,
        manim: Option<String>,
        init: Option<PathBuf>,
    }
    let raw: Raw = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            let said = crate::procs::tail_lines(&out.stderr, 3);
            Error::Toolchain {
                message: format!(
                    "`{}` did not answer a version probe ({}): {}",
                    python.display(),
                    match out.outcome {
                        crate::procs::Outcome::Exited(s) => s.to_string(),
                        _ => "stopped".into(),
                    },
                    if said.trim().is_empty() {
                        "it printed nothing"
                    } else {
                        said.as_str()
                    }
                ),
                help: setup_help(),
            }
        })?;
    let manim = raw.manim.ok_or_else(|| Error::Toolchain {
        message: format!("Manim is not installed for `{}`", python.display()),
        help: format!(
            "install it into that interpreter: `{} -m pip install manim=={PINNED_MANIM}`",
            python.display()
        ),
    })?;
    let versions = ToolVersions {
        python: raw.python,
        manim,
    };
    if let Some(python_real) = stat(python) {
        let probed = Probed {
            stamp: ToolStamp {
                python: python.to_path_buf(),
                python_real,
                manim_init: raw.init.as_deref().and_then(stat),
            },
            versions: versions.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&probed) {
            let _ = crate::fsutil::write_atomic(memo, &bytes);
        }
    }
    Ok(versions)
}

/// The versions that go into every fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolVersions {
    pub python: String,
    pub manim: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_shebangs() {
        let t = tempfile::tempdir().unwrap();
        let s = t.path().join("manim");
        std::fs::write(&s, "#!/opt/venv/bin/python3.11\nimport sys\n").unwrap();
        assert_eq!(
            shebang_interpreter(&s),
            Some(PathBuf::from("/opt/venv/bin/python3.11"))
        );
        std::fs::write(&s, "no shebang\n").unwrap();
        assert_eq!(shebang_interpreter(&s), None);
    }

    /// A fake installation: `files` (ending in `/` for folders) under a
    /// temp dir, interpreters as links to a real file like a venv's.
    fn layout(files: &[&str]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let base = t.path().join("base-python3.11");
        std::fs::write(&base, "").unwrap();
        for f in files {
            let p = t.path().join(f);
            if let Some(dir) = f.strip_suffix('/') {
                std::fs::create_dir_all(t.path().join(dir)).unwrap();
                continue;
            }
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python")
            {
                std::os::unix::fs::symlink(&base, &p).unwrap();
            } else {
                std::fs::write(&p, "").unwrap();
            }
        }
        t
    }

    #[test]
    fn finds_the_venv_parender_is_installed_in() {
        let t = layout(&[
            "env/pyvenv.cfg",
            "env/bin/python",
            "env/bin/python3",
            "env/bin/parender",
        ]);
        let env = InstalledEnv::of_executable(&t.path().join("env/bin/parender")).unwrap();
        assert_eq!(env.root, t.path().join("env"));
        // The venv's own link, not the base interpreter it points at.
        assert_eq!(env.python, t.path().join("env/bin/python3"));
        assert!(env.venv);
        assert_eq!(
            env.why(),
            format!(
                "the Python environment parender is installed in ({})",
                t.path().join("env").display()
            )
        );
        // Only `python`: that one.
        let t = layout(&["env/pyvenv.cfg", "env/bin/python", "env/bin/parender"]);
        let env = InstalledEnv::of_executable(&t.path().join("env/bin/parender")).unwrap();
        assert_eq!(env.python, t.path().join("env/bin/python"));
    }

    #[test]
    fn finds_conda_and_pip_prefixes() {
        let t = layout(&["env/conda-meta/", "env/bin/python", "env/bin/parender"]);
        let env = InstalledEnv::of_executable(&t.path().join("env/bin/parender")).unwrap();
        assert_eq!(env.python, t.path().join("env/bin/python"));
        assert!(!env.venv);
        let t = layout(&[
            "usr/lib/python3.12/site-packages/parender-0.1.0.dist-info/",
            "usr/bin/python3",
            "usr/bin/parender",
        ]);
        let env = InstalledEnv::of_executable(&t.path().join("usr/bin/parender")).unwrap();
        assert_eq!(env.python, t.path().join("usr/bin/python3"));
    }

    #[test]
    fn ignores_binaries_outside_an_environment() {
        // cargo's build folder, even inside a project with a venv.
        let t = layout(&["pyvenv.cfg", "debug/python3", "debug/parender"]);
        assert_eq!(
            InstalledEnv::of_executable(&t.path().join("debug/parender")),
            None
        );
        // `cargo install --root /usr/local` beside a system interpreter
        // that pip never installed parender for.
        let t = layout(&[
            "usr/lib/python3.12/site-packages/manim-0.22.0.dist-info/",
            "usr/bin/python3",
            "usr/bin/parender",
        ]);
        assert_eq!(
            InstalledEnv::of_executable(&t.path().join("usr/bin/parender")),
            None
        );
        // A venv's bin/ without an interpreter, or with a dangling link.
        let t = layout(&["env/pyvenv.cfg", "env/bin/parender"]);
        assert_eq!(
            InstalledEnv::of_executable(&t.path().join("env/bin/parender")),
            None
        );
        std::os::unix::fs::symlink(
            t.path().join("gone/python3"),
            t.path().join("env/bin/python3"),
        )
        .unwrap();
        assert_eq!(
            InstalledEnv::of_executable(&t.path().join("env/bin/parender")),
            None
        );
        // Paths without enough components.
        assert_eq!(InstalledEnv::of_executable(Path::new("/")), None);
        assert_eq!(InstalledEnv::of_executable(Path::new("parender")), None);
    }
}
