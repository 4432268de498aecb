//! Typed errors of the library. The command line renders them for people
//! (with what to do next) in [`crate::report`]; nothing here prints.
use std::path::{Path, PathBuf};

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not find `parender.toml` in `{}` or any parent folder", .0.display())]
    ProjectNotFound(PathBuf),

    #[error(transparent)]
    Config(#[from] ConfigError),

    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("scene folder `{}` does not exist", .0.display())]
    NoScenesDir(PathBuf),

    #[error("{message}")]
    Toolchain { message: String, help: String },

    #[error("scene discovery failed: {message}")]
    Discovery { message: String, detail: String },

    #[error("{message}")]
    Selection {
        message: String,
        help: Option<String>,
    },

    #[error("{tool} failed on {what}: {message}")]
    Media {
        tool: &'static str,
        what: String,
        message: String,
    },

    #[error("cannot stitch: {0}")]
    Incompatible(String),

    #[error("{0}")]
    Other(String),

    /// A bad invocation the user can fix: `--project` that is not a
    /// folder, `-o` onto something that is not a plain file.
    #[error("{message}")]
    Usage {
        message: String,
        help: Option<String>,
    },

    /// A file-system problem outside the scenes, with what to do about it
    /// (a read-only project).
    #[error("{message}")]
    Fs { message: String, help: String },

    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// What the user can do about it.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::ProjectNotFound(_) => {
                Some("run `parender init` to create a project here, or pass `--project DIR`".into())
            }
            Error::Config(c) => c.help(),
            Error::NoScenesDir(_) => Some(
                "create it, or set `scenes = \"...\"` in parender.toml to where your scenes are"
                    .into(),
            ),
            Error::Toolchain { help, .. } => Some(help.clone()),
            Error::Discovery { .. } => Some("run `parender doctor` to check the toolchain".into()),
            Error::Selection { help, .. } | Error::Usage { help, .. } => help.clone(),
            Error::Fs { help, .. } => Some(help.clone()),
            Error::Media { .. } => Some("run `parender doctor` to check ffmpeg".into()),
            _ => None,
        }
    }

    /// Process exit status for this error (see the README's exit codes).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::ProjectNotFound(_)
            | Error::Config(_)
            | Error::NoScenesDir(_)
            | Error::Selection { .. }
            | Error::Usage { .. } => 2,
            Error::Interrupted => 130,
            _ => 3,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
