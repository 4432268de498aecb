//! Where scene renders run when they leave this machine: the executors
//! behind the same [`RunScript`](crate::python::RunScript) seam as the local
//! warm workers, so the render driver, scheduling (longest first), timeouts
//! and progress work the same wherever a render runs.
//!
//! - [`slurm`]: one Slurm job step (`srun`) per render, on a shared file
//!   system;
//! - [`ray`]: one Ray task per render, the project shipped as the task's
//!   `working_dir`, the video coming back as the task's result.
pub mod ray;
pub mod slurm;

use std::path::Path;
use std::sync::Arc;

use crate::config::{ExecutorConfig, ExecutorKind};
use crate::python::RunScript;

/// The runner for renders on the configured cluster, or `None` for local
/// renders.
pub fn cluster_runner(
    config: &ExecutorConfig,
    python: &Path,
    root: &Path,
    scratch: &Path,
) -> Option<Arc<dyn RunScript>> {
    match config.kind {
        ExecutorKind::Local => None,
        ExecutorKind::Slurm => Some(Arc::new(slurm::SlurmRunner::new(config, python))),
        ExecutorKind::Ray => Some(Arc::new(ray::RayRunner::new(config, python, root, scratch))),
    }
}

/// Whether the configured cluster answers: `Ok(what answered)`, or
/// `Err((what is wrong, how to fix it))`, for `parender doctor`.
pub async fn check(
    config: &ExecutorConfig,
    python: &Path,
    root: &Path,
    scratch: &Path,
) -> Option<Result<String, (String, String)>> {
    match config.kind {
        ExecutorKind::Local => None,
        ExecutorKind::Slurm => Some(slurm::SlurmRunner::new(config, python).check().await),
        ExecutorKind::Ray => Some(
            ray::RayRunner::new(config, python, root, scratch)
                .check()
                .await,
        ),
    }
}
