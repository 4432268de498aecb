//! Content hashes of files, remembered by (size, mtime, inode) so an
//! unchanged file is not read again; any change of that metadata re-reads it.
//! Persisted in `.parender/hashes.json` between runs.
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ino: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            size: meta.len(),
            mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
            ino: meta.ino(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Known {
    stamp: Stamp,
    hash: String,
}

/// A thread-safe memo of file hashes.
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    known: Mutex<HashMap<PathBuf, Known>>,
    dirty: Mutex<bool>,
}

pub fn hash_bytes(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut h = blake3::Hasher::new();
    h.update_reader(std::fs::File::open(path)?)?;
    Ok(h.finalize().to_hex().to_string())
}

impl HashCache {
    /// Loads the memo at `path` (a missing or unreadable memo is empty).
    pub fn load(path: PathBuf) -> HashCache {
        let known = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        HashCache {
            path: Some(path),
            known: Mutex::new(known),
            dirty: Mutex::new(false),
        }
    }

    /// The blake3 of `path`'s content, or `None` if it is not a file.
    pub fn hash(&self, path: &Path) -> Result<Option<String>, Error> {
        let meta = match std::fs::metadata(path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        let stamp = Stamp::of(&meta);
        if let Ok(k) = self.known.lock()
            && let Some(known) = k.get(path)
            && known.stamp == stamp
        {
            return Ok(Some(known.hash.clone()));
        }
        let hash = hash_file(path).map_err(|e| Error::io(path, e))?;
        // A file modified within the stamp's resolution while we read it
        // could pair new metadata with old content: only remember hashes of
        // files whose metadata did not move during the read.
        let after = std::fs::metadata(path).map(|m| Stamp::of(&m)).ok();
        if after == Some(stamp)
            && let Ok(mut k) = self.known.lock()
        {
            k.insert(
                path.to_path_buf(),
                Known {
                    stamp,
                    hash: hash.clone(),
                },
            );
            if let Ok(mut d) = self.dirty.lock() {
                *d = true;
            }
        }
        Ok(Some(hash))
    }

    /// Forgets `path`, so the next [`HashCache::hash`] reads it.
    pub fn forget(&self, path: &Path) {
        if let Ok(mut k) = self.known.lock() {
            k.remove(path);
        }
    }

    /// Writes the memo back if it changed (atomically; failures are harmless).
    pub fn save(&self) {
        let dirty = self.dirty.lock().map(|d| *d).unwrap_or(false);
        let Some(path) = &self.path else { return };
        if !dirty {
            return;
        }
        if let Ok(k) = self.known.lock() {
            // Drop entries of files that are gone.
            let live: HashMap<&PathBuf, &Known> = k.iter().filter(|(p, _)| p.exists()).collect();
            if let Ok(bytes) = serde_json::to_vec(&live) {
                let _ = crate::fsutil::write_atomic(path, &bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_notices_changes() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.txt");
        std::fs::write(&f, "one").unwrap();
        let memo = t.path().join("memo.json");
        let c = HashCache::load(memo.clone());
        let h1 = c.hash(&f).unwrap().unwrap();
        assert_eq!(h1, hash_bytes(b"one"));
        c.save();
        let c = HashCache::load(memo);
        assert_eq!(c.hash(&f).unwrap().unwrap(), h1);
        // Same size, new content, new mtime: re-read.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&f, "two").unwrap();
        assert_eq!(c.hash(&f).unwrap().unwrap(), hash_bytes(b"two"));
        assert_eq!(c.hash(&t.path().join("missing")).unwrap(), None);
        assert_eq!(c.hash(t.path()).unwrap(), None);
    }
}
