//! The render driver, and how a run of it becomes a render's result.
//!
//! Every render runs `python/render_driver.py` as `python -c DRIVER render
//! FILE CLASS ...` with the project root as working directory: exactly
//! `manim render FILE CLASS`, plus hooks that record the exception (with the
//! innermost frame in the user's own code) and per-animation progress as
//! JSON lines, so nobody has to parse Rich's tracebacks. Where that Python
//! runs is the renderer's business: a fresh process ([`run_cli`], the CLI
//! backend) or a child forked from a warm worker ([`super::warm`]); the
//! arguments, environment and the judgement of the outcome are the same.
use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Progress, RenderFailure, RenderJob, Rendered, find_output, manim_args, scene_seed};
use crate::ffmpeg::VideoInfo;
use crate::procs::{self, Finished, Outcome};
use crate::python::PythonRun;
use crate::scene::SceneError;
pub(crate) const DRIVER_PY: &str = include_str!("../../python/render_driver.py");

/// The render driver's run for `job`: exactly `manim render FILE CLASS` with
/// parender's flags (see [`crate::render`]), reporting events to `report`.
pub fn render_run(job: &RenderJob, report: &Path) -> PythonRun {
    let mut args: Vec<OsString> = vec!["render".into(), job.scene.file.clone().into()];
    args.push(job.scene.class.clone().into());
    args.extend(manim_args(&job.settings).into_iter().map(OsString::from));
    args.extend(["--media_dir".into(), job.media_dir.clone().into_os_string()]);
    // No "a newer version is available" HTTP request after each render.
    args.extend(["--progress_bar", "none", "--silent"].map(OsString::from));
    PythonRun {
        script: DRIVER_PY.to_string(),
        args,
        env: job
            .extra_env
            .iter()
            .map(|(k, v)| (k.clone(), v.into()))
            .chain([
                ("PARENDER_REPORT".into(), report.as_os_str().to_owned()),
                (
                    "PARENDER_SEED".into(),
                    scene_seed(&job.scene).to_string().into(),
                ),
            ])
            .collect(),
        cwd: job.project_root.clone(),
        timeout: job.scene.timeout,
    }
}

fn failed(message: String, log_tail: String) -> RenderFailure {
    RenderFailure::Failed {
        error: SceneError::plain(message),
        traceback: String::new(),
        log_tail,
    }
}

/// Renders `job` with the render driver run by `launch` (a fresh process,
/// [`run_cli`], or a warm worker, [`WarmPool::run_script`]): the media
/// folder prepared, progress reported while it runs, its outcome judged.
/// `python` only names the interpreter in errors.
pub async fn render_with<L, F>(
    job: &RenderJob,
    progress: Progress<'_>,
    python: &Path,
    launch: L,
) -> Result<Rendered, RenderFailure>
where
    L: FnOnce(PythonRun) -> F,
    F: Future<Output = std::io::Result<Finished>>,
{
    let report = job.media_dir.join("parender-events.jsonl");
    prepare(job, &report)?;
    let run = launch(render_run(job, &report));
    let finished = follow(run, &report, progress).await.map_err(|e| {
        failed(
            format!(
                "cannot start the render (Python `{}`): {e}",
                python.display()
            ),
            String::new(),
        )
    })?;
    judge(job, &report, finished)
}

/// Creates the media folder and removes what a previous render left, so it
/// is never mistaken for this one's output.
fn prepare(job: &RenderJob, report: &Path) -> Result<(), RenderFailure> {
    if let Err(e) = std::fs::create_dir_all(&job.media_dir) {
        let message = format!("cannot create {}: {e}", job.media_dir.display());
        return Err(failed(message, String::new()));
    }
    let _ = std::fs::remove_file(report);
    let scene = &job.scene;
    if let Some(old) = find_output(&job.media_dir, &scene.file, &scene.class, &job.settings) {
        // Its sound and subtitles too: this render may have none.
        for ext in ["wav", "srt"] {
            let _ = std::fs::remove_file(old.with_extension(ext));
        }
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// Awaits `run`, passing each animation the driver reports to `progress`.
async fn follow<F>(run: F, report: &Path, progress: Progress<'_>) -> F::Output
where
    F: Future,
{
    tokio::pin!(run);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut seen = 0;
    loop {
        tokio::select! {
            f = &mut run => return f,
            _ = tick.tick() => {
                let (events, n) = read_events(report, seen);
                seen = n;
                for e in events {
                    if let DriverEvent::Animation { index } = e {
                        progress(index);
                    }
                }
            }
        }
    }
}

/// The render's result from how the driver ended, the error it reported,
/// and the video it left.
fn judge(job: &RenderJob, report: &Path, finished: Finished) -> Result<Rendered, RenderFailure> {
    let mut log = finished.stdout.clone();
    log.extend_from_slice(&finished.stderr);
    let log_tail = procs::tail_lines(&log, 40);
    let status = match finished.outcome {
        Outcome::TimedOut => return Err(RenderFailure::TimedOut(job.scene.timeout)),
        Outcome::Cancelled => return Err(RenderFailure::Cancelled),
        Outcome::Exited(status) => status,
    };
    let (events, _) = read_events(report, 0);
    if let Some((error, traceback)) = reported_error(&events) {
        return Err(RenderFailure::Failed {
            error,
            traceback,
            log_tail,
        });
    }
    if !status.success() {
        let last = procs::tail_lines(&finished.stderr, 1);
        let last = if last.is_empty() {
            String::new()
        } else {
            format!(": {last}")
        };
        return Err(failed(
            format!("Manim exited with {status}{last}"),
            log_tail,
        ));
    }
    let scene = &job.scene;
    match find_output(&job.media_dir, &scene.file, &scene.class, &job.settings) {
        Some(video) => {
            let probed = reported_movie(&events, &video);
            let stopped_at = events.iter().find_map(|e| match e {
                DriverEvent::Stopped { at } => Some(*at),
                _ => None,
            });
            let resumed_time = events.iter().find_map(|e| match e {
                DriverEvent::Resumed { time } => Some(*time),
                _ => None,
            });
            Ok(Rendered {
                probed,
                stopped_at,
                resumed_time,
                ..Rendered::with_siblings(video, log_tail)
            })
        }
        None => Err(failed(
            format!(
                "Manim finished but wrote no video for {} (does `construct` play anything?)",
                scene.class
            ),
            log_tail,
        )),
    }
}

/// The first error the driver reported, with its traceback.
fn reported_error(events: &[DriverEvent]) -> Option<(SceneError, String)> {
    events.iter().find_map(|e| match e {
        DriverEvent::Error {
            message,
            file,
            line,
            traceback,
        } => Some((
            SceneError {
                file: file.clone(),
                line: *line,
                message: message.clone(),
            },
            traceback.clone(),
        )),
        _ => None,
    })
}

/// The format the driver read back from `video` (see [`Rendered::probed`]),
/// if it reported one for that very file and it makes sense.
fn reported_movie(events: &[DriverEvent], video: &Path) -> Option<(VideoInfo, bool)> {
    let real = std::fs::canonicalize(video).ok()?;
    events.iter().rev().find_map(|e| match e {
        DriverEvent::Movie { path, info } if *path == real && info.video.is_sane() => {
            Some((info.video.clone(), info.audio))
        }
        _ => None,
    })
}

/// A movie's format as the driver reports it: [`VideoInfo`]'s fields and
/// whether there is an audio stream.
#[derive(Debug, Deserialize)]
struct Probed {
    #[serde(flatten)]
    video: VideoInfo,
    audio: bool,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum DriverEvent {
    /// It stopped before animation `at`, as asked (see `render::steal`).
    Stopped {
        at: u32,
    },
    /// A piece drew its first animation at scene time `time`.
    Resumed {
        time: f64,
    },
    Movie {
        path: PathBuf,
        info: Probed,
    },
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
