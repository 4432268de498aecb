//! Rendering one scene: the [`Renderer`] seam and its real implementation,
//! [`ManimRenderer`], which runs Manim's own command line in a fresh Python
//! process per scene (its own process group, its own media folder, a timeout).
//!
//! The process runs `python -c <render_driver.py> render FILE CLASS ...` with
//! the project root as working directory: exactly `manim render FILE CLASS`,
//! plus hooks that record the exception (with the innermost frame in the
//! user's own code) and per-animation progress as JSON lines, so nobody has
//! to parse Rich's tracebacks.
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::procs::{self, Outcome};
use crate::scene::{Scene, SceneError};
use crate::settings::RenderSettings;

const DRIVER_PY: &str = include_str!("../python/render_driver.py");

#[derive(Debug, Clone)]
pub struct RenderJob {
    pub scene: Scene,
    pub settings: RenderSettings,
    pub project_root: PathBuf,
    /// This scene's own media folder (Manim's `--media_dir`), kept between
    /// renders (Manim's own caches of Tex and Text live there).
    pub media_dir: PathBuf,
    /// The render's fingerprint.
    pub key: String,
}

#[derive(Debug, Clone)]
pub struct Rendered {
    pub video: PathBuf,
    /// The scene's own sound as Manim composed it (`<Class>.wav` beside the
    /// video, for `add_sound`): sample-exact from the first frame, unlike the
    /// AAC copy in the video, which keeps the encoder's delay.
    pub sound: Option<PathBuf>,
    /// `<Class>.srt` beside the video, for `add_subcaption`.
    pub subtitles: Option<PathBuf>,
    pub log_tail: String,
}

impl Rendered {
    /// A render's video and, when they exist, its sound and subtitles.
    pub fn with_siblings(video: PathBuf, log_tail: String) -> Rendered {
        let sibling = |ext| Some(video.with_extension(ext)).filter(|p| p.is_file());
        Rendered {
            sound: sibling("wav"),
            subtitles: sibling("srt"),
            video,
            log_tail,
        }
    }
}

#[derive(Debug, Clone)]
pub enum RenderFailure {
    /// The scene raised (or Manim failed) with this error.
    Failed {
        error: SceneError,
        traceback: String,
        log_tail: String,
    },
    TimedOut(Duration),
    Cancelled,
}

impl RenderFailure {
    pub fn error(&self) -> SceneError {
        match self {
            RenderFailure::Failed { error, .. } => error.clone(),
            RenderFailure::TimedOut(d) => SceneError::plain(format!(
                "timed out after {} (raise `timeout` in parender.toml if the scene needs longer)",
                crate::report::human_duration(*d)
            )),
            RenderFailure::Cancelled => SceneError::plain("cancelled"),
        }
    }
}

/// Progress callback: called with the index of each animation as it starts.
pub type Progress<'a> = &'a (dyn Fn(u32) + Send + Sync);

pub type RenderFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Rendered, RenderFailure>> + Send + 'a>>;

/// Renders one scene to a video file inside `job.media_dir`.
pub trait Renderer: Send + Sync {
    fn render<'a>(
        &'a self,
        job: &'a RenderJob,
        progress: Progress<'a>,
        cancel: &'a CancellationToken,
    ) -> RenderFuture<'a>;
}

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

/// Manim's output for a scene: `videos/<file stem>/<height>p<fps>/<Class>.mp4`.
/// Computed, not parsed from the log; a search below `videos/` covers Manim
/// versions that lay it out differently.
pub fn find_output(
    media: &Path,
    file: &str,
    class: &str,
    settings: &RenderSettings,
) -> Option<PathBuf> {
    let stem = Path::new(file).file_stem()?.to_string_lossy().into_owned();
    let expected = media
        .join("videos")
        .join(&stem)
        .join(settings.folder_name())
        .join(format!("{class}.mp4"));
    if expected.is_file() {
        return Some(expected);
    }
    // Another layout, but always this quality's folder: the media folder
    // also holds renders at other qualities.
    let mut found = None;
    let target = format!("{class}.mp4");
    let folder = settings.folder_name();
    let _ = crate::discover::walk(&media.join("videos"), &mut |p| {
        let in_partials = p
            .components()
            .any(|c| c.as_os_str() == "partial_movie_files");
        let in_quality = p
            .parent()
            .and_then(|d| d.file_name())
            .is_some_and(|d| d.to_string_lossy() == folder);
        if !in_partials
            && in_quality
            && p.file_name().is_some_and(|n| n.to_string_lossy() == target)
        {
            found = Some(p.to_path_buf());
        }
    });
    found
}

/// The seed of `random` and `numpy.random` for a scene that sets none: a
/// function of its name, so every render of it draws the same numbers (and
/// two scenes do not draw the same ones). Below 2^32, as numpy requires.
pub fn scene_seed(scene: &Scene) -> u32 {
    let h = blake3::hash(scene.id.as_str().as_bytes());
    let b = h.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Arguments for `manim render` beyond the scene: the settings' flags, and
/// Manim's own cache off. Manim's per-animation cache (partial movie files
/// named by a hash of each `play`, reused across renders) was measured making
/// repeated renders of one scene differ with Manim 0.22, and its hash misses
/// some changes (updaters, Manim issues #974 and #339). parender stores every
/// render under the hash of its inputs and shares it (`incremental == clean`),
/// so each render is made afresh. Users who pass the flag get it once.
pub fn manim_args(settings: &RenderSettings) -> Vec<String> {
    let mut args = settings.manim_flags();
    if !args.iter().any(|a| a == "--disable_caching") {
        args.push("--disable_caching".into());
    }
    args
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

/// A fast, deterministic stand-in for Manim, for tests of everything
/// around rendering (selected with `PARENDER_FAKE_RENDERER=1`). It renders
/// one second of a solid colour derived from the render's key, with the key
/// in the file's metadata, so equal outputs mean equal inputs. It sleeps
/// `PARENDER_FAKE_RENDER_SECONDS` first (to test edits and kills during a
/// render) and fails when the scene file contains `parender-fake: fail`.
pub struct FakeRenderer {
    pub ffmpeg: crate::media::Ffmpeg,
}

impl FakeRenderer {
    async fn run(
        &self,
        job: &RenderJob,
        progress: Progress<'_>,
        cancel: &CancellationToken,
    ) -> Result<Rendered, RenderFailure> {
        let fail = |m: String| RenderFailure::Failed {
            error: SceneError::plain(m),
            traceback: String::new(),
            log_tail: String::new(),
        };
        let delay: f64 = std::env::var("PARENDER_FAKE_RENDER_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        progress(0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(delay)) => {}
            _ = cancel.cancelled() => return Err(RenderFailure::Cancelled),
        }
        let source =
            std::fs::read_to_string(job.project_root.join(&job.scene.file)).unwrap_or_default();
        if let Some(n) = source
            .lines()
            .position(|l| l.contains("parender-fake: fail"))
        {
            return Err(RenderFailure::Failed {
                error: SceneError {
                    file: Some(job.scene.file.clone()),
                    line: Some(n as u32 + 1),
                    message: "RuntimeError: fake failure".into(),
                },
                traceback: String::new(),
                log_tail: String::new(),
            });
        }
        let stem = Path::new(&job.scene.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = job
            .media_dir
            .join("videos")
            .join(stem)
            .join(job.settings.folder_name());
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        let out = dir.join(format!("{}.mp4", job.scene.class));
        let colour = &job.key[..6];
        let src = format!(
            "color=c=0x{colour}:s={}x{}:r={}:d=1",
            job.settings.width, job.settings.height, job.settings.fps
        );
        let status = tokio::process::Command::new(&self.ffmpeg.ffmpeg)
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &src])
            .args([
                "-c:v",
                "libx264",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-video_track_timescale", "15360", "-metadata"])
            .arg(format!("comment={}", job.key))
            .arg(&out)
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !status.success() {
            return Err(fail(format!("ffmpeg failed: {status}")));
        }
        Ok(Rendered {
            video: out,
            sound: None,
            subtitles: None,
            log_tail: format!("fake render of {}", job.key),
        })
    }
}

impl Renderer for FakeRenderer {
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
    use crate::settings::Quality;

    fn settings() -> RenderSettings {
        RenderSettings {
            quality: Quality::Low,
            width: 854,
            height: 480,
            fps: 15,
            manim_args: vec![],
        }
    }

    #[test]
    fn output_path_is_computed_even_for_partial_in_names() {
        let t = tempfile::tempdir().unwrap();
        let v = t
            .path()
            .join("videos/03_partial_sums/480p15/PartialSums.mp4");
        std::fs::create_dir_all(v.parent().unwrap()).unwrap();
        std::fs::write(&v, b"x").unwrap();
        // A partial movie file of the same name must never be taken for it.
        let p = t
            .path()
            .join("videos/03_partial_sums/480p15/partial_movie_files/PartialSums/PartialSums.mp4");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"x").unwrap();
        assert_eq!(
            find_output(
                t.path(),
                "scenes/03_partial_sums.py",
                "PartialSums",
                &settings()
            ),
            Some(v.clone())
        );
        std::fs::remove_file(&v).unwrap();
        assert_eq!(
            find_output(
                t.path(),
                "scenes/03_partial_sums.py",
                "PartialSums",
                &settings()
            ),
            None
        );
    }

    #[test]
    fn renders_turn_manims_cache_off_once() {
        let mut s = settings();
        assert_eq!(manim_args(&s), vec!["-ql", "--disable_caching"]);
        s.manim_args = vec!["--disable_caching".into(), "-v".into(), "WARNING".into()];
        assert_eq!(
            manim_args(&s),
            vec!["-ql", "--disable_caching", "-v", "WARNING"]
        );
    }

    #[test]
    fn each_scene_has_its_own_fixed_seed() {
        let scene = |file: &str, class: &str| Scene {
            id: crate::scene::SceneId::new(file, class),
            file: file.into(),
            class: class.into(),
            line: None,
            audio: None,
            timeout: Duration::from_secs(1),
            title: None,
        };
        let a = scene_seed(&scene("scenes/a.py", "A"));
        assert_eq!(a, scene_seed(&scene("scenes/a.py", "A")));
        assert_ne!(a, scene_seed(&scene("scenes/a.py", "B")));
        assert_ne!(a, scene_seed(&scene("scenes/b.py", "A")));
    }

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
