//! The `--message-format json` schema: one JSON object per line on stdout,
//! each with a `reason`. Kept in one place so it cannot drift by accident;
//! later versions add fields and reasons, never remove or rename them.
use serde::Serialize;

use crate::scene::SceneError;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SceneStatus {
    Rendered,
    Cached,
    Failed,
}

#[derive(Debug, Serialize)]
#[serde(tag = "reason", rename_all = "kebab-case")]
pub enum Message {
    BuildStarted {
        project: String,
        profile: String,
        quality: String,
        width: u32,
        height: u32,
        fps: u32,
        jobs: usize,
        /// Scenes in the project (files that failed to load count as one each).
        scenes: usize,
        /// Scenes this build renders or takes from the cache.
        selected: usize,
    },
    SceneStarted {
        scene: String,
        /// Why it renders: `never built`, `scenes/common.py changed`, ...
        why: Vec<String>,
    },
    /// A render began its next animation (0-based), from Manim's own events.
    SceneProgress {
        scene: String,
        animation: u32,
    },
    SceneFinished {
        scene: String,
        status: SceneStatus,
        seconds: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<SceneError>,
        /// Why it was rendered, or why it was reused (`reused: no input changed`).
        why: Vec<String>,
    },
    /// `parender status`: one per scene, nothing rendered.
    SceneStatus {
        scene: String,
        /// `fresh`, `stale` or `failed`.
        status: String,
        why: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<SceneError>,
        /// Whether its last render has sound of its own (`add_sound`,
        /// manim-voiceover); `null` before it has rendered.
        scene_sound: Option<bool>,
    },
    Warning {
        message: String,
    },
    /// What the shared remote cache did in this build (`[cache] remote`).
    RemoteCache {
        url: String,
        hits: u64,
        misses: u64,
        /// Downloads that failed their hash check.
        rejected: u64,
        uploads: u64,
        bytes_down: u64,
        bytes_up: u64,
        /// Uploads still running when the build finished.
        pending: usize,
    },
    /// The command could not run at all (bad config, missing tools...).
    Error {
        message: String,
        /// `file:line:column` for configuration errors.
        location: Option<String>,
        help: Option<String>,
    },
    BuildFinished {
        success: bool,
        output: Option<String>,
        rendered: usize,
        cached: usize,
        failed: usize,
        seconds: f64,
        /// Length of the final video in seconds, when one was written.
        duration: Option<f64>,
        /// `watch` only: an edit arrived during the build, so it stopped
        /// before stitching and another build follows.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        superseded: bool,
        /// The subtitles written beside the video (`.srt`; a `.vtt` sits
        /// beside it), when any scene has subcaptions.
        subtitles: Option<String>,
        /// The chapter list written beside the video (`.chapters.txt`).
        chapters: Option<String>,
        /// Where the time went, and the chain of steps that set the
        /// build's length (`--explain` prints it).
        #[serde(skip_serializing_if = "Option::is_none")]
        timings: Option<Timings>,
    },
    /// `watch --serve`, to the page only: a file changed; a build follows
    /// after the debounce.
    FileChanged {
        path: String,
    },
    /// `watch --serve`: the preview page is at `url`.
    ServeStarted {
        url: String,
    },
    /// `watch`: a debounced batch of changed files.
    WatchChange {
        paths: Vec<String>,
    },
}

/// One line of `parender scenes --message-format json` (no `reason`: it is a
/// listing, not an event).
#[derive(Debug, Serialize)]
pub struct SceneListing {
    pub scene: String,
    pub file: String,
    pub class: String,
    pub line: Option<u32>,
    /// The paired narration file, or `null`.
    pub audio: Option<String>,
    /// Whether its last render has sound of its own (`add_sound`,
    /// manim-voiceover); `null` before it has rendered.
    pub scene_sound: Option<bool>,
    /// Its chapter title.
    pub title: String,
}

/// Seconds spent in each stage of a build.
#[derive(Debug, Clone, Serialize)]
pub struct Timings {
    pub prepare: f64,
    pub render: f64,
    pub publish: f64,
    /// The steps one after the other that made the build as long as it was:
    /// preparing, the render that finished last (and its wait for a job
    /// slot), publishing.
    pub critical_path: Vec<CriticalStep>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CriticalStep {
    pub step: String,
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_documented_schema() {
        let m = Message::SceneFinished {
            scene: "scenes/02_bubble.py:Bubble".into(),
            status: SceneStatus::Failed,
            seconds: 1.5,
            error: Some(SceneError {
                file: Some("scenes/02_bubble.py".into()),
                line: Some(14),
                message: "NameError: name 'x' is not defined".into(),
            }),
            why: vec!["scenes/common.py changed".into()],
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["reason"], "scene-finished");
        assert_eq!(v["status"], "failed");
        assert_eq!(v["error"]["line"], 14);
        assert_eq!(v["why"][0], "scenes/common.py changed");
        let m = Message::BuildFinished {
            success: true,
            output: Some("out/dev/x.mp4".into()),
            rendered: 1,
            cached: 2,
            failed: 0,
            seconds: 0.5,
            duration: Some(3.0),
            superseded: false,
            subtitles: None,
            chapters: Some("out/dev/x.chapters.txt".into()),
            timings: None,
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["reason"], "build-finished");
        assert_eq!(v["cached"], 2);
    }
}
