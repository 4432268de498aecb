//! [`WarmRenderer`], the default backend: the render driver in a child
//! forked from a warm worker (see [`crate::python`]), with the same
//! arguments, environment and judgement as [`super::cli::ManimRenderer`],
//! without the cold start.
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::driver::render_with;
use super::{Progress, RenderFuture, RenderJob, Renderer};
use crate::python::{RunScript, Runner};

/// Renders through the project's [`Runner`] (warm workers, or fresh
/// processes when they cannot start), or through any other [`RunScript`]
/// (one pool, in tests).
pub struct WarmRenderer<R: RunScript + ?Sized = Runner> {
    pub runner: Arc<R>,
}

impl<R: RunScript + ?Sized> Renderer for WarmRenderer<R> {
    fn render<'a>(
        &'a self,
        job: &'a RenderJob,
        progress: Progress<'a>,
        cancel: &'a CancellationToken,
    ) -> RenderFuture<'a> {
        let runner = &self.runner;
        Box::pin(render_with(
            job,
            progress,
            runner.python(),
            move |run| async move { runner.run(&run, cancel).await },
        ))
    }
}
