//! [`SlurmRunner`]: each run is one Slurm job step (`srun`). SKELETON: to be
//! implemented.
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::config::ExecutorConfig;
use crate::procs::Finished;
use crate::python::{PythonRun, RunScript};

pub struct SlurmRunner {
    python: PathBuf,
    #[allow(dead_code)]
    config: ExecutorConfig,
}

impl SlurmRunner {
    pub fn new(config: &ExecutorConfig, python: &Path) -> SlurmRunner {
        SlurmRunner {
            python: python.to_path_buf(),
            config: config.clone(),
        }
    }

    pub async fn check(&self) -> Result<String, (String, String)> {
        Err(("not implemented".into(), "".into()))
    }
}

impl RunScript for SlurmRunner {
    fn python(&self) -> &Path {
        &self.python
    }
    fn run<'a>(
        &'a self,
        _run: &'a PythonRun,
        _cancel: &'a CancellationToken,
    ) -> futures::future::BoxFuture<'a, std::io::Result<Finished>> {
        Box::pin(async { Err(std::io::Error::other("slurm executor: not implemented")) })
    }
}
