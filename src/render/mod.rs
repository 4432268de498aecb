//! Rendering one scene: the [`Renderer`] seam, what a render is asked
//! ([`RenderJob`]) and what it gives back ([`Rendered`], [`RenderFailure`]).
//! [`cli::ManimRenderer`] runs Manim's command line in a fresh Python
//! process per scene; [`fake::FakeRenderer`] stands in for Manim in tests.
pub mod cli;
pub mod driver;
pub mod fake;
pub mod split;
pub mod steal;
pub mod warm;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::scene::{Scene, SceneError};
use crate::settings::RenderSettings;

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
    /// More environment for the render's Python (the split's dry run);
    /// parender's own variables win over these.
    pub extra_env: Vec<(String, String)>,
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
    /// The video's format and whether it has sound, as the render itself
    /// read them back (the driver does, with PyAV), so no ffprobe has to
    /// start; `None` when the renderer did not.
    pub probed: Option<(crate::ffmpeg::VideoInfo, bool)>,
    /// Asked to (see [`steal`]), the render stopped before this animation:
    /// its video holds only the animations before it.
    pub stopped_at: Option<u32>,
    /// A piece that started at an animation after the first: the scene time
    /// it had reached by skipping the ones before (Manim counts a skipped
    /// animation's exact run time, a drawn one's whole frames).
    pub resumed_time: Option<f64>,
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
            probed: None,
            stopped_at: None,
            resumed_time: None,
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
                crate::config::human_duration(*d)
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
    let _ = crate::fsutil::walk(&media.join("videos"), &mut |p| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Quality;

    fn settings() -> RenderSettings {
        RenderSettings::preset(Quality::Low)
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
        let scene = |file: &str, class: &str| Scene::new(file, class, Duration::from_secs(1));
        let a = scene_seed(&scene("scenes/a.py", "A"));
        assert_eq!(a, scene_seed(&scene("scenes/a.py", "A")));
        assert_ne!(a, scene_seed(&scene("scenes/a.py", "B")));
        assert_ne!(a, scene_seed(&scene("scenes/b.py", "A")));
    }
}
