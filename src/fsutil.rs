//! Files written whole or not at all, and the folder walks the pipeline
//! shares.
//!
//! Every write goes to a temp file in the same folder, is synced and renamed
//! into place, so a crash leaves the old file or the new one. Temp files and
//! folders are locked while they are written ([`locked_tempfile`],
//! [`locked_tempdir`]), so [`remove_abandoned`] can tell one a live process
//! is writing (lock held) from one a `kill -9` left (lock free).
use std::cmp::Ordering;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
/// Writes `bytes` to `path` atomically: temp file in the same folder, fsync,
/// rename. The file gets the mode a newly created file gets (0666 & !umask).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = locked_tempfile(dir, ".tmp-", "")?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Copies `from` to `to` atomically (temp file beside `to`, fsync, rename).
pub fn copy_atomic(from: &Path, to: &Path) -> Result<(), Error> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut tmp = locked_tempfile(dir, ".tmp-", "")?;
    let mut src = std::fs::File::open(from).map_err(|e| Error::io(from, e))?;
    std::io::copy(&mut src, tmp.as_file_mut()).map_err(|e| Error::io(to, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(to, e))?;
    tmp.persist(to).map_err(|e| Error::io(to, e.error))?;
    Ok(())
}

/// The mode `File::create` asks for; the kernel applies the umask.
fn normal_file_mode() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o666)
}

/// A temp file `<prefix>XXXXXX<suffix>` in `dir` (created if need be),
/// with the mode a normal file gets (0666 & !umask, not tempfile's 0600) and
/// an exclusive lock held while it lives, so [`remove_abandoned`] never takes
/// it for one a killed process left. Removed when dropped unless persisted.
pub fn locked_tempfile(
    dir: &Path,
    prefix: &str,
    suffix: &str,
) -> Result<tempfile::NamedTempFile, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .permissions(normal_file_mode())
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.as_file().lock().map_err(|e| Error::io(tmp.path(), e))?;
    Ok(tmp)
}

/// A temp folder with a locked `.lock` file in it (see [`locked_tempfile`]).
pub struct LockedTempDir {
    dir: tempfile::TempDir,
    lock: std::fs::File,
}

/// The name of the lock file inside a [`LockedTempDir`].
pub const DIR_LOCK: &str = ".lock";

impl LockedTempDir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the folder; the lock stays held until the returned file is dropped.
    pub fn keep(self) -> (PathBuf, std::fs::File) {
        (self.dir.keep(), self.lock)
    }
}

/// A temp folder `<prefix>XXXXXX` in `parent`, locked while it lives.
pub fn locked_tempdir(parent: &Path, prefix: &str) -> Result<LockedTempDir, Error> {
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let path = dir.path().join(DIR_LOCK);
    let lock = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
    lock.lock().map_err(|e| Error::io(&path, e))?;
    Ok(LockedTempDir { dir, lock })
}

/// A temp file or folder whose lock is free (or that has none) is taken for
/// abandoned only when it is older than this, if it is empty or lockless:
/// one created a moment ago may not be locked yet.
const UNLOCKED_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub removed: usize,
    pub bytes: u64,
}

impl std::ops::AddAssign for Swept {
    fn add_assign(&mut self, o: Swept) {
        self.removed += o.removed;
        self.bytes += o.bytes;
    }
}

fn older_than(meta: &std::fs::Metadata, age: std::time::Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|a| a > age)
}

/// Removes the temp files and folders in `dir` (not below) whose names
/// `is_temp` accepts and that no live process is writing: a file whose lock
/// is free and that has content (or is older than an hour), a folder whose
/// `.lock` is free (or that has none and is older than an hour). Symbolic
/// links are never followed or removed.
pub fn remove_abandoned(dir: &Path, is_temp: impl Fn(&str) -> bool) -> Swept {
    let mut swept = Swept::default();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return swept;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !is_temp(name) {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            let abandoned = match std::fs::File::open(path.join(DIR_LOCK)) {
                Ok(f) => f.try_lock().is_ok(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    older_than(&meta, UNLOCKED_GRACE)
                }
                Err(_) => false,
            };
            if abandoned {
                let size = dir_size(&path);
                if std::fs::remove_dir_all(&path).is_ok() {
                    swept += Swept {
                        removed: 1,
                        bytes: size,
                    };
                }
            }
        } else if meta.is_file() {
            // Held open (and locked) while we decide and remove it.
            let Ok(f) = std::fs::File::open(&path) else {
                continue;
            };
            if f.try_lock().is_err() {
                continue;
            }
            if (meta.len() > 0 || older_than(&meta, UNLOCKED_GRACE))
                && std::fs::remove_file(&path).is_ok()
            {
                swept += Swept {
                    removed: 1,
                    bytes: meta.len(),
                };
            }
        }
    }
    swept
}

/// Whether a name is one of [`write_atomic`]'s or the mux's temp names.
pub fn is_tmp_name(name: &str) -> bool {
    name.starts_with(".tmp-")
}

/// Visits files below `dir`, skipping hidden folders, `__pycache__` and
/// `media` (Manim's output), in no particular order.
pub fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let ft = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ft.is_dir() {
            if name == "__pycache__" || name == "media" {
                continue;
            }
            walk(&path, visit)?;
        } else {
            visit(&path);
        }
    }
    Ok(())
}

/// Natural order per path component, so `scenes/2.py` < `scenes/10.py`.
pub fn natural_path_cmp(a: &str, b: &str) -> Ordering {
    let mut ai = a.split('/');
    let mut bi = b.split('/');
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match natord::compare(x, y) {
                Ordering::Equal => match x.cmp(y) {
                    Ordering::Equal => continue,
                    o => return o,
                },
                o => return o,
            },
        }
    }
}

/// Bytes of the files below `dir` (symbolic links not followed).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}
