//! The render cache: content-addressed scene videos with metadata.
//!
//! [`Store`] is the seam for other stores (a shared remote cache later);
//! [`LocalStore`] keeps everything under `.parender/cache/`:
//! - `objects/<blake3 of the video>.mp4`: the videos, named by content;
//! - `entries/<key>.json`: what was rendered from which inputs (paths and
//!   hashes), render time, frames and duration, the video's hash, the
//!   Manim log tail; the file's mtime is its last use (for LRU eviction);
//! - `latest/<profile>/<scene>`: the key of each scene's last good render;
//! - `failures/<key>.json`: the error of the last failed render of a key;
//! - `locks/`: one lock file per scene and profile, held while rendering.
//!
//! Every write goes to a temp file in the same folder, is synced and renamed
//! into place, so a crash leaves the old entry or the new one. Every read
//! checks the object against its hash (through the stat-keyed hash memo, so
//! an untouched object is not re-read; any write to it is noticed), so a
//! truncated or corrupt file is never served.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::fingerprint::Inputs;
use crate::hashcache::HashCache;
use crate::media::VideoInfo;
use crate::scene::{SceneError, SceneId};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub scene: SceneId,
    pub profile: String,
    /// blake3 of the video file; names the object.
    pub video_hash: String,
    pub info: VideoInfo,
    /// Length of the video in seconds (`info.frames` frames).
    #[serde(default)]
    pub duration: f64,
    pub render_seconds: f64,
    /// Seconds since the Unix epoch.
    pub created: u64,
    pub log_tail: String,
    /// The key material: which files (with their hashes) and settings.
    pub inputs: Option<Inputs>,
    /// blake3 of the scene's own sound (WAV, from `add_sound`), if it has any.
    #[serde(default)]
    pub sound: Option<String>,
    /// blake3 of its subtitles (SRT, from `add_subcaption`), if it has any.
    #[serde(default)]
    pub subtitles: Option<String>,
    /// Where the video is, filled in on read.
    #[serde(skip)]
    pub video: PathBuf,
    /// Where the sound and subtitles are, filled in on read.
    #[serde(skip)]
    pub sound_file: Option<PathBuf>,
    #[serde(skip)]
    pub subtitles_file: Option<PathBuf>,
}

/// What a render made besides its video.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    pub sound: Option<&'a Path>,
    pub subtitles: Option<&'a Path>,
}

/// Object file extensions: the video, the sound, the subtitles.
const KINDS: [&str; 3] = ["mp4", "wav", "srt"];

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
    /// Stores `video` and its `extras` (copied in) under `entry.key` and
    /// marks it the latest render of its scene.
    fn put(&self, entry: Entry, video: &Path, extras: Extras<'_>) -> Result<Entry, Error>;
    fn latest(&self, scene: &SceneId, profile: &str) -> Result<Lookup, Error>;
    /// Remembers (or, with `None`, clears) the failure of a key.
    fn record_failure(
        &self,
        key: &str,
        scene: &SceneId,
        error: Option<&SceneError>,
    ) -> Result<(), Error>;
    fn failure(&self, key: &str) -> Option<SceneError>;
}

pub struct LocalStore {
    dir: PathBuf,
    hashes: Arc<HashCache>,
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

/// Copies `from` to `to` atomically (temp file beside `to`, fsync, rename).
pub fn copy_atomic(from: &Path, to: &Path) -> Result<(), Error> {
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    std::fs::copy(from, tmp.path()).map_err(|e| Error::io(from, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(to, e))?;
    tmp.persist(to).map_err(|e| Error::io(to, e.error))?;
    Ok(())
}

fn short_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
}

/// An exclusive lock on a file, released when dropped (or when the process dies).
pub struct FileLock(#[allow(dead_code)] std::fs::File);

impl LocalStore {
    pub fn open(dir: PathBuf, hashes: Arc<HashCache>) -> LocalStore {
        LocalStore { dir, hashes }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join("entries").join(format!("{key}.json"))
    }

    fn object_path(&self, hash: &str, ext: &str) -> PathBuf {
        self.dir.join("objects").join(format!("{hash}.{ext}"))
    }

    /// The objects an entry names: (hash, extension).
    fn objects_of(entry: &Entry) -> Vec<(&str, &'static str)> {
        [
            Some(&entry.video_hash),
            entry.sound.as_ref(),
            entry.subtitles.as_ref(),
        ]
        .into_iter()
        .zip(KINDS)
        .filter_map(|(h, ext)| h.map(|h| (h.as_str(), ext)))
        .collect()
    }

    /// Checks an object against its hash: `Some(problem)` when it is
    /// missing or does not match.
    fn check_object(&self, hash: &str, ext: &str) -> Result<Option<String>, Error> {
        let object = self.object_path(hash, ext);
        Ok(match self.hashes.hash(&object)? {
            None => Some(format!("missing {}", object.display())),
            Some(h) if h != hash => Some(format!("{} does not match its hash", object.display())),
            Some(_) => None,
        })
    }

    /// Copies `file` into the store under its content hash; returns the hash.
    fn put_object(&self, file: &Path, ext: &str) -> Result<String, Error> {
        let hash = self
            .hashes
            .hash(file)?
            .ok_or_else(|| Error::Other(format!("{} vanished", file.display())))?;
        let object = self.object_path(&hash, ext);
        if self.hashes.hash(&object)?.as_deref() != Some(hash.as_str()) {
            copy_atomic(file, &object)?;
        }
        Ok(hash)
    }

    fn latest_path(&self, scene: &SceneId, profile: &str) -> PathBuf {
        self.dir
            .join("latest")
            .join(profile)
            .join(short_hash(&scene.0))
    }

    fn failure_path(&self, key: &str) -> PathBuf {
        self.dir.join("failures").join(format!("{key}.json"))
    }

    /// Waits for, then holds, the lock of one scene's renders in one profile:
    /// two processes never render (or write the media folder of) the same
    /// scene at once.
    pub fn lock_scene(&self, scene: &SceneId, profile: &str) -> Result<FileLock, Error> {
        let path = self
            .dir
            .join("locks")
            .join(format!("{profile}-{}.lock", short_hash(&scene.0)));
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.lock().map_err(|e| Error::io(&path, e))?;
        Ok(FileLock(f))
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
        for (hash, ext) in Self::objects_of(&entry) {
            if let Some(problem) = self.check_object(hash, ext)? {
                return Ok(Lookup::Corrupt(problem));
            }
        }
        self.fill_paths(&mut entry);
        Ok(Lookup::Hit(Box::new(entry)))
    }

    /// Marks an entry used now (eviction is least recently used first).
    fn touch(&self, key: &str) {
        if let Ok(f) = std::fs::File::options()
            .write(true)
            .open(self.entry_path(key))
        {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    /// Every entry with the objects it names, their size and its last use.
    pub fn usage(&self) -> Result<Vec<Usage>, Error> {
        let mut out = Vec::new();
        let dir = self.dir.join("entries");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let p = e.path();
            let Some(key) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
            else {
                continue;
            };
            if key.starts_with(".tmp-") {
                continue;
            }
            let used = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let Ok(entry) = serde_json::from_slice::<Entry>(&bytes) else {
                continue;
            };
            let objects: Vec<String> = Self::objects_of(&entry)
                .iter()
                .map(|(h, ext)| format!("{h}.{ext}"))
                .collect();
            let size = objects
                .iter()
                .map(|o| {
                    std::fs::metadata(self.dir.join("objects").join(o))
                        .map(|m| m.len())
                        .unwrap_or(0)
                })
                .sum();
            out.push(Usage {
                key: key.to_string(),
                video_hash: entry.video_hash,
                objects,
                size,
                used,
            });
        }
        Ok(out)
    }

    /// Removes least recently used entries until the objects fit in
    /// `max_bytes`, then objects no entry refers to. Returns (entries removed,
    /// bytes freed).
    pub fn gc(&self, max_bytes: u64) -> Result<(usize, u64), Error> {
        let mut usage = self.usage()?;
        usage.sort_by_key(|u| u.used);
        let mut total = Usage::total(&usage);
        let mut removed = 0;
        let mut kept: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for u in &usage {
            let shared = usage
                .iter()
                .filter(|o| o.video_hash == u.video_hash)
                .count()
                > 1;
            if total > max_bytes {
                let _ = std::fs::remove_file(self.entry_path(&u.key));
                removed += 1;
                if !shared {
                    total = total.saturating_sub(u.size);
                }
            } else {
                kept.extend(u.objects.iter().map(String::as_str));
            }
        }
        // Objects that no remaining entry names.
        let mut freed = 0;
        let objects = self.dir.join("objects");
        if let Ok(rd) = std::fs::read_dir(&objects) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !kept.contains(name.as_str()) {
                    freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        Ok((removed, freed))
    }

    /// Fills in where an entry's objects are.
    fn fill_paths(&self, entry: &mut Entry) {
        entry.video = self.object_path(&entry.video_hash, KINDS[0]);
        entry.sound_file = entry.sound.as_ref().map(|h| self.object_path(h, KINDS[1]));
        entry.subtitles_file = entry
            .subtitles
            .as_ref()
            .map(|h| self.object_path(h, KINDS[2]));
    }
}

/// One cache entry's share of the store.
#[derive(Debug, Clone)]
pub struct Usage {
    pub key: String,
    pub video_hash: String,
    /// File names of its objects below `objects/`.
    pub objects: Vec<String>,
    /// Their total size in bytes.
    pub size: u64,
    /// Last use: the entry file's mtime.
    pub used: std::time::SystemTime,
}

impl Usage {
    /// Bytes of all entries' objects, counting each video once.
    pub fn total(usage: &[Usage]) -> u64 {
        let mut seen = std::collections::HashSet::new();
        usage
            .iter()
            .filter(|u| seen.insert(u.video_hash.as_str()))
            .map(|u| u.size)
            .sum()
    }
}

impl Store for LocalStore {
    fn get(&self, key: &str) -> Result<Lookup, Error> {
        let found = self.read_entry(key)?;
        if let Lookup::Hit(_) = found {
            self.touch(key);
        }
        Ok(found)
    }

    fn put(&self, mut entry: Entry, video: &Path, extras: Extras<'_>) -> Result<Entry, Error> {
        entry.video_hash = self.put_object(video, KINDS[0])?;
        entry.sound = extras
            .sound
            .map(|f| self.put_object(f, KINDS[1]))
            .transpose()?;
        entry.subtitles = extras
            .subtitles
            .map(|f| self.put_object(f, KINDS[2]))
            .transpose()?;
        let json = serde_json::to_vec_pretty(&entry).map_err(|e| Error::Other(e.to_string()))?;
        write_atomic(&self.entry_path(&entry.key), &json)?;
        write_atomic(
            &self.latest_path(&entry.scene, &entry.profile),
            entry.key.as_bytes(),
        )?;
        let _ = std::fs::remove_file(self.failure_path(&entry.key));
        self.fill_paths(&mut entry);
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

    fn record_failure(
        &self,
        key: &str,
        scene: &SceneId,
        error: Option<&SceneError>,
    ) -> Result<(), Error> {
        let path = self.failure_path(key);
        match error {
            Some(e) => {
                let v = serde_json::json!({ "scene": scene, "error": e });
                write_atomic(&path, v.to_string().as_bytes())
            }
            None => {
                let _ = std::fs::remove_file(path);
                Ok(())
            }
        }
    }

    fn failure(&self, key: &str) -> Option<SceneError> {
        let bytes = std::fs::read(self.failure_path(key)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        serde_json::from_value(v.get("error")?.clone()).ok()
    }
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
            duration: 1.0 / 15.0,
            render_seconds: 1.0,
            created: now_unix(),
            log_tail: String::new(),
            inputs: None,
            sound: None,
            subtitles: None,
            video: PathBuf::new(),
            sound_file: None,
            subtitles_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> Entry {
        Entry::fixture(key, SceneId("scenes/a.py:A".into()))
    }

    fn store(t: &Path) -> LocalStore {
        LocalStore::open(t.join("cache"), Arc::new(HashCache::default()))
    }

    #[test]
    fn put_get_latest_and_corruption() {
        let t = tempfile::tempdir().unwrap();
        let store = store(t.path());
        let v = t.path().join("v.mp4");
        std::fs::write(&v, b"video bytes").unwrap();
        assert!(matches!(store.get("k1").unwrap(), Lookup::Miss));
        let e = store.put(entry("k1"), &v, Extras::default()).unwrap();
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
        // Corrupt in place (same size), then truncate: detected, never served.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&e.video, b"VIDEO BYTES").unwrap();
        assert!(matches!(store.get("k1").unwrap(), Lookup::Corrupt(_)));
        std::fs::write(&e.video, b"video").unwrap();
        assert!(matches!(store.get("k1").unwrap(), Lookup::Corrupt(_)));
        // Putting it again repairs the object.
        store.put(entry("k1"), &v, Extras::default()).unwrap();
        assert!(matches!(store.get("k1").unwrap(), Lookup::Hit(_)));
        // No temp files are left in the store.
        for dir in ["objects", "entries"] {
            for f in std::fs::read_dir(t.path().join("cache").join(dir)).unwrap() {
                let name = f.unwrap().file_name();
                assert!(!name.to_string_lossy().starts_with(".tmp-"), "{name:?}");
            }
        }
    }

    #[test]
    fn failures_are_remembered_until_a_success() {
        let t = tempfile::tempdir().unwrap();
        let store = store(t.path());
        let id = SceneId("scenes/a.py:A".into());
        store
            .record_failure("k", &id, Some(&SceneError::plain("boom")))
            .unwrap();
        assert_eq!(store.failure("k").unwrap().message, "boom");
        let v = t.path().join("v.mp4");
        std::fs::write(&v, b"x").unwrap();
        store.put(entry("k"), &v, Extras::default()).unwrap();
        assert!(store.failure("k").is_none());
    }

    #[test]
    fn gc_evicts_least_recently_used_first() {
        let t = tempfile::tempdir().unwrap();
        let store = store(t.path());
        for (i, key) in ["old", "mid", "new"].iter().enumerate() {
            let v = t.path().join(format!("{key}.mp4"));
            std::fs::write(&v, vec![i as u8; 100]).unwrap();
            store.put(entry(key), &v, Extras::default()).unwrap();
            let f = std::fs::File::options()
                .write(true)
                .open(store.entry_path(key))
                .unwrap();
            f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64))
                .unwrap();
        }
        // "old" was used last: it survives, "mid" goes first.
        store.get("old").unwrap();
        let (removed, freed) = store.gc(250).unwrap();
        assert_eq!((removed, freed), (1, 100));
        assert!(matches!(store.get("mid").unwrap(), Lookup::Miss));
        assert!(matches!(store.get("old").unwrap(), Lookup::Hit(_)));
        assert!(matches!(store.get("new").unwrap(), Lookup::Hit(_)));
    }
}
