//! The render cache: content-addressed scene videos with metadata.
//!
//! [`Store`] is the seam for other stores (a shared remote cache later);
//! [`LocalStore`] keeps everything under `.parender/cache/`:
//! `objects/<blake3 of the video>.mp4`, `entries/<key>.json` and
//! `latest/<profile>/<blake3 of the scene id>` (the last good render of each
//! scene, used when a build leaves a scene out). Every write goes to a temp
//! file in the same folder, is synced and renamed into place; every read
//! re-hashes the object, so a truncated or corrupt file is never served.
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::media::VideoInfo;
use crate::scene::SceneId;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub scene: SceneId,
    pub profile: String,
    /// blake3 of the video file; names the object.
    pub video_hash: String,
    pub info: VideoInfo,
    pub render_seconds: f64,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub log_tail: String,
    /// Where the video is, filled in on read.
    #[serde(skip)]
    pub video: PathBuf,
}

/// What a lookup found.
#[derive(Debug)]
pub enum Lookup {
    Hit(Box<Entry>),
    Miss,
    /// An entry exists but its object is gone or does not match its hash.
    Corrupt(String),
}

pub trait Store: Send + Sync {
    fn get(&self, key: &str) -> Result<Lookup, Error>;
    /// Stores `video` (copied in) under `key` and marks it the latest render
    /// of its scene.
    fn put(&self, entry: Entry, video: &Path) -> Result<Entry, Error>;
    fn latest(&self, scene: &SceneId, profile: &str) -> Result<Lookup, Error>;
}

pub struct LocalStore {
    dir: PathBuf,
}

fn hash_file(path: &Path) -> Result<String, Error> {
    let mut h = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    h.update_reader(file).map_err(|e| Error::io(path, e))?;
    Ok(h.finalize().to_hex().to_string())
}

/// Writes `bytes` to `path` atomically: temp file in the same folder, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(path, e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

impl LocalStore {
    pub fn open(dir: PathBuf) -> LocalStore {
        LocalStore { dir }
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join("entries").join(format!("{key}.json"))
    }

    fn object_path(&self, hash: &str) -> PathBuf {
        self.dir.join("objects").join(format!("{hash}.mp4"))
    }

    fn latest_path(&self, scene: &SceneId, profile: &str) -> PathBuf {
        let h = blake3::hash(scene.0.as_bytes()).to_hex();
        self.dir.join("latest").join(profile).join(&h[..32])
    }

    fn read_entry(&self, key: &str) -> Result<Lookup, Error> {
        let path = self.entry_path(key);
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Miss),
            Err(e) => return Err(Error::io(&path, e)),
        };
        let mut entry: Entry = match serde_json::from_slice(&text) {
            Ok(e) => e,
            Err(e) => {
                return Ok(Lookup::Corrupt(format!(
                    "unreadable entry {}: {e}",
                    path.display()
                )));
            }
        };
        let object = self.object_path(&entry.video_hash);
        if !object.is_file() {
            return Ok(Lookup::Corrupt(format!(
                "missing video {}",
                object.display()
            )));
        }
        let actual = hash_file(&object)?;
        if actual != entry.video_hash {
            return Ok(Lookup::Corrupt(format!(
                "video {} does not match its hash",
                object.display()
            )));
        }
        entry.video = object;
        Ok(Lookup::Hit(Box::new(entry)))
    }
}

impl Store for LocalStore {
    fn get(&self, key: &str) -> Result<Lookup, Error> {
        self.read_entry(key)
    }

    fn put(&self, mut entry: Entry, video: &Path) -> Result<Entry, Error> {
        let hash = hash_file(video)?;
        let object = self.object_path(&hash);
        if !object.is_file() {
            let dir = object.parent().unwrap_or(&self.dir);
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
            let tmp = tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(dir)
                .map_err(|e| Error::io(dir, e))?;
            std::fs::copy(video, tmp.path()).map_err(|e| Error::io(video, e))?;
            tmp.as_file()
                .sync_all()
                .map_err(|e| Error::io(&object, e))?;
            tmp.persist(&object)
                .map_err(|e| Error::io(&object, e.error))?;
        }
        entry.video_hash = hash;
        let json = serde_json::to_vec_pretty(&entry).map_err(|e| Error::Other(e.to_string()))?;
        write_atomic(&self.entry_path(&entry.key), &json)?;
        write_atomic(
            &self.latest_path(&entry.scene, &entry.profile),
            entry.key.as_bytes(),
        )?;
        entry.video = object;
        Ok(entry)
    }

    fn latest(&self, scene: &SceneId, profile: &str) -> Result<Lookup, Error> {
        let path = self.latest_path(scene, profile);
        match std::fs::read_to_string(&path) {
            Ok(key) => self.read_entry(key.trim()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lookup::Miss),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

#[cfg(test)]
impl Entry {
    /// A dev-profile entry of a tiny video, for unit tests.
    pub fn fixture(key: &str, scene: SceneId) -> Entry {
        Entry {
            key: key.into(),
            scene,
            profile: "dev".into(),
            video_hash: String::new(),
            info: VideoInfo::fixture(15, 1),
            render_seconds: 1.0,
            created: now_unix(),
            log_tail: String::new(),
            video: PathBuf::new(),
        }
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> Entry {
        Entry::fixture(key, SceneId("scenes/a.py:A".into()))
    }

    #[test]
    fn put_get_latest_and_corruption() {
        let t = tempfile::tempdir().unwrap();
        let store = LocalStore::open(t.path().join("cache"));
        let v = t.path().join("v.mp4");
        std::fs::write(&v, b"video bytes").unwrap();
        assert!(matches!(store.get("k1").unwrap(), Lookup::Miss));
        let e = store.put(entry("k1"), &v).unwrap();
        assert_eq!(std::fs::read(&e.video).unwrap(), b"video bytes");
        let Lookup::Hit(got) = store.get("k1").unwrap() else {
            panic!("expected a hit")
        };
        assert_eq!(got.video_hash, e.video_hash);
        assert!(matches!(
            store.latest(&e.scene, "dev").unwrap(),
            Lookup::Hit(_)
        ));
        assert!(matches!(
            store.latest(&e.scene, "release").unwrap(),
            Lookup::Miss
        ));
        // Truncate the object: detected, never served.
        std::fs::write(&e.video, b"video").unwrap();
        assert!(matches!(store.get("k1").unwrap(), Lookup::Corrupt(_)));
        // No temp files are left in the store.
        for dir in ["objects", "entries"] {
            for f in std::fs::read_dir(t.path().join("cache").join(dir)).unwrap() {
                let name = f.unwrap().file_name();
                assert!(!name.to_string_lossy().starts_with(".tmp-"), "{name:?}");
            }
        }
    }
}
