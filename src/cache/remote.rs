//! The shared remote cache (`[cache] remote`): one person's render is
//! everyone's cache hit, as with sccache or Bazel's remote cache.
//!
//! It sits beside the [`LocalStore`], never instead of it:
//! - **read-through:** a scene the local cache lacks is asked for on the
//!   remote before it is rendered; a hit is downloaded into the local store;
//! - **write-back:** a new render is uploaded in the background (at most
//!   [`UPLOADS`] at once); a build waits for that only with `--wait-uploads`.
//!   Each upload is marked pending in `remote/pending/` until it is done, so
//!   one cut short (the build ended, the remote went down) is resumed by the
//!   next build;
//! - **content-addressed and verified:** `v1/objects/<blake3>.<ext>` hold the
//!   video, sound and subtitles, `v1/entries/<key>.json` the metadata, put
//!   last so no one sees an entry before its objects. Every download is
//!   checked against its hash; a poisoned or truncated object is rejected,
//!   reported, rendered locally and overwritten by the good upload;
//! - **never in the way:** a miss is `NotFound`; anything else (refused,
//!   timed out, bad credentials) turns the remote off for the rest of the
//!   run with one warning that says what to do, and the build renders
//!   locally. Short connect timeouts and two retries keep a dead remote to
//!   about a second.
//!
//! Counters (hits, misses, bytes) add up in `remote/stats.json` for
//! `parender cache stats`.
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::store::{Entry, Extras, LocalStore, Lookup, Store};
use crate::error::Error;
use crate::fsutil::write_atomic;

mod open;

/// Uploads at once.
pub const UPLOADS: usize = 4;
/// Remote layout version: the first folder of every object name.
const LAYOUT: &str = "v1";

/// The kinds of object an entry has: (extension, its hash in the entry).
fn objects(entry: &Entry) -> Vec<(&'static str, &str)> {
    let mut v = vec![("mp4", entry.video_hash.as_str())];
    v.extend(entry.sound.as_deref().map(|h| ("wav", h)));
    v.extend(entry.subtitles.as_deref().map(|h| ("srt", h)));
    v
}

/// Cumulative counters, kept in `remote/stats.json`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RemoteStats {
    pub hits: u64,
    pub misses: u64,
    /// Downloads that failed their hash check.
    pub rejected: u64,
    /// Times the remote was found unavailable.
    pub errors: u64,
    pub uploads: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

#[derive(Default)]
struct Counters([AtomicU64; 7]);

impl Counters {
    fn add(&self, which: usize, n: u64) {
        self.0[which].fetch_add(n, Ordering::Relaxed);
    }
    /// The counts so far, which are reset.
    fn take(&self) -> RemoteStats {
        let t = |i: usize| self.0[i].swap(0, Ordering::Relaxed);
        RemoteStats {
            hits: t(HITS),
            misses: t(MISSES),
            rejected: t(REJECTED),
            errors: t(ERRORS),
            uploads: t(UPLOADS_DONE),
            bytes_up: t(BYTES_UP),
            bytes_down: t(BYTES_DOWN),
        }
    }
}

const HITS: usize = 0;
const MISSES: usize = 1;
const REJECTED: usize = 2;
const ERRORS: usize = 3;
const UPLOADS_DONE: usize = 4;
const BYTES_UP: usize = 5;
const BYTES_DOWN: usize = 6;

/// What asking the remote for a key found.
#[derive(Debug)]
pub enum Fetch {
    /// Downloaded, verified and now in the local store.
    Hit(Box<Entry>),
    Miss,
    /// The remote is off for this run (the warning says why).
    Off,
}

/// One project's view of the remote cache.
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    /// `.parender/cache/remote/`: pending uploads and the stats.
    dir: PathBuf,
    /// Why the remote is off for this run, once it is.
    down: Mutex<Option<String>>,
    warnings: Mutex<Vec<String>>,
    counters: Counters,
    /// Objects a download rejected: uploads overwrite them.
    poisoned: Mutex<HashSet<String>>,
    limit: Arc<tokio::sync::Semaphore>,
    uploads: Mutex<Vec<JoinHandle<()>>>,
    /// Whether the uploads an earlier run left pending were queued: once,
    /// so `watch`'s later builds do not queue the ones in flight again.
    resumed: std::sync::atomic::AtomicBool,
}

impl Remote {
    /// The remote at `url` for the local cache in `cache_dir`. Only the URL
    /// is checked here; the first request finds out whether it answers.
    pub fn open(url: &str, cache_dir: &Path) -> Result<Remote, Error> {
        let store = open::store(url).map_err(|e| Error::Toolchain {
            message: format!("[cache] remote = {url:?}: {e}"),
            help: "use s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or http(s)://host/prefix (WebDAV)".into(),
        })?;
        Ok(Remote::with_store(url, store, cache_dir))
    }

    pub fn with_store(url: &str, store: Arc<dyn ObjectStore>, cache_dir: &Path) -> Remote {
        Remote {
            url: url.to_string(),
            store,
            dir: remote_dir(cache_dir),
            down: Mutex::new(None),
            warnings: Mutex::new(Vec::new()),
            counters: Counters::default(),
            poisoned: Mutex::new(HashSet::new()),
            limit: Arc::new(tokio::sync::Semaphore::new(UPLOADS)),
            uploads: Mutex::new(Vec::new()),
            resumed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn entry_path(key: &str) -> ObjectPath {
        ObjectPath::from(format!("{LAYOUT}/entries/{key}.json"))
    }

    fn object_path(hash: &str, ext: &str) -> ObjectPath {
        ObjectPath::from(format!("{LAYOUT}/objects/{hash}.{ext}"))
    }

    fn is_off(&self) -> bool {
        self.down.lock().is_ok_and(|d| d.is_some())
    }

    fn warn(&self, text: String) {
        if let Ok(mut w) = self.warnings.lock() {
            w.push(text);
        }
    }

    /// Turns the remote off for this run after `e`, warning once.
    fn went_down(&self, what: &str, e: &object_store::Error) {
        self.counters.add(ERRORS, 1);
        let Ok(mut down) = self.down.lock() else {
            return;
        };
        if down.is_some() {
            return;
        }
        let why = open::explain(e);
        *down = Some(why.clone());
        drop(down);
        self.warn(format!(
            "remote cache {} is unavailable ({what}: {why}); rendering locally, uploads resume with the next build",
            self.url
        ));
    }

    /// Warnings not yet handed out.
    pub fn take_warnings(&self) -> Vec<String> {
        self.warnings
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }

    /// Asks the remote for `key`; a hit is verified and put in `local`.
    pub async fn fetch(&self, key: &str, local: &LocalStore) -> Fetch {
        if self.is_off() {
            return Fetch::Off;
        }
        let json = match self.store.get(&Remote::entry_path(key)).await {
            Ok(r) => r.bytes().await,
            Err(e) => Err(e),
        };
        let json = match json {
            Ok(b) => b,
            Err(object_store::Error::NotFound { .. }) => {
                self.counters.add(MISSES, 1);
                return Fetch::Miss;
            }
            Err(e) => {
                self.went_down("looking up a render", &e);
                return Fetch::Off;
            }
        };
        match self.download(key, &json, local).await {
            Ok(Some(entry)) => {
                self.counters.add(HITS, 1);
                Fetch::Hit(Box::new(entry))
            }
            Ok(None) => Fetch::Off,
            Err(reason) => {
                self.counters.add(REJECTED, 1);
                self.warn(format!(
                    "remote cache: the render {key} was rejected ({reason}); rendering it here"
                ));
                Fetch::Miss
            }
        }
    }

    /// The objects of the entry in `json`, verified, into `local`.
    /// `Ok(None)`: the remote went down meanwhile; `Err`: rejected.
    async fn download(
        &self,
        key: &str,
        json: &[u8],
        local: &LocalStore,
    ) -> Result<Option<Entry>, String> {
        let entry: Entry =
            serde_json::from_slice(json).map_err(|e| format!("its entry is not valid: {e}"))?;
        if entry.key != key {
            return Err(format!("its entry names another key, {}", entry.key));
        }
        let tmp = tempfile::Builder::new()
            .prefix(".remote-")
            .tempdir_in(local.dir())
            .map_err(|e| {
                format!(
                    "cannot make a temp folder in {}: {e}",
                    local.dir().display()
                )
            })?;
        let mut files = Vec::new();
        for (ext, hash) in objects(&entry) {
            let path = Remote::object_path(hash, ext);
            let bytes = match self.store.get(&path).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(format!("its object {path} is missing"));
                }
                Err(e) => {
                    self.went_down("downloading a render", &e);
                    return Ok(None);
                }
            };
            self.counters.add(BYTES_DOWN, bytes.len() as u64);
            let got = blake3::hash(&bytes).to_hex().to_string();
            if got != hash {
                if let Ok(mut p) = self.poisoned.lock() {
                    p.insert(path.to_string());
                }
                return Err(format!(
                    "{path} does not match its hash: {} bytes hashing to {}",
                    bytes.len(),
                    &got[..16]
                ));
            }
            let file = tmp.path().join(format!("{hash}.{ext}"));
            std::fs::write(&file, &bytes).map_err(|e| format!("{}: {e}", file.display()))?;
            files.push((ext, file));
        }
        let file = |kind: &str| {
            files
                .iter()
                .find(|(ext, _)| *ext == kind)
                .map(|(_, f)| f.as_path())
        };
        let extras = Extras {
            sound: file("wav"),
            subtitles: file("srt"),
        };
        let video = file("mp4").ok_or("it has no video")?;
        local
            .put(entry.clone(), video, extras)
            .map(Some)
            .map_err(|e| format!("cannot store it locally: {e}"))
    }

    /// Uploads `entry` (a render in the local store, paths filled in) in the
    /// background.
    pub fn upload(self: &Arc<Self>, entry: Entry) {
        let marker = self.dir.join("pending").join(&entry.key);
        if let Err(e) = write_atomic(&marker, b"") {
            self.warn(format!(
                "remote cache: cannot mark {} as pending: {e}",
                entry.key
            ));
        }
        let me = self.clone();
        let task = tokio::spawn(async move {
            let Ok(_slot) = me.limit.clone().acquire_owned().await else {
                return;
            };
            if me.is_off() {
                return;
            }
            if me.push(&entry).await {
                me.counters.add(UPLOADS_DONE, 1);
                let _ = std::fs::remove_file(&marker);
            }
        });
        if let Ok(mut u) = self.uploads.lock() {
            u.retain(|t| !t.is_finished());
            u.push(task);
        }
    }

    /// Puts the objects the remote lacks, then the entry. False when the
    /// remote went down.
    async fn push(&self, entry: &Entry) -> bool {
        let files = [
            Some(entry.video.clone()),
            entry.sound_file.clone(),
            entry.subtitles_file.clone(),
        ];
        for ((ext, hash), file) in objects(entry).into_iter().zip(files.into_iter().flatten()) {
            let path = Remote::object_path(hash, ext);
            let poisoned = self
                .poisoned
                .lock()
                .is_ok_and(|p| p.contains(path.as_ref()));
            if !poisoned {
                match self.store.head(&path).await {
                    Ok(_) => continue,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        self.went_down("uploading a render", &e);
                        return false;
                    }
                }
            }
            let Ok(bytes) = tokio::fs::read(&file).await else {
                // Evicted locally meanwhile: nothing to share.
                return true;
            };
            if !self.put(&path, bytes).await {
                return false;
            }
        }
        match serde_json::to_vec_pretty(entry) {
            Ok(json) => self.put(&Remote::entry_path(&entry.key), json).await,
            Err(_) => true,
        }
    }

    async fn put(&self, path: &ObjectPath, bytes: Vec<u8>) -> bool {
        let n = bytes.len() as u64;
        let payload = PutPayload::from(bytes);
        let mut result = self.store.put(path, payload.clone()).await;
        // A WebDAV server answers 405 to the second of two uploads that
        // create the same folder at once (object_store makes each missing
        // folder of the path with MKCOL): the folder exists then, so trying
        // again gets further, once per level at most.
        for attempt in 1..=4 {
            match &result {
                Err(e) if e.to_string().contains("MKCOL") => {
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                    result = self.store.put(path, payload.clone()).await;
                }
                _ => break,
            }
        }
        match result {
            Ok(_) => {
                self.counters.add(BYTES_UP, n);
                true
            }
            Err(e) => {
                self.went_down("uploading a render", &e);
                false
            }
        }
    }

    /// Queues the uploads an earlier run left pending (the first call only).
    pub fn resume(self: &Arc<Self>, local: &LocalStore) {
        if self.resumed.swap(true, Ordering::Relaxed) {
            return;
        }
        let Ok(rd) = std::fs::read_dir(self.dir.join("pending")) else {
            return;
        };
        for key in rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
        {
            match local.get(&key) {
                Ok(Lookup::Hit(entry)) => self.upload(*entry),
                _ => {
                    let _ = std::fs::remove_file(self.dir.join("pending").join(&key));
                }
            }
        }
    }

    /// Uploads still running or queued.
    pub fn pending(&self) -> usize {
        self.uploads
            .lock()
            .map(|u| u.iter().filter(|t| !t.is_finished()).count())
            .unwrap_or(0)
    }

    /// Waits for every upload started so far.
    pub async fn wait_uploads(&self) {
        let tasks = self
            .uploads
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Adds this run's counts to `remote/stats.json`; returns them.
    pub fn save_stats(&self) -> RemoteStats {
        let run = self.counters.take();
        let path = self.dir.join("stats.json");
        let mut all = read_stats(&self.dir);
        all.hits += run.hits;
        all.misses += run.misses;
        all.rejected += run.rejected;
        all.errors += run.errors;
        all.uploads += run.uploads;
        all.bytes_up += run.bytes_up;
        all.bytes_down += run.bytes_down;
        if let Ok(json) = serde_json::to_vec_pretty(&all) {
            let _ = write_atomic(&path, &json);
        }
        run
    }

    /// For `parender doctor`: writes, reads back and deletes a small object.
    pub async fn check(&self) -> Result<String, (String, String)> {
        let path = ObjectPath::from(format!("{LAYOUT}/doctor/{}", std::process::id()));
        let body = format!("parender doctor {}", crate::cache::store::now_unix());
        let t = std::time::Instant::now();
        let round_trip = async {
            self.store
                .put(&path, PutPayload::from(body.clone().into_bytes()))
                .await?;
            let back = self.store.get(&path).await?.bytes().await?;
            let _ = self.store.delete(&path).await;
            Ok::<_, object_store::Error>(back)
        };
        match tokio::time::timeout(Duration::from_secs(30), round_trip).await {
            Ok(Ok(back)) if back.as_ref() == body.as_bytes() => Ok(format!(
                "{} answers (write, read back, delete in {} ms)",
                self.url,
                t.elapsed().as_millis()
            )),
            Ok(Ok(_)) => Err((
                format!("{} returned other bytes than were written", self.url),
                "check the server (a proxy or a full disk?)".into(),
            )),
            Ok(Err(e)) => Err((
                format!("{}: {}", self.url, open::explain(&e)),
                open::fix(&e),
            )),
            Err(_) => Err((
                format!("{} did not answer within 30 s", self.url),
                "check the address and that the server is up".into(),
            )),
        }
    }
}

/// The counters in `<cache>/remote/stats.json` (zero when there are none).
pub fn load_stats(cache_dir: &Path) -> RemoteStats {
    read_stats(&remote_dir(cache_dir))
}

/// Where the remote's local state lives in the cache folder.
fn remote_dir(cache_dir: &Path) -> PathBuf {
    cache_dir.join("remote")
}

fn read_stats(remote_dir: &Path) -> RemoteStats {
    std::fs::read(remote_dir.join("stats.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
