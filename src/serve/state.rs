//! What the preview page shows: the scenes in order with their place in the
//! latest video and their status, kept up to date from the build's messages
//! (the same JSON as `--message-format json`) and from each publication.
use serde::Serialize;
use serde_json::Value;

use crate::media::publish::Outcome;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Fresh,
    Queued,
    Rendering,
    Failed,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Progress {
    pub animation: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ErrorView {
    pub message: String,
    pub file: Option<String>,
    pub line: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Block {
    pub scene: String,
    pub title: String,
    /// Where it starts in the latest video; `None` before it is in one.
    pub start: Option<f64>,
    pub seconds: f64,
    pub status: Status,
    pub progress: Option<Progress>,
    pub error: Option<ErrorView>,
    /// The video shows an older render of it (or a placeholder).
    pub stale: bool,
    pub thumbnail: Option<String>,
}

/// The page's state, served as `/state`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct PageState {
    pub project: String,
    pub output: String,
    /// Changes whenever a new video is published.
    pub version: Option<String>,
    pub duration: f64,
    pub building: bool,
    pub subtitles: bool,
    /// The first scene rendered by the build that published this version.
    pub changed: Option<String>,
    pub scenes: Vec<Block>,
    /// Scenes rendered since the last publication, in order.
    #[serde(skip)]
    rendered: Vec<String>,
}

impl PageState {
    pub fn new(project: &str, output: &str) -> PageState {
        PageState {
            project: project.to_string(),
            output: output.to_string(),
            ..PageState::default()
        }
    }

    fn block(&mut self, scene: &str) -> &mut Block {
        let at = match self.scenes.iter().position(|b| b.scene == scene) {
            Some(i) => i,
            None => {
                self.scenes.push(Block {
                    scene: scene.to_string(),
                    title: scene.rsplit(':').next().unwrap_or(scene).to_string(),
                    start: None,
                    seconds: 0.0,
                    status: Status::Queued,
                    progress: None,
                    error: None,
                    stale: false,
                    thumbnail: None,
                });
                self.scenes.len() - 1
            }
        };
        &mut self.scenes[at]
    }

    /// Applies one message of the build (a `--message-format json` object).
    pub fn apply(&mut self, m: &Value) {
        let scene = m["scene"].as_str();
        match (m["reason"].as_str(), scene) {
            (Some("build-started"), _) => self.building = true,
            (Some("file-changed"), _) => self.file_changed(m["path"].as_str().unwrap_or_default()),
            (Some("scene-started"), Some(s)) => {
                let b = self.block(s);
                b.status = Status::Rendering;
                b.progress = None;
            }
            (Some("scene-progress"), Some(s)) => {
                let b = self.block(s);
                b.status = Status::Rendering;
                b.progress = m["animation"]
                    .as_u64()
                    .map(|animation| Progress { animation });
            }
            (Some("scene-finished"), Some(s)) => self.finished(s, m),
            (Some("build-finished"), _) => {
                self.building = false;
                for b in &mut self.scenes {
                    if b.status != Status::Failed {
                        b.status = Status::Fresh;
                    }
                    b.progress = None;
                }
            }
            _ => {}
        }
    }

    /// A saved scene file: its scenes show as rendering at once (a build
    /// follows the debounce; one that renders nothing sets them fresh).
    fn file_changed(&mut self, path: &str) {
        let prefix = format!("{path}:");
        for b in self
            .scenes
            .iter_mut()
            .filter(|b| b.scene.starts_with(&prefix))
        {
            b.status = Status::Rendering;
            b.progress = None;
        }
    }

    fn finished(&mut self, scene: &str, m: &Value) {
        let status = m["status"].as_str().unwrap_or_default().to_string();
        if status == "rendered" {
            self.rendered.push(scene.to_string());
        }
        let b = self.block(scene);
        b.progress = None;
        if status == "failed" {
            let e = &m["error"];
            b.status = Status::Failed;
            b.stale = true;
            b.error = Some(ErrorView {
                message: e["message"].as_str().unwrap_or("failed").to_string(),
                file: e["file"].as_str().map(str::to_string),
                line: e["line"].as_u64(),
            });
        } else {
            b.status = Status::Fresh;
            b.error = None;
        }
    }

    /// A new video was published: every scene's place in it.
    pub fn published(&mut self, o: &Outcome, subtitles: bool, thumbnail: impl Fn(usize) -> String) {
        let old = std::mem::take(&mut self.scenes);
        self.scenes = o
            .placed
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let was = old.iter().find(|b| b.scene == p.scene);
                let failed = was.filter(|b| b.status == Status::Failed);
                Block {
                    scene: p.scene.clone(),
                    title: p.title.clone(),
                    start: Some(p.start),
                    seconds: p.seconds,
                    status: if failed.is_some() {
                        Status::Failed
                    } else {
                        Status::Fresh
                    },
                    progress: None,
                    error: failed.and_then(|b| b.error.clone()),
                    stale: failed.is_some(),
                    thumbnail: Some(thumbnail(i)),
                }
            })
            .collect();
        self.duration = o.seconds;
        self.subtitles = subtitles;
        if self.version.as_deref() != Some(o.key.as_str()) {
            self.changed = self.rendered.first().cloned();
            self.version = Some(o.key.clone());
        }
        self.rendered.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::publish::PlacedScene;
    use serde_json::json;

    fn outcome(key: &str) -> Outcome {
        let placed = |scene: &str, start: f64| PlacedScene {
            scene: scene.into(),
            title: format!("T {scene}"),
            start,
            seconds: 2.0,
            video: "v.mp4".into(),
            video_seconds: 2.0,
        };
        Outcome {
            seconds: 4.0,
            chapters: None,
            subtitles: None,
            key: key.into(),
            placed: vec![placed("a.py:A", 0.0), placed("b.py:B", 2.0)],
        }
    }

    #[test]
    fn messages_move_a_scene_through_rendering_to_fresh_or_failed() {
        let mut s = PageState::new("p", "out.mp4");
        s.published(&outcome("k1"), false, |i| format!("/thumb/{i}.jpg"));
        assert_eq!(s.version.as_deref(), Some("k1"));
        assert_eq!(s.changed, None);
        s.apply(&json!({"reason": "file-changed", "path": "b.py"}));
        assert_eq!(
            (&s.scenes[0].status, &s.scenes[1].status),
            (&Status::Fresh, &Status::Rendering)
        );
        s.apply(&json!({"reason": "build-started"}));
        s.apply(&json!({"reason": "scene-started", "scene": "b.py:B", "why": []}));
        assert_eq!(s.scenes[1].status, Status::Rendering);
        s.apply(&json!({"reason": "scene-progress", "scene": "b.py:B", "animation": 2}));
        assert_eq!(s.scenes[1].progress, Some(Progress { animation: 2 }));
        s.apply(&json!({"reason": "scene-finished", "scene": "b.py:B", "status": "rendered"}));
        s.apply(&json!({"reason": "build-finished", "success": true}));
        assert!(!s.building);
        s.published(&outcome("k2"), true, |i| format!("/thumb/{i}.jpg"));
        assert_eq!(
            (s.version.as_deref(), s.changed.as_deref()),
            (Some("k2"), Some("b.py:B"))
        );
        assert_eq!(s.scenes[1].start, Some(2.0));

        let error = json!({"message": "NameError: x", "file": "a.py", "line": 7});
        s.apply(&json!({"reason": "scene-finished", "scene": "a.py:A", "status": "failed", "error": error}));
        s.published(&outcome("k3"), true, |i| format!("/thumb/{i}.jpg"));
        let a = &s.scenes[0];
        assert_eq!((&a.status, a.stale), (&Status::Failed, true));
        assert_eq!(
            a.error.as_ref().map(|e| (e.line, e.file.as_deref())),
            Some((Some(7), Some("a.py")))
        );
        // Fixed: fresh again, the error gone.
        s.apply(&json!({"reason": "scene-finished", "scene": "a.py:A", "status": "rendered"}));
        assert_eq!(
            (&s.scenes[0].status, &s.scenes[0].error),
            (&Status::Fresh, &None)
        );
    }

    #[test]
    fn a_scene_unknown_to_the_video_gets_a_block_of_its_own() {
        let mut s = PageState::new("p", "out.mp4");
        s.apply(&json!({"reason": "scene-started", "scene": "new.py:New"}));
        assert_eq!(s.scenes.len(), 1);
        assert_eq!(
            (s.scenes[0].title.as_str(), s.scenes[0].start),
            ("New", None)
        );
    }
}
