//! Where the final video goes, and the outputs publishing must refuse.
use std::path::{Path, PathBuf};

use super::prepare::Prepared;
use crate::error::Error;
use crate::project::Project;
use crate::settings::BuildSettings;

/// Where the final video goes: `-o FILE` or `out/<profile>/<name>.mp4`.
pub fn output_path(
    project: &Project,
    settings: &BuildSettings,
    explicit: Option<&Path>,
) -> PathBuf {
    match explicit {
        Some(p) if p.is_absolute() => p.to_path_buf(),
        Some(p) => std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf()),
        None => project
            .output_dir()
            .join(settings.profile.name())
            .join(format!("{}.mp4", project.name)),
    }
}

/// What an existing file is, when it is not a regular file.
fn not_a_regular_file(ft: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        None
    } else if ft.is_dir() {
        Some("a folder")
    } else if ft.is_char_device() {
        Some("a character device")
    } else if ft.is_block_device() {
        Some("a block device")
    } else if ft.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if ft.is_socket() {
        Some("a socket")
    } else {
        Some("not a regular file")
    }
}

/// Every file this project reads, named for a message: the manifest and
/// `manim.cfg`, every scene file, each scene's modules and assets (its
/// fingerprint's files), its narration, and what is in the audio folder.
fn project_inputs(project: &Project, p: &Prepared) -> Vec<(PathBuf, String)> {
    let root = &project.root;
    let mut out = vec![
        (
            project.manifest.clone(),
            "the project's parender.toml".to_string(),
        ),
        (
            root.join("manim.cfg"),
            "the project's manim.cfg".to_string(),
        ),
    ];
    for s in &p.discovery.scenes {
        out.push((root.join(&s.file), format!("the scene file of {}", s.id)));
        if let Some(a) = &s.audio {
            out.push((
                root.join(a),
                format!("{}, the narration of {}", a.display(), s.id),
            ));
        }
    }
    for b in &p.discovery.broken {
        out.push((root.join(&b.file), format!("the scene file {}", b.file)));
    }
    for (s, inputs) in p.discovery.scenes.iter().zip(&p.inputs) {
        for f in inputs.files.keys() {
            let path = match f.strip_prefix("~/") {
                Some(rest) => match std::env::var_os("HOME") {
                    Some(home) => PathBuf::from(home).join(rest),
                    None => continue,
                },
                None => root.join(f),
            };
            out.push((path, format!("{f}, an input of {}", s.id)));
        }
    }
    let _ = crate::fsutil::walk(&project.audio_dir(), &mut |f| {
        out.push((
            f.to_path_buf(),
            format!("{}, a file in the audio folder", project.relative(f)),
        ));
    });
    let _ = crate::fsutil::walk(&project.scenes_dir(), &mut |f| {
        out.push((
            f.to_path_buf(),
            format!("{}, a file in the scene folder", project.relative(f)),
        ));
    });
    out
}

/// Refuses an output that publishing would destroy or cannot replace. The
/// video is renamed over the output, so it must be a regular file or a new
/// path: never a device, FIFO, socket or folder (or a link to one), nor a
/// file the project reads, nor a file in parender's own cache folder.
pub fn check_output(project: &Project, p: &Prepared, output: &Path) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    let shown = project.relative(output);
    let refuse = |what: String| {
        Error::Usage {
        message: format!("cannot write the video to {shown}: {what}"),
        help: Some(
            "name a new file or an earlier video, e.g. `-o talk.mp4` (the video replaces the file there)"
                .into(),
        ),
    }
    };
    let meta = match std::fs::metadata(output) {
        Ok(m) => m,
        // A new path (or a link to one: the rename replaces the link).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return check_outside_state(project, output, &refuse);
        }
        Err(e) => return Err(refuse(e.to_string())),
    };
    let link = std::fs::symlink_metadata(output).is_ok_and(|m| m.file_type().is_symlink());
    if let Some(what) = not_a_regular_file(meta.file_type()) {
        return Err(refuse(if link {
            format!("it is a symbolic link to {what}")
        } else {
            format!("it is {what}")
        }));
    }
    let id = (meta.dev(), meta.ino());
    for (path, what) in project_inputs(project, p) {
        if let Ok(m) = std::fs::metadata(&path)
            && (m.dev(), m.ino()) == id
        {
            return Err(refuse(format!(
                "it is {what}, which the video would replace"
            )));
        }
    }
    check_outside_state(project, output, &refuse)
}

/// Refuses an output inside parender's cache folder.
fn check_outside_state(
    project: &Project,
    output: &Path,
    refuse: &dyn Fn(String) -> Error,
) -> Result<(), Error> {
    let Ok(state) = std::fs::canonicalize(project.state_dir()) else {
        return Ok(());
    };
    // The nearest folder of the output that exists, resolved.
    let mut dir = output.parent();
    while let Some(d) = dir {
        if let Ok(d) = std::fs::canonicalize(d) {
            if d.starts_with(&state) {
                return Err(refuse(format!(
                    "it is inside parender's cache folder {}",
                    state.display()
                )));
            }
            break;
        }
        dir = d.parent();
    }
    Ok(())
}
