//! Running Python scripts for a project: as a fresh process ([`run_cli`]),
//! or forked from a warm worker that imported Manim once ([`pool`]). Both
//! run a script exactly as `python -c SCRIPT ARGS...` would, so the render
//! driver and the discovery script give the same answers either way; the
//! warm path only skips the interpreter's start and `import manim`.
//! [`Runner`] chooses between them for one project and keeps its pool fresh.
pub mod pool;
mod runner;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::procs::{self, Finished};
pub use pool::{WarmError, WarmPool};
pub use runner::Runner;

/// Something that runs Python scripts as `python -c` would: the project's
/// [`Runner`], or one [`WarmPool`].
pub trait RunScript: Send + Sync {
    /// The interpreter, to name in errors.
    fn python(&self) -> &Path;
    fn run<'a>(
        &'a self,
        run: &'a PythonRun,
        cancel: &'a CancellationToken,
    ) -> futures::future::BoxFuture<'a, std::io::Result<Finished>>;
    /// How many runs a cluster takes at once (its CPUs over the CPUs per
    /// run), when it can say; `None` for this machine.
    fn slots(&self) -> futures::future::BoxFuture<'_, Option<usize>> {
        Box::pin(async { None })
    }
}

impl RunScript for Runner {
    fn python(&self) -> &Path {
        Runner::python(self)
    }
    fn run<'a>(
        &'a self,
        run: &'a PythonRun,
        cancel: &'a CancellationToken,
    ) -> futures::future::BoxFuture<'a, std::io::Result<Finished>> {
        Box::pin(Runner::run(self, run, cancel))
    }
}

impl RunScript for WarmPool {
    fn python(&self) -> &Path {
        WarmPool::python(self)
    }
    fn run<'a>(
        &'a self,
        run: &'a PythonRun,
        cancel: &'a CancellationToken,
    ) -> futures::future::BoxFuture<'a, std::io::Result<Finished>> {
        Box::pin(self.run_script(run, cancel))
    }
}

/// The environment of every Python that runs the driver, CLI or warm. Some of
/// it is read only when the interpreter starts (`PYTHONUNBUFFERED`,
/// `PYTHONDONTWRITEBYTECODE`) or when Manim is imported (Rich reads
/// `COLUMNS` and `NO_COLOR` when Manim creates its consoles), so a warm
/// worker starts with it rather than getting it per request.
pub const PYTHON_ENV: &[(&str, &str)] = &[
    ("PYTHONDONTWRITEBYTECODE", "1"),
    ("PYTHONUNBUFFERED", "1"),
    // Rich wraps at 80 columns off a terminal; keep log lines whole.
    ("COLUMNS", "200"),
    ("NO_COLOR", "1"),
];

/// One run of a script as `python -c SCRIPT ARGS...`, in `cwd`, with `env`
/// added to parender's environment: what both the CLI and the warm path run.
#[derive(Debug, Clone)]
pub struct PythonRun {
    pub script: String,
    pub args: Vec<OsString>,
    pub env: Vec<(String, OsString)>,
    pub cwd: PathBuf,
    pub timeout: Duration,
}

impl PythonRun {
    /// The same run as a fresh process of `python`.
    pub fn command(&self, python: &Path) -> Command {
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg(&self.script)
            .args(&self.args)
            .current_dir(&self.cwd)
            .envs(PYTHON_ENV.iter().copied())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }
}

/// `python`, run as [`procs::run_group`] runs any render: the CLI path.
pub async fn run_cli(
    python: &Path,
    run: PythonRun,
    cancel: &CancellationToken,
) -> std::io::Result<Finished> {
    procs::run_group(run.command(python), run.timeout, cancel).await
}
