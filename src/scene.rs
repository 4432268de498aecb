//! The scene: one Manim `Scene` subclass in one file, named everywhere by its
//! file path relative to the project root, a colon and its class.
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SceneId(pub String);

impl SceneId {
    pub fn new(file: &str, class: &str) -> SceneId {
        SceneId(format!("{file}:{class}"))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SceneId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A discovered scene, paired with its audio.
#[derive(Debug, Clone)]
pub struct Scene {
    pub id: SceneId,
    /// Path of the scene file relative to the project root (`/`-separated).
    pub file: String,
    pub class: String,
    /// Line of the `class` statement, when Python knows it.
    pub line: Option<u32>,
    /// Narration audio, relative to the project root.
    pub audio: Option<PathBuf>,
    pub timeout: Duration,
    /// `[scene."..."] title`: its chapter title instead of the class name.
    pub title: Option<String>,
}

impl Scene {
    /// Scene `class` of `file`, before pairing: no line, no audio, no title.
    pub fn new(file: &str, class: &str, timeout: Duration) -> Scene {
        Scene {
            id: SceneId::new(file, class),
            file: file.into(),
            class: class.into(),
            line: None,
            audio: None,
            timeout,
            title: None,
        }
    }

    /// Its chapter title: the configured one, else the class name.
    pub fn title(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.class)
    }

    /// The short name used in summaries: `03_graph.py:Growth`.
    pub fn short_name(&self) -> String {
        let name = self.file.rsplit('/').next().unwrap_or(&self.file);
        format!("{name}:{}", self.class)
    }
}

/// Where a Python error happened, in the user's own code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneError {
    pub file: Option<String>,
    pub line: Option<u32>,
    pub message: String,
}

impl SceneError {
    pub fn plain(message: impl Into<String>) -> SceneError {
        SceneError {
            file: None,
            line: None,
            message: message.into(),
        }
    }

    /// `NameError at 03_graph.py:14: name 'x' is not defined`, for summaries.
    pub fn summary(&self) -> String {
        let (kind, rest) = match self.message.split_once(": ") {
            Some((k, r)) if !k.contains(' ') => (k, r),
            _ => ("error", self.message.as_str()),
        };
        match (&self.file, self.line) {
            (Some(f), Some(l)) => {
                let name = f.rsplit('/').next().unwrap_or(f);
                format!("{kind} at {name}:{l}: {rest}")
            }
            _ => self.message.clone(),
        }
    }
}

/// Does `pattern` (`file.py`, `dir/file.py`, `file.py:Class` or `Class`) name this scene?
pub fn matches(scene: &Scene, pattern: &str) -> bool {
    let file_matches = |p: &str| scene.file == p || scene.file.ends_with(&format!("/{p}"));
    match pattern.rsplit_once(':') {
        Some((file, class)) => class == scene.class && file_matches(file),
        None if pattern.ends_with(".py") => file_matches(pattern),
        None => pattern == scene.class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_file_and_line() {
        let e = SceneError {
            file: Some("scenes/03_graph.py".into()),
            line: Some(14),
            message: "NameError: name 'x' is not defined".into(),
        };
        assert_eq!(
            e.summary(),
            "NameError at 03_graph.py:14: name 'x' is not defined"
        );
        assert_eq!(SceneError::plain("timed out").summary(), "timed out");
    }
}
