//! Finding the project (like cargo finds `Cargo.toml`) and its folders.
use std::path::{Path, PathBuf};

use crate::config::{Config, MANIFEST};
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct Project {
    /// Absolute, canonical project root (the folder holding `parender.toml`).
    pub root: PathBuf,
    pub manifest: PathBuf,
    pub config: Config,
    pub name: String,
}

impl Project {
    /// `parender.toml` in `start` or its nearest parent.
    pub fn find(start: &Path) -> Result<PathBuf, Error> {
        let start = std::fs::canonicalize(start).map_err(|e| Error::io(start, e))?;
        let mut dir: Option<&Path> = Some(&start);
        while let Some(d) = dir {
            if d.join(MANIFEST).is_file() {
                return Ok(d.to_path_buf());
            }
            dir = d.parent();
        }
        Err(Error::ProjectNotFound(start))
    }

    /// Opens the project at `--project DIR`, or the one around the current folder.
    pub fn open(explicit: Option<&Path>) -> Result<Project, Error> {
        let root = match explicit {
            Some(dir) => {
                let dir = std::fs::canonicalize(dir).map_err(|e| Error::Usage {
                    message: format!("cannot open the project folder `{}`: {e}", dir.display()),
                    help: Some(
                        "pass `--project DIR` with the folder that holds parender.toml".into(),
                    ),
                })?;
                if !dir.join(MANIFEST).is_file() {
                    return Err(Error::ProjectNotFound(dir));
                }
                dir
            }
            None => {
                let cwd = std::env::current_dir().map_err(|e| Error::io(Path::new("."), e))?;
                Project::find(&cwd)?
            }
        };
        let manifest = root.join(MANIFEST);
        let config = Config::load(&manifest)?;
        let name = config.name.clone().unwrap_or_else(|| {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "video".into())
        });
        Ok(Project {
            root,
            manifest,
            config,
            name,
        })
    }

    pub fn scenes_dir(&self) -> PathBuf {
        self.root
            .join(self.config.scenes.as_deref().unwrap_or("scenes"))
    }

    pub fn audio_dir(&self) -> PathBuf {
        self.root
            .join(self.config.audio.as_deref().unwrap_or("audio"))
    }

    pub fn output_dir(&self) -> PathBuf {
        self.root
            .join(self.config.output.0.dir.as_deref().unwrap_or("out"))
    }

    /// parender's own state: cache, scratch space. `PARENDER_CACHE_DIR` overrides.
    pub fn state_dir(&self) -> PathBuf {
        match std::env::var_os("PARENDER_CACHE_DIR") {
            Some(d) if !d.is_empty() => PathBuf::from(d),
            _ => self.root.join(".parender"),
        }
    }

    /// A path relative to the root, `/`-separated, for names and messages.
    /// Paths outside the root are shown as they are (`/tmp/talk.mp4`).
    pub fn relative(&self, path: &Path) -> String {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return path.display().to_string();
        };
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_manifest_in_parent() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(MANIFEST), "").unwrap();
        let deep = t.path().join("scenes/sub");
        std::fs::create_dir_all(&deep).unwrap();
        let found = Project::find(&deep).unwrap();
        assert_eq!(found, std::fs::canonicalize(t.path()).unwrap());
    }

    #[test]
    fn relative_paths_inside_and_outside_the_root() {
        let root = PathBuf::from("/p");
        let project = Project {
            root: root.clone(),
            manifest: root.join(MANIFEST),
            config: Config::default(),
            name: "p".into(),
        };
        assert_eq!(
            project.relative(&root.join("out/dev/p.mp4")),
            "out/dev/p.mp4"
        );
        assert_eq!(project.relative(Path::new("/tmp/x.mp4")), "/tmp/x.mp4");
    }

    #[test]
    fn missing_project_folder_is_a_usage_error() {
        let err = Project::open(Some(Path::new("/nonexistent-parender-project"))).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("/nonexistent-parender-project"),
            "{err}"
        );
    }

    #[test]
    fn missing_manifest_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            Project::find(t.path()),
            Err(Error::ProjectNotFound(_))
        ));
    }
}
