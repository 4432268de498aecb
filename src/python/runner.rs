//! [`Runner`]: one project's way of running Python scripts, warm when it
//! can be.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use super::{PythonRun, WarmPool, run_cli};
use crate::procs::Finished;

/// What a warm worker fixed when it imported Manim: a change to any of it
/// needs new workers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    manim: String,
    /// `manim.cfg` in the project root, which Manim reads at import.
    manim_cfg: Option<blake3::Hash>,
    size: usize,
}

#[derive(Default)]
struct State {
    /// What the workers must match (set by [`Runner::refresh`]).
    wanted: Option<Stamp>,
    pool: Option<(Stamp, Arc<WarmPool>)>,
    /// The workers could not start for this stamp: runs go cold, and the
    /// reason was given once.
    failed: Option<Stamp>,
    /// A warning not yet handed out.
    warning: Option<String>,
}

/// Runs Python scripts for one project: forked from warm workers (started
/// on first use, restarted when Manim, `manim.cfg` or the job count
/// changes), else, when the workers cannot start or the CLI backend was
/// chosen, as a fresh process per run, with one warning.
pub struct Runner {
    python: PathBuf,
    root: PathBuf,
    /// Where the workers' scratch folder goes (`.parender/tmp`).
    scratch: PathBuf,
    warm: bool,
    state: Mutex<State>,
}

impl Runner {
    pub fn new(python: &Path, root: &Path, scratch: &Path, warm: bool) -> Runner {
        Runner {
            python: python.to_path_buf(),
            root: root.to_path_buf(),
            scratch: scratch.to_path_buf(),
            warm,
            state: Mutex::new(State::default()),
        }
    }

    /// A fresh Python per run, always.
    pub fn cold(python: &Path) -> Runner {
        Runner::new(python, Path::new("."), Path::new("."), false)
    }

    pub fn python(&self) -> &Path {
        &self.python
    }

    /// Says which Manim the workers must have imported (the toolchain's
    /// probe, once per build) and how many there are; workers that do not
    /// match are stopped (renders in flight keep theirs until they end).
    pub async fn refresh(&self, manim: &str, size: usize) {
        if !self.warm {
            return;
        }
        let cfg = std::fs::read(self.root.join("manim.cfg")).ok();
        let stamp = Stamp {
            manim: manim.to_string(),
            manim_cfg: cfg.map(|b| blake3::hash(&b)),
            size: size.max(1),
        };
        let mut s = self.state.lock().await;
        if s.pool.as_ref().is_some_and(|(p, _)| *p != stamp) {
            tracing::debug!("restarting the warm workers: {stamp:?}");
            s.pool = None;
        }
        s.wanted = Some(stamp);
    }

    /// Starts the workers now (`watch` does, so the first edit finds them
    /// ready). A no-op when they run or cannot.
    pub async fn warm_up(&self) {
        let _ = self.pool().await;
    }

    /// The warning about falling back to fresh processes, once.
    pub async fn take_warning(&self) -> Option<String> {
        self.state.lock().await.warning.take()
    }

    /// Runs `run` as `python -c SCRIPT ARGS...` would.
    pub async fn run(
        &self,
        run: &PythonRun,
        cancel: &CancellationToken,
    ) -> std::io::Result<Finished> {
        match self.pool().await {
            Some(pool) => pool.run_script(run, cancel).await,
            None => run_cli(&self.python, run.clone(), cancel).await,
        }
    }

    /// The warm workers for the wanted stamp, started if need be.
    async fn pool(&self) -> Option<Arc<WarmPool>> {
        let mut s = self.state.lock().await;
        let wanted = s.wanted.clone()?;
        if let Some((stamp, pool)) = &s.pool
            && *stamp == wanted
        {
            return Some(pool.clone());
        }
        if s.failed.as_ref() == Some(&wanted) {
            return None;
        }
        match WarmPool::start(&self.python, &self.root, wanted.size, &self.scratch).await {
            Ok(pool) => {
                let pool = Arc::new(pool);
                s.pool = Some((wanted, pool.clone()));
                Some(pool)
            }
            Err(e) => {
                s.warning = Some(format!(
                    "the warm render workers cannot start ({e}); each scene renders in a fresh Python instead (set `[render] backend = \"cli\"` in parender.toml to skip the attempt)"
                ));
                s.failed = Some(wanted);
                None
            }
        }
    }
}
