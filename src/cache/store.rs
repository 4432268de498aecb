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
//! - `locks/`: one lock file per scene and profile, held while rendering;
//! - `mux/<key>/`: each scene's mux (see [`crate::media::mux`]);
//! - `users.lock`: the lock that keeps `gc` away from builds (below).
//!
//! Every write goes to a temp file in the same folder, is synced and renamed
//! into place, so a crash leaves the old entry or the new one. Every read
//! checks the object against its hash (through the stat-keyed hash memo, so
//! an untouched object is not re-read; any write to it is noticed), so a
//! truncated or corrupt file is never served.
//!
//! **gc never removes what a build holds.** Every process that opens the
//! store (a build, each build of `watch`, `status`) holds a shared `flock`
//! on `users.lock` for as long as it has the store open; `gc` converts its
//! own to an exclusive lock, so it runs only when no build is between its
//! first lookup and its published video, and a build that starts meanwhile
//! waits the few milliseconds gc takes. (Linux grants new shared locks while
//! an exclusive one waits, so a waiting gc never holds a build up.) flock
//! works across processes and is released by the kernel when a process dies,
//! so a killed build never blocks gc; a time- or recency-based pin could not
//! say whether a build that looked an entry up a moment ago still needs it.
//!
//! **Temp files of killed processes are removed.** Temp files and folders
//! are locked while they are written ([`locked_tempfile`],
//! [`locked_tempdir`]), so [`remove_abandoned`] can tell one a live process
//! is writing (lock held) from one a `kill -9` left (lock free): builds sweep
//! the cache when they start, the stitch sweeps the output folder, and `gc`
//! sweeps everything.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::analyze::fingerprint::Inputs;
use crate::analyze::hashcache::HashCache;
use crate::error::Error;
use crate::ffmpeg::VideoInfo;
use crate::fsutil::{Swept, copy_atomic, dir_size, is_tmp_name, remove_abandoned, write_atomic};
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
    /// The key of the scene's last good render in `profile`, whether or not
    /// its entry is still in the cache (`cache gc` may have evicted it).
    fn latest_key(&self, scene: &SceneId, profile: &str) -> Option<String>;
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
    /// `users.lock`, held shared while the store is open (see the module
    /// docs); `None` when it cannot be created (a read-only cache).
    users: Option<std::fs::File>,
}

/// The file every process using the store holds a shared lock on.
const USERS_LOCK: &str = "users.lock";

/// The newest mtime of anything in `dir` (the folder's own included).
fn newest_mtime(dir: &Path) -> std::time::SystemTime {
    let mtime = |p: &Path| {
        std::fs::symlink_metadata(p)
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH)
    };
    let mut newest = mtime(dir);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            newest = newest.max(mtime(&p));
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    newest
}

/// Sweeps the temp files a killed process left in a store folder: `.tmp-`
/// files and folders in it and in its subfolders (objects, entries,
/// failures, the mux cache) and in `latest/<profile>/`.
pub fn remove_abandoned_temps(cache: &Path) -> Swept {
    let mut swept = remove_abandoned(cache, is_tmp_name);
    let Ok(rd) = std::fs::read_dir(cache) else {
        return swept;
    };
    for e in rd.flatten() {
        if !e.file_type().is_ok_and(|t| t.is_dir()) || is_tmp_name(&e.file_name().to_string_lossy())
        {
            continue;
        }
        let sub = e.path();
        swept += remove_abandoned(&sub, is_tmp_name);
        if e.file_name() == "latest"
            && let Ok(profiles) = std::fs::read_dir(&sub)
        {
            for p in profiles.flatten() {
                if p.file_type().is_ok_and(|t| t.is_dir()) {
                    swept += remove_abandoned(&p.path(), is_tmp_name);
                }
            }
        }
    }
    swept
}

fn short_hash(text: &str) -> String {
    blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
}

/// An exclusive lock on a file, released when dropped (or when the process dies).
pub struct FileLock(#[allow(dead_code)] std::fs::File);

impl LocalStore {
    /// Opens the store and holds its shared lock until dropped (waiting, if
    /// a `gc` is running, until it is done).
    pub fn open(dir: PathBuf, hashes: Arc<HashCache>) -> LocalStore {
        let users = std::fs::create_dir_all(&dir)
            .and_then(|_| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(dir.join(USERS_LOCK))
            })
            .ok()
            .filter(|f| f.lock_shared().is_ok());
        LocalStore { dir, hashes, users }
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

    /// Takes the store for `gc`: turns this process's shared lock into an
    /// exclusive one, so no build or watch is using the cache while gc runs.
    /// Calls `waiting` once if it has to wait for them to finish.
    fn lock_exclusive(&self, waiting: impl FnOnce()) -> Result<(), Error> {
        let path = self.dir.join(USERS_LOCK);
        let Some(f) = &self.users else {
            return Err(Error::Other(format!(
                "cannot lock the cache ({}), so gc cannot tell whether a build is using it",
                path.display()
            )));
        };
        match f.try_lock() {
            Ok(()) => Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                f.lock().map_err(|e| Error::io(&path, e))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// Trims everything parender keeps for reuse until it fits in
    /// `max_bytes`: the renders (entries and their objects), the mux cache
    /// and, with `state` (the folder holding this store), the placeholder
    /// cards and Manim's media folders. Least recently used first, across all
    /// of them; then objects no entry refers to. Before that, removes the
    /// temp files and scratch folders killed processes left. Waits (calling
    /// `waiting` first) until no build or watch uses the store.
    pub fn gc(
        &self,
        max_bytes: u64,
        state: Option<&Path>,
        waiting: impl FnOnce(),
    ) -> Result<GcReport, Error> {
        self.lock_exclusive(waiting)?;
        let mut report = GcReport::default();
        // Left by killed processes: nothing is writing now (exclusive lock).
        let mut swept = remove_abandoned_temps(&self.dir);
        if let Some(state) = state {
            swept += remove_abandoned(&state.join("placeholders"), is_tmp_name);
            swept += remove_abandoned(&state.join("tmp"), |n| n.starts_with("build-"));
        }
        report.temps = swept.removed;
        report.freed = swept.bytes;

        // Everything evictable, with its size and last use.
        let usage = self.usage()?;
        let mut refs: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for u in &usage {
            for o in &u.objects {
                *refs.entry(o.as_str()).or_default() += 1;
            }
        }
        let object_size = |o: &str| {
            std::fs::metadata(self.dir.join("objects").join(o))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let mut total: u64 = refs.keys().map(|o| object_size(o)).sum();
        let mut items: Vec<(std::time::SystemTime, Evictable)> = usage
            .iter()
            .enumerate()
            .map(|(i, u)| (u.used, Evictable::Entry(i)))
            .collect();
        let mut others = Vec::new();
        // Muxes: last used when their meta.json was (touched on every hit).
        for dir in subfolders(&self.dir.join("mux")) {
            let used = std::fs::metadata(dir.join("meta.json"))
                .or_else(|_| std::fs::metadata(&dir))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            others.push((used, Kind::Mux, dir));
        }
        if let Some(state) = state {
            if let Ok(rd) = std::fs::read_dir(state.join("placeholders")) {
                for e in rd.flatten() {
                    let name = e.file_name();
                    if e.file_type().is_ok_and(|t| t.is_file())
                        && !is_tmp_name(&name.to_string_lossy())
                    {
                        let used = e
                            .metadata()
                            .and_then(|m| m.modified())
                            .unwrap_or(std::time::UNIX_EPOCH);
                        others.push((used, Kind::Card, e.path()));
                    }
                }
            }
            // Manim's media folders: media/<profile>/<scene>/.
            for profile in subfolders(&state.join("media")) {
                for scene in subfolders(&profile) {
                    others.push((newest_mtime(&scene), Kind::Media, scene));
                }
            }
        }
        let mut sizes = Vec::new();
        for (used, kind, path) in others {
            let size = match kind {
                Kind::Card => std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
                _ => dir_size(&path),
            };
            total += size;
            items.push((used, Evictable::Other(sizes.len())));
            sizes.push((kind, path, size));
        }
        items.sort_by_key(|(used, _)| *used);

        let mut removed_entries = std::collections::HashSet::new();
        for (_, item) in &items {
            if total <= max_bytes {
                break;
            }
            match item {
                Evictable::Entry(i) => {
                    let u = &usage[*i];
                    if std::fs::remove_file(self.entry_path(&u.key)).is_err() {
                        continue;
                    }
                    removed_entries.insert(*i);
                    report.entries += 1;
                    for o in &u.objects {
                        if let Some(n) = refs.get_mut(o.as_str()) {
                            *n -= 1;
                            if *n == 0 {
                                total = total.saturating_sub(object_size(o));
                            }
                        }
                    }
                }
                Evictable::Other(j) => {
                    let (kind, path, size) = &sizes[*j];
                    let gone = match kind {
                        Kind::Card => std::fs::remove_file(path),
                        _ => std::fs::remove_dir_all(path),
                    };
                    if gone.is_err() {
                        continue;
                    }
                    total = total.saturating_sub(*size);
                    report.freed += size;
                    match kind {
                        Kind::Mux => report.muxes += 1,
                        Kind::Card => report.cards += 1,
                        Kind::Media => report.media += 1,
                    }
                }
            }
        }
        // Objects that no remaining entry names (temp files were swept above).
        let kept: std::collections::HashSet<&str> = usage
            .iter()
            .enumerate()
            .filter(|(i, _)| !removed_entries.contains(i))
            .flat_map(|(_, u)| u.objects.iter().map(String::as_str))
            .collect();
        if let Ok(rd) = std::fs::read_dir(self.dir.join("objects")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !kept.contains(name.as_str()) && !is_tmp_name(&name) {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    if std::fs::remove_file(e.path()).is_ok() {
                        report.freed += size;
                    }
                }
            }
        }
        report.left = total;
        Ok(report)
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

/// What `gc` removed and what is left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Render entries evicted (their objects go once no entry names them).
    pub entries: usize,
    /// Muxes (held frames and segment audio) evicted.
    pub muxes: usize,
    /// Placeholder cards evicted.
    pub cards: usize,
    /// Manim media folders evicted.
    pub media: usize,
    /// Temp files and scratch folders of killed processes removed.
    pub temps: usize,
    /// Bytes freed, all of these together.
    pub freed: u64,
    /// Bytes the trimmed folders hold now.
    pub left: u64,
}

/// What gc can evict besides entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Mux,
    Card,
    Media,
}

enum Evictable {
    Entry(usize),
    Other(usize),
}

/// The folders in `dir`, temp folders left out.
fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !is_tmp_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect()
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

    fn latest_key(&self, scene: &SceneId, profile: &str) -> Option<String> {
        let key = std::fs::read_to_string(self.latest_path(scene, profile)).ok()?;
        let key = key.trim();
        (!key.is_empty()).then(|| key.to_string())
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
    use crate::fsutil::{DIR_LOCK, locked_tempdir, locked_tempfile};
    use std::io::Write;

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
        let r = store.gc(250, None, || {}).unwrap();
        assert_eq!((r.entries, r.freed), (1, 100));
        assert!(matches!(store.get("mid").unwrap(), Lookup::Miss));
        assert!(matches!(store.get("old").unwrap(), Lookup::Hit(_)));
        assert!(matches!(store.get("new").unwrap(), Lookup::Hit(_)));
    }
    #[test]
    fn gc_waits_for_the_builds_using_the_store() {
        let t = tempfile::tempdir().unwrap();
        let build = store(t.path());
        let v = t.path().join("v.mp4");
        std::fs::write(&v, b"video").unwrap();
        build.put(entry("k"), &v, Extras::default()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let gc = {
            let dir = t.path().to_path_buf();
            let tx = tx.clone();
            std::thread::spawn(move || {
                let r = store(&dir).gc(0, None, || tx.send("waiting").unwrap());
                tx.send("done").unwrap();
                r.unwrap()
            })
        };
        assert_eq!(rx.recv().unwrap(), "waiting");
        // The build still has its entry, however long it runs.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(matches!(build.get("k").unwrap(), Lookup::Hit(_)));
        assert!(rx.try_recv().is_err(), "gc ran during a build");
        drop(build);
        assert_eq!(rx.recv().unwrap(), "done");
        assert_eq!(gc.join().unwrap().entries, 1);
        assert!(matches!(store(t.path()).get("k").unwrap(), Lookup::Miss));
    }

    #[test]
    fn gc_trims_muxes_cards_and_media_folders_too() {
        let t = tempfile::tempdir().unwrap();
        let state = t.path();
        let store = store(state);
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let age = |p: &Path| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(old)
                .unwrap()
        };
        // An old mux (100 B) and a recent one (100 B).
        for (key, is_old) in [("m-old", true), ("m-new", false)] {
            let d = state.join("cache/mux").join(key);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("audio.flac"), [0u8; 90]).unwrap();
            std::fs::write(d.join("meta.json"), [0u8; 10]).unwrap();
            if is_old {
                age(&d.join("meta.json"));
            }
        }
        let card = state.join("placeholders/c.mp4");
        std::fs::create_dir_all(card.parent().unwrap()).unwrap();
        std::fs::write(&card, [0u8; 50]).unwrap();
        age(&card);
        let media = state.join("media/dev/0123456789abcdef");
        std::fs::create_dir_all(&media).unwrap();
        std::fs::write(media.join("partial.mp4"), [0u8; 1000]).unwrap();
        for p in [media.join("partial.mp4"), media.clone()] {
            std::fs::File::open(&p).unwrap().set_modified(old).unwrap();
        }
        // Everything but the recent mux must go to fit in 100 bytes.
        let r = store.gc(100, Some(state), || {}).unwrap();
        assert_eq!((r.muxes, r.cards, r.media), (1, 1, 1), "{r:?}");
        assert_eq!((r.freed, r.left), (1150, 100));
        assert!(state.join("cache/mux/m-new/audio.flac").exists());
        assert!(!state.join("cache/mux/m-old").exists());
        assert!(!card.exists() && !media.exists());
    }

    #[test]
    fn only_temp_files_no_live_process_holds_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        // Locked while written: kept, however old.
        let mut live = locked_tempfile(d, ".tmp-", "").unwrap();
        live.write_all(b"being written").unwrap();
        let live_dir = locked_tempdir(d, ".tmp-").unwrap();
        // A killed writer's: lock free, with content.
        let dead = d.join(".tmp-dead");
        std::fs::write(&dead, b"half").unwrap();
        let dead_dir = d.join(".tmp-deaddir");
        std::fs::create_dir(&dead_dir).unwrap();
        std::fs::write(dead_dir.join(DIR_LOCK), b"").unwrap();
        std::fs::write(dead_dir.join("hold.mp4"), [0u8; 10]).unwrap();
        // Just created, not locked yet: empty and young, kept.
        let young = d.join(".tmp-young");
        std::fs::write(&young, b"").unwrap();
        let young_dir = d.join(".tmp-youngdir");
        std::fs::create_dir(&young_dir).unwrap();
        // Not a temp name: never touched.
        std::fs::write(d.join("mine.txt"), b"x").unwrap();
        let swept = remove_abandoned(d, is_tmp_name);
        assert_eq!(
            swept,
            Swept {
                removed: 2,
                bytes: 14
            }
        );
        assert!(live.path().exists() && live_dir.path().exists());
        assert!(!dead.exists() && !dead_dir.exists());
        assert!(young.exists() && young_dir.exists());
        assert!(d.join("mine.txt").exists());
        // Files it writes have the mode a new file gets, not 0600.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(live.path()).unwrap().permissions().mode() & 0o777;
        let probe = d.join("probe");
        std::fs::File::create(&probe).unwrap();
        let want = std::fs::metadata(&probe).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, want);
    }
}
