//! [`ManimRenderer`]: Manim's own command line in a fresh Python process per
//! scene (its own process group, its own media folder, a timeout).
//!
//! The process runs `python -c <render_driver.py> render FILE CLASS ...` with
//! the project root as working directory: exactly `manim render FILE CLASS`,
//! plus hooks that record the exception (with the innermost frame in the
//! user's own code) and per-animation progress as JSON lines, so nobody has
//! to parse Rich's tracebacks.
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{
    Progress, RenderFailure, RenderFuture, RenderJob, Rendered, Renderer, find_output, manim_args,
    scene_seed,
};
use crate::procs::{self, Outcome};
use crate::scene::SceneError;

const DRIVER_PY: &str = include_str!("../../python/render_driver.py");

pub struct ManimRenderer {
    pub python: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum DriverEvent {
    Started {},
    Animation {
        index: u32,
    },
    Error {
        message: String,
        file: Option<String>,
        line: Option<u32>,
        #[serde(default)]
        traceback: String,
    },
}

fn read_events(path: &Path, from: usize) -> (Vec<DriverEvent>, usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return (Vec::new(), from);
    };
    // Only whole lines: the driver may be half-way through writing the last.
    let whole: Vec<&str> = text
        .split_inclusive('\n')
        .filter(|l| l.ends_with('\n'))
        .collect();
    let events = whole
        .iter()
        .skip(from)
        .filter_map(|l| serde_json::from_str(l.trim_end()).ok())
        .collect();
    (events, whole.len().max(from))
}

impl ManimRenderer {
    fn command(&self, job: &RenderJob, report: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.python);
        cmd.arg("-c")
            .arg(DRIVER_PY)
            .arg("render")
            .arg(&job.scene.file)
            .arg(&job.scene.class)
            .args(manim_args(&job.settings))
            .arg("--media_dir")
            .arg(&job.media_dir)
            .arg("--progress_bar")
            .arg("none")
            // No "a newer version is available" HTTP request after each render.
            .arg("--silent")
            .current_dir(&job.project_root)
            .env("PARENDER_REPORT", report)
            .env("PARENDER_SEED", scene_seed(&job.scene).to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1")
            // Rich wraps at 80 columns off a terminal; keep log lines whole.
            .env("COLUMNS", "200")
            .env("NO_COLOR", "1");
        cmd
    }

    async fn run(
        &self,
        job: &RenderJob,
        progress: Progress<'_>,
        cancel: &CancellationToken,
    ) -> Result<Rendered, RenderFailure> {
        let report = job.media_dir.join("parender-events.jsonl");
        let fail = |message: String, log_tail: String| RenderFailure::Failed {
            error: SceneError::plain(message),
            traceback: String::new(),
            log_tail,
        };
        if let Err(e) = std::fs::create_dir_all(&job.media_dir) {
            return Err(fail(
                format!("cannot create {}: {e}", job.media_dir.display()),
                String::new(),
            ));
        }
        // Never mistake the previous render's output for this one's.
        let _ = std::fs::remove_file(&report);
        if let Some(old) = find_output(
            &job.media_dir,
            &job.scene.file,
            &job.scene.class,
            &job.settings,
        ) {
            // Its sound and subtitles too: this render may have none.
            for ext in ["wav", "srt"] {
                let _ = std::fs::remove_file(old.with_extension(ext));
            }
            let _ = std::fs::remove_file(old);
        }
        let cmd = self.command(job, &report);
        let run = procs::run_group(cmd, job.scene.timeout, cancel);
        tokio::pin!(run);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut seen = 0;
        let finished = loop {
            tokio::select! {
                f = &mut run => break f,
                _ = tick.tick() => {
                    let (events, n) = read_events(&report, seen);
                    seen = n;
                    for e in events {
                        if let DriverEvent::Animation { index } = e {
                            progress(index);
                        }
                    }
                }
            }
        };
        let finished = finished.map_err(|e| {
            fail(
                format!("cannot run Python `{}`: {e}", self.python.display()),
                String::new(),
            )
        })?;
        let mut log = finished.stdout.clone();
        log.extend_from_slice(&finished.stderr);
        let log_tail = procs::tail_lines(&log, 40);
        match finished.outcome {
            Outcome::TimedOut => return Err(RenderFailure::TimedOut(job.scene.timeout)),
            Outcome::Cancelled => return Err(RenderFailure::Cancelled),
            Outcome::Exited(status) => {
                let (events, _) = read_events(&report, 0);
                let error = events.into_iter().find_map(|e| match e {
                    DriverEvent::Error {
                        message,
                        file,
                        line,
                        traceback,
                    } => Some((
                        SceneError {
                            file,
                            line,
                            message,
                        },
                        traceback,
                    )),
                    _ => None,
                });
                if let Some((error, traceback)) = error {
                    return Err(RenderFailure::Failed {
                        error,
                        traceback,
                        log_tail,
                    });
                }
                if !status.success() {
                    let last = procs::tail_lines(&finished.stderr, 1);
                    return Err(fail(
                        format!(
                            "Manim exited with {status}{}",
                            if last.is_empty() {
                                String::new()
                            } else {
                                format!(": {last}")
                            }
                        ),
                        log_tail,
                    ));
                }
            }
        }
        match find_output(
            &job.media_dir,
            &job.scene.file,
            &job.scene.class,
            &job.settings,
        ) {
            Some(video) => Ok(Rendered::with_siblings(video, log_tail)),
            None => Err(fail(
                format!(
                    "Manim finished but wrote no video for {} (does `construct` play anything?)",
                    job.scene.class
                ),
                log_tail,
            )),
        }
    }
}

impl Renderer for ManimRenderer {
    fn render<'a>(
        &'a self,
        job: &'a RenderJob,
        progress: Progress<'a>,
        cancel: &'a CancellationToken,
    ) -> RenderFuture<'a> {
        Box::pin(self.run(job, progress, cancel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_read_incrementally() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("e.jsonl");
        std::fs::write(
            &f,
            "{\"event\":\"started\",\"pid\":1}\n{\"event\":\"animation\",\"index\":0}\n",
        )
        .unwrap();
        let (e, n) = read_events(&f, 0);
        assert_eq!(e.len(), 2);
        assert_eq!(n, 2);
        let (e, _) = read_events(&f, n);
        assert!(e.is_empty());
    }
}
