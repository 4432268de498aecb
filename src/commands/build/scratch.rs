//! The build's scratch folder, and what killed builds left behind.
use std::path::Path;

use crate::error::Error;

/// Everything temporary of one build lives in here and is removed when it
/// is dropped: on success, on error and on Ctrl-C alike. Its `.lock` is held
/// while the build runs, so a later build removes only the scratch folders
/// of builds that were killed.
pub(super) struct Scratch {
    dir: tempfile::TempDir,
    _lock: std::fs::File,
    /// Why the cache folder cannot be written, when it cannot: a build with
    /// nothing to render still runs (its scratch is in the system's temp
    /// folder), one that must render stops with this.
    read_only: Option<std::io::Error>,
}

impl Scratch {
    pub(super) fn create(state: &Path) -> Result<Scratch, Error> {
        let tmp_root = state.join("tmp");
        let mut read_only = match std::fs::create_dir_all(&tmp_root) {
            Ok(()) => None,
            Err(e) if cannot_write(&e) => Some(e),
            Err(e) => return Err(Error::io(&tmp_root, e)),
        };
        if read_only.is_none() {
            remove_abandoned_scratch(&tmp_root);
        }
        let in_system_temp = || {
            tempfile::Builder::new()
                .prefix("parender-build-")
                .tempdir()
                .map_err(|e| Error::io(&std::env::temp_dir(), e))
        };
        let dir = match read_only {
            None => match tempfile::Builder::new()
                .prefix("build-")
                .tempdir_in(&tmp_root)
            {
                Ok(d) => d,
                Err(e) if cannot_write(&e) => {
                    read_only = Some(e);
                    in_system_temp()?
                }
                Err(e) => return Err(Error::io(&tmp_root, e)),
            },
            Some(_) => in_system_temp()?,
        };
        let path = dir.path().join(".lock");
        let lock = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        lock.lock().map_err(|e| Error::io(&path, e))?;
        Ok(Scratch {
            dir,
            _lock: lock,
            read_only,
        })
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Refuses to render into a cache folder that cannot be written.
    pub(super) fn check_can_render(&self, renders: usize, state: &Path) -> Result<(), Error> {
        match &self.read_only {
            Some(e) if renders > 0 => Err(Error::Fs {
                message: format!(
                    "cannot render {}: parender's cache folder {} is not writable ({e})",
                    super::summary::count_scenes(renders, renders),
                    state.display()
                ),
                help: "set PARENDER_CACHE_DIR to a writable folder (for example `PARENDER_CACHE_DIR=/tmp/my-talk-cache parender build`), or make the project writable".into(),
            }),
            _ => Ok(()),
        }
    }
}

/// Removes what killed builds left: scratch folders in `tmp_root` (their
/// `.lock` is free) and temp files and folders in the cache beside it
/// (objects, entries, the mux cache) whose lock is free; see
/// [`crate::fsutil::remove_abandoned`].
fn remove_abandoned_scratch(tmp_root: &Path) {
    crate::fsutil::remove_abandoned(tmp_root, |n| n.starts_with("build-"));
    if let Some(state) = tmp_root.parent() {
        crate::cache::store::remove_abandoned_temps(&state.join("cache"));
    }
}

/// A write refused by the file system itself (read-only, no permission).
fn cannot_write(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    // tempfile wraps its errors (no OS code), so look at the kind too.
    matches!(
        e.raw_os_error(),
        Some(libc::EROFS | libc::EACCES | libc::EPERM)
    ) || matches!(
        e.kind(),
        ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied
    )
}
