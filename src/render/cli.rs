//! [`ManimRenderer`], the CLI backend (`[render] backend = "cli"`): the
//! render driver in a fresh Python process per scene (its own process
//! group, its own media folder, a timeout). It pays the cold start and
//! `import manim` on every render; the warm backend ([`super::warm`]) runs
//! the same driver without them, and falls back to this one when its
//! workers cannot start.
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use super::driver::render_with;
use super::{Progress, RenderFuture, RenderJob, Renderer};
use crate::python::run_cli;

pub struct ManimRenderer {
    pub python: PathBuf,
}

impl Renderer for ManimRenderer {
    fn render<'a>(
        &'a self,
        job: &'a RenderJob,
        progress: Progress<'a>,
        cancel: &'a CancellationToken,
    ) -> RenderFuture<'a> {
        let python = &self.python;
        Box::pin(render_with(job, progress, python, move |run| {
            run_cli(python, run, cancel)
        }))
    }
}
