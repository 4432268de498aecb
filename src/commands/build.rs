//! `parender build`: drives the pipeline once, one way:
//! discover → plan → render → mux → stitch → publish.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use std::process::ExitCode;

use clap::Args;

use crate::analyze::discover::{self, Discovery};
use crate::analyze::fingerprint::{Fingerprinter, Inputs, explain};
use crate::analyze::hashcache::HashCache;
use crate::analyze::toolchain::Toolchain;
use crate::cache::plan::{self, Action};
use crate::cache::store::{Entry, Extras, LocalStore, Lookup, Store, now_unix};
use crate::config::Quality;
use crate::error::Error;
use crate::ffmpeg::Ffmpeg;
use crate::media::publish;
use crate::messages::{Message, SceneStatus};
use crate::project::Project;
use crate::render::cli::ManimRenderer;
use crate::render::{RenderFailure, RenderJob, Rendered, Renderer};
use crate::report::{Finished, Reporter, Timer, user_traceback};
use crate::report::{MessageFormat, fail};
use crate::scene::{SceneError, SceneId};
use crate::settings::{BuildSettings, Overrides};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub overrides: Overrides,
    pub output: Option<PathBuf>,
    pub strict: bool,
    /// `SCENE...`: restrict the build to these scenes.
    pub scenes: Vec<String>,
    /// Set by `parender watch`: renders can be superseded by edits, and a
    /// failed scene keeps its last good render (or a placeholder card).
    pub watch: Option<Arc<WatchHooks>>,
}

/// How `watch` reaches into a running build.
#[derive(Debug, Default)]
pub struct WatchHooks {
    /// Renders in flight: scene id → (key, a token that cancels just it).
    pub inflight: std::sync::Mutex<std::collections::HashMap<String, (String, CancellationToken)>>,
    /// An edit arrived during this build: do not stitch, another build follows.
    pub superseded: std::sync::atomic::AtomicBool,
}

impl WatchHooks {
    pub fn is_superseded(&self) -> bool {
        self.superseded.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub success: bool,
    pub output: Option<PathBuf>,
    pub rendered: usize,
    pub cached: usize,
    pub failed: usize,
    /// Watch mode: an edit arrived meanwhile; nothing was stitched.
    pub superseded: bool,
}

/// The services a build uses; tests can swap the renderer.
pub struct Services {
    pub renderer: Arc<dyn Renderer>,
    pub ffmpeg: Ffmpeg,
    pub python: PathBuf,
}

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

/// Everything known before anything renders: the scenes, their inputs and
/// keys, and the store. Shared by `build` and `status`.
pub struct Prepared {
    pub settings: BuildSettings,
    pub discovery: Discovery,
    pub inputs: Vec<Inputs>,
    pub keys: Vec<String>,
    pub fingerprinter: Arc<Fingerprinter>,
    pub hashes: Arc<HashCache>,
    pub store: Arc<LocalStore>,
}

pub async fn prepare(
    project: &Project,
    overrides: &Overrides,
    python: &Path,
    cancel: &CancellationToken,
) -> Result<Prepared, Error> {
    let settings = BuildSettings::resolve(&project.config, overrides);
    let state = project.state_dir();
    let versions =
        crate::analyze::toolchain::versions(python, &state.join("toolchain.json"), cancel).await?;
    let hashes = Arc::new(HashCache::load(state.join("hashes.json")));
    let fingerprinter = Arc::new(Fingerprinter::new(
        project,
        settings.render.clone(),
        versions.clone(),
        hashes.clone(),
    ));
    let discovery = discover::discover(project, python, &versions, &fingerprinter, cancel).await?;
    let inputs = discovery
        .scenes
        .iter()
        .map(|s| fingerprinter.inputs(s))
        .collect::<Result<Vec<_>, _>>()?;
    let keys = inputs.iter().map(Inputs::key).collect();
    let store = Arc::new(LocalStore::open(state.join("cache"), hashes.clone()));
    Ok(Prepared {
        settings,
        discovery,
        inputs,
        keys,
        fingerprinter,
        hashes,
        store,
    })
}

impl Prepared {
    /// Whether scene `i` makes sound of its own (`add_sound`), as its latest
    /// render in this profile (else the other) shows; `None` before any.
    pub fn scene_sound(&self, i: usize) -> Option<bool> {
        let id = &self.discovery.scenes[i].id;
        let profile = self.settings.profile.name();
        [profile, "dev", "release"]
            .iter()
            .find_map(|prof| match self.store.latest(id, prof) {
                Ok(Lookup::Hit(e)) => Some(e.sound.is_some()),
                _ => None,
            })
    }
}

/// Says what a scene's audio is: `audio/a.wav`, `sound from the scene`,
/// both, or `(no audio)`.
pub fn describe_audio(audio: Option<&Path>, sound: Option<bool>) -> String {
    match (audio, sound == Some(true)) {
        (Some(a), true) => format!("{} + sound from the scene", a.display()),
        (Some(a), false) => a.display().to_string(),
        (None, true) => "sound from the scene".into(),
        (None, false) => "(no audio)".into(),
    }
}

/// Why scene `i` needs rendering: the difference from its last render.
pub fn why_stale(p: &Prepared, i: usize, corrupt: Option<&str>) -> Vec<String> {
    if let Some(c) = corrupt {
        return vec![format!("cache entry corrupt ({c})")];
    }
    let scene = &p.discovery.scenes[i];
    // The last render in this profile, else in the other one (so switching
    // to --release says "quality changed low -> high", not "never built").
    let profile = p.settings.profile.name();
    let prev =
        [profile, "dev", "release"]
            .iter()
            .find_map(|prof| match p.store.latest(&scene.id, prof) {
                Ok(Lookup::Hit(e)) => e.inputs,
                _ => None,
            });
    if prev.is_none()
        && let Some(last) = [profile, "dev", "release"]
            .iter()
            .find_map(|prof| p.store.latest_key(&scene.id, prof))
    {
        return vec![if last == p.keys[i] {
            "evicted from the cache (`cache gc`); its inputs did not change".into()
        } else {
            "its last render was evicted from the cache (`cache gc`), so what changed is unknown"
                .into()
        }];
    }
    let why = explain(prev.as_ref(), &p.inputs[i]);
    if why.is_empty() {
        // Same inputs as the last render, but that is not in the cache
        // (evicted by `cache gc`, or rendered in another profile's folder).
        vec!["not in the cache".into()]
    } else {
        why
    }
}

/// The result of one scene's render task.
enum Done {
    Rendered(Entry, f64),
    /// Another parender process rendered it while this one waited.
    CachedMeanwhile(Entry),
    /// Watch mode: its inputs changed during the render, which was stopped.
    Superseded,
    Failed(SceneError, String, f64),
}

/// One scene's render, run on its own task: lock, render, check that the
/// inputs did not change meanwhile, store, report.
struct RenderTask {
    job: RenderJob,
    inputs: Inputs,
    why: Vec<String>,
    profile: String,
    renderer: Arc<dyn Renderer>,
    store: Arc<LocalStore>,
    fingerprinter: Arc<Fingerprinter>,
    ffmpeg: Ffmpeg,
    reporter: Arc<Reporter>,
    /// Cancels this render alone (a child of `stop`).
    cancel: CancellationToken,
    /// The whole build's stop (Ctrl-C).
    stop: CancellationToken,
    watch: Option<Arc<WatchHooks>>,
}

/// How often a render is retried when its inputs keep changing under it.
const MAX_ATTEMPTS: usize = 3;

impl RenderTask {
    async fn run(mut self) -> Done {
        let id = self.job.scene.id.0.clone();
        let (store, scene, profile) = (
            self.store.clone(),
            self.job.scene.id.clone(),
            self.profile.clone(),
        );
        let lock = tokio::task::spawn_blocking(move || store.lock_scene(&scene, &profile)).await;
        let _lock = match lock {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                return self.finish(
                    &id,
                    Done::Failed(SceneError::plain(e.to_string()), String::new(), 0.0),
                );
            }
            Err(e) => {
                return self.finish(
                    &id,
                    Done::Failed(SceneError::plain(e.to_string()), String::new(), 0.0),
                );
            }
        };
        if self.cancel.is_cancelled() {
            return Done::Failed(SceneError::plain("cancelled"), String::new(), 0.0);
        }
        // Another process may have rendered it while we waited for the lock.
        if let Ok(Lookup::Hit(e)) = self.store.get(&self.job.key) {
            return self.finish(&id, Done::CachedMeanwhile(*e));
        }
        if let Some(w) = &self.watch
            && let Ok(mut m) = w.inflight.lock()
        {
            m.insert(id.clone(), (self.job.key.clone(), self.cancel.clone()));
        }
        self.reporter.scene_started(&id, &self.why);
        let t = Timer::start();
        let mut attempt = 0;
        let done = loop {
            attempt += 1;
            let progress = |n: u32| self.reporter.scene_progress(&id, n);
            let result = self
                .renderer
                .render(&self.job, &progress, &self.cancel)
                .await;
            let secs = t.secs();
            match result {
                Ok(out) => {
                    // An input edited during the render must not be stored
                    // under the new content's key: hash again and compare.
                    self.fingerprinter.refresh(&self.inputs);
                    let now = match self.fingerprinter.inputs(&self.job.scene) {
                        Ok(i) => i,
                        Err(e) => {
                            break Done::Failed(
                                SceneError::plain(e.to_string()),
                                String::new(),
                                secs,
                            );
                        }
                    };
                    if now != self.inputs {
                        if attempt < MAX_ATTEMPTS {
                            self.reporter.warning(&format!(
                                "{id}: its inputs changed during the render ({}); rendering it again",
                                explain(Some(&self.inputs), &now).join(", ")
                            ));
                            self.job.key = now.key();
                            self.inputs = now;
                            continue;
                        }
                        break Done::Failed(
                            SceneError::plain(
                                "its inputs kept changing while it rendered; try again when the edits settle",
                            ),
                            String::new(),
                            secs,
                        );
                    }
                    match self.store_render(out, secs).await {
                        Ok(e) => break Done::Rendered(e, secs),
                        Err(e) => {
                            break Done::Failed(
                                SceneError::plain(e.to_string()),
                                String::new(),
                                secs,
                            );
                        }
                    }
                }
                Err(f) => {
                    let detail = match &f {
                        RenderFailure::Failed {
                            traceback,
                            log_tail,
                            ..
                        } if traceback.is_empty() => log_tail.clone(),
                        RenderFailure::Failed { traceback, .. } => {
                            user_traceback(traceback, &self.job.project_root)
                        }
                        _ => String::new(),
                    };
                    if matches!(f, RenderFailure::Cancelled) && !self.stop.is_cancelled() {
                        break Done::Superseded;
                    }
                    if !matches!(f, RenderFailure::Cancelled) {
                        let _ = self.store.record_failure(
                            &self.job.key,
                            &self.job.scene.id,
                            Some(&f.error()),
                        );
                    }
                    break Done::Failed(f.error(), detail, secs);
                }
            }
        };
        if let Some(w) = &self.watch
            && let Ok(mut m) = w.inflight.lock()
        {
            m.remove(&id);
        }
        self.finish(&id, done)
    }

    fn finish(&self, id: &str, done: Done) -> Done {
        let report =
            |status, seconds, error: Option<&SceneError>, detail: Option<&str>, why: &[String]| {
                self.reporter.scene_finished(&Finished {
                    scene: id,
                    status,
                    seconds,
                    error,
                    detail,
                    why,
                })
            };
        match &done {
            Done::Rendered(_, s) => report(SceneStatus::Rendered, *s, None, None, &self.why),
            Done::CachedMeanwhile(_) => report(
                SceneStatus::Cached,
                0.0,
                None,
                None,
                &["rendered by another parender process meanwhile".to_string()],
            ),
            Done::Failed(e, d, s) if !self.cancel.is_cancelled() => {
                report(SceneStatus::Failed, *s, Some(e), Some(d), &self.why)
            }
            Done::Failed(..) => {}
            Done::Superseded => self
                .reporter
                .warning(&format!("{id} changed during its render; it renders again")),
        }
        done
    }

    /// Stores a render: its video stream alone (a stream copy, so the frames
    /// stay Manim's), the scene's own sound and its subtitles.
    async fn store_render(&self, out: Rendered, secs: f64) -> Result<Entry, Error> {
        let ff = &self.ffmpeg;
        let info = ff.probe_video(&out.video).await?;
        let work = tempfile::Builder::new()
            .prefix(".store-")
            .tempdir_in(&self.job.media_dir)
            .map_err(|e| Error::io(&self.job.media_dir, e))?;
        let (mut video, mut sound) = (out.video.clone(), None);
        if ff.has_audio(&out.video).await? {
            sound = match out.sound {
                Some(wav) => Some(wav),
                // A Manim that keeps no WAV: the AAC copy, decoded.
                None => {
                    let wav = work.path().join("sound.wav");
                    ff.extract_audio(&out.video, &wav).await?;
                    Some(wav)
                }
            };
            video = work.path().join("video.mp4");
            ff.video_only(&out.video, &info, &video).await?;
            let got = ff.probe_video(&video).await?;
            if got != info {
                return Err(Error::Incompatible(format!(
                    "the video stream of {} changed when its sound was split off ({got:?} != {info:?})",
                    out.video.display()
                )));
            }
        }
        let entry = Entry {
            key: self.job.key.clone(),
            scene: self.job.scene.id.clone(),
            profile: self.profile.clone(),
            video_hash: String::new(),
            duration: info.seconds(),
            info,
            render_seconds: secs,
            created: now_unix(),
            log_tail: out.log_tail.clone(),
            inputs: Some(self.inputs.clone()),
            sound: None,
            subtitles: None,
            video: PathBuf::new(),
            sound_file: None,
            subtitles_file: None,
        };
        let extras = Extras {
            sound: sound.as_deref(),
            subtitles: out.subtitles.as_deref(),
        };
        self.store.put(entry, &video, extras)
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

/// `5 scenes`, or `2 of 5 scenes` in a `SCENE...` build.
fn count_scenes(built: usize, all: usize) -> String {
    let plural = if all == 1 { "" } else { "s" };
    if built == all {
        format!("{all} scene{plural}")
    } else {
        format!("{built} of {all} scene{plural}")
    }
}

/// Per-build counts, kept for `parender cache stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BuildStats {
    pub rendered: usize,
    pub cached: usize,
    pub failed: usize,
    pub when: u64,
}

pub fn stats_path(project: &Project) -> PathBuf {
    project.state_dir().join("stats.json")
}

fn record_stats(project: &Project, s: BuildStats) {
    let path = stats_path(project);
    let mut all: Vec<BuildStats> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    all.push(s);
    let keep = all.len().saturating_sub(50);
    all.drain(..keep);
    if let Ok(bytes) = serde_json::to_vec(&all) {
        let _ = crate::fsutil::write_atomic(&path, &bytes);
    }
}

pub async fn build(
    project: &Project,
    opts: &BuildOptions,
    services: &Services,
    reporter: &Arc<Reporter>,
    cancel: &CancellationToken,
) -> Result<BuildOutcome, Error> {
    let timer = Timer::start();
    let p = prepare(project, &opts.overrides, &services.python, cancel).await?;
    let settings = &p.settings;
    let scenes = &p.discovery.scenes;
    let broken = &p.discovery.broken;
    let versions = &p.discovery.versions;
    let mut warnings = p.discovery.warnings.clone();
    let selected = discover::select(scenes, &opts.scenes)?;
    // Scenes in files Python cannot load; they count as failed in full builds.
    let broken_scenes: usize = if opts.scenes.is_empty() {
        broken.iter().map(|b| b.classes.len().max(1)).sum()
    } else {
        0
    };

    let output = output_path(project, settings, opts.output.as_deref());
    check_output(project, &p, &output)?;

    let state = project.state_dir();
    let tmp_root = state.join("tmp");
    // A read-only project (or cache folder) can still run a build that has
    // nothing to render: its scratch folder goes to the system's temp folder.
    let mut read_only = None;
    match std::fs::create_dir_all(&tmp_root) {
        Ok(()) => {}
        Err(e) if cannot_write(&e) => read_only = Some(e),
        Err(e) => return Err(Error::io(&tmp_root, e)),
    }
    if read_only.is_none() {
        remove_abandoned_scratch(&tmp_root);
    }
    // Everything temporary lives here and is removed when this is dropped:
    // on success, on error and on Ctrl-C alike.
    let scratch = match read_only {
        None => match tempfile::Builder::new()
            .prefix("build-")
            .tempdir_in(&tmp_root)
        {
            Ok(d) => d,
            Err(e) if cannot_write(&e) => {
                read_only = Some(e);
                tempfile::Builder::new()
                    .prefix("parender-build-")
                    .tempdir()
                    .map_err(|e| Error::io(&std::env::temp_dir(), e))?
            }
            Err(e) => return Err(Error::io(&tmp_root, e)),
        },
        Some(_) => tempfile::Builder::new()
            .prefix("parender-build-")
            .tempdir()
            .map_err(|e| Error::io(&std::env::temp_dir(), e))?,
    };
    // Held while this build runs: a later build removes scratch folders
    // whose lock is free (left by a build that was killed).
    let _scratch_lock = {
        let path = scratch.path().join(".lock");
        let f = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        f.lock().map_err(|e| Error::io(&path, e))?;
        f
    };

    let steps = plan::plan(
        scenes,
        &selected,
        &p.keys,
        settings.profile.name(),
        p.store.as_ref(),
        &mut warnings,
    )?;
    for w in &warnings {
        reporter.warning(w);
    }

    let n_selected = selected.iter().filter(|s| **s).count();
    // Counted the same way in the header, the JSON and the summary: a file
    // Python cannot load counts once per class in it.
    let n_all = scenes.len() + broken_scenes;
    let n_built = n_selected + broken_scenes;
    let r = &settings.render;
    reporter.emit(&Message::BuildStarted {
        project: project.root.display().to_string(),
        profile: settings.profile.name().into(),
        quality: r.quality.name().into(),
        width: r.width,
        height: r.height,
        fps: r.fps,
        jobs: settings.jobs,
        scenes: n_all,
        selected: n_built,
    });
    reporter.status(
        "Building",
        &format!(
            "{} [{} {}x{} @{} fps] {}, {} job{} (manim {}, python {})",
            settings.profile.name(),
            r.quality,
            r.width,
            r.height,
            r.fps,
            count_scenes(n_built, n_all),
            settings.jobs,
            if settings.jobs == 1 { "" } else { "s" },
            versions.manim,
            versions.python
        ),
    );

    // Failures, with the scene's file and position for the summary's order.
    let mut failed: Vec<(String, usize, String, SceneError)> = Vec::new();
    // A file Python cannot load fails every scene in it.
    if opts.scenes.is_empty() {
        for b in broken {
            let detail = user_traceback(&b.traceback, &project.root);
            let classes = if b.classes.is_empty() {
                vec!["<module>".to_string()]
            } else {
                b.classes.clone()
            };
            for (n, class) in classes.iter().enumerate() {
                let id = SceneId::new(&b.file, class);
                reporter.scene_finished(&Finished {
                    scene: id.as_str(),
                    status: SceneStatus::Failed,
                    seconds: 0.0,
                    error: Some(&b.error),
                    detail: Some(&detail),
                    why: &[format!("{} cannot be loaded", b.file)],
                });
                let short = b.file.rsplit('/').next().unwrap_or(&b.file);
                failed.push((
                    b.file.clone(),
                    n,
                    format!("{short}:{class}"),
                    b.error.clone(),
                ));
            }
        }
    }

    let mut cached = 0;
    for s in &steps {
        if let Action::Fresh(_) = s.action {
            reporter.scene_finished(&Finished {
                scene: scenes[s.index].id.as_str(),
                status: SceneStatus::Cached,
                seconds: 0.0,
                error: None,
                detail: None,
                why: &std::iter::once("reused: no input changed".to_string())
                    .chain(p.inputs[s.index].notes.iter().cloned())
                    .collect::<Vec<_>>(),
            });
            cached += 1;
        }
    }

    let to_render: Vec<(usize, Option<String>)> = steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Render { corrupt } => Some((s.index, corrupt.clone())),
            _ => None,
        })
        .collect();
    if let Some(e) = &read_only
        && !to_render.is_empty()
    {
        return Err(Error::Fs {
            message: format!(
                "cannot render {}: parender's cache folder {} is not writable ({e})",
                count_scenes(to_render.len(), to_render.len()),
                state.display()
            ),
            help: "set PARENDER_CACHE_DIR to a writable folder (for example `PARENDER_CACHE_DIR=/tmp/my-talk-cache parender build`), or make the project writable".into(),
        });
    }
    reporter.start_progress(to_render.len());
    let semaphore = Arc::new(Semaphore::new(settings.jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, corrupt) in to_render {
        let media = state
            .join("media")
            .join(settings.profile.name())
            .join(&blake3::hash(scenes[i].id.0.as_bytes()).to_hex()[..16]);
        let task = RenderTask {
            job: RenderJob {
                scene: scenes[i].clone(),
                settings: settings.render.clone(),
                project_root: project.root.clone(),
                media_dir: media,
                key: p.keys[i].clone(),
            },
            inputs: p.inputs[i].clone(),
            why: why_stale(&p, i, corrupt.as_deref()),
            profile: settings.profile.name().to_string(),
            renderer: services.renderer.clone(),
            store: p.store.clone(),
            fingerprinter: p.fingerprinter.clone(),
            ffmpeg: services.ffmpeg.clone(),
            reporter: reporter.clone(),
            cancel: cancel.child_token(),
            stop: cancel.clone(),
            watch: opts.watch.clone(),
        };
        let semaphore = semaphore.clone();
        tasks.spawn(async move {
            let done = match semaphore.acquire_owned().await {
                Ok(_permit) if !task.cancel.is_cancelled() => task.run().await,
                _ => Done::Failed(SceneError::plain("cancelled"), String::new(), 0.0),
            };
            (i, done)
        });
    }

    let mut entries: Vec<Option<Entry>> = vec![None; scenes.len()];
    // Watch mode: failed scenes, to be shown by their last good render or a card.
    let mut stand_ins: Vec<(usize, SceneError)> = Vec::new();
    let mut rendered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, done) = joined.map_err(|e| Error::Other(format!("a render task failed: {e}")))?;
        match done {
            Done::Rendered(e, _) => {
                entries[i] = Some(e);
                rendered += 1;
            }
            Done::CachedMeanwhile(e) => {
                entries[i] = Some(e);
                cached += 1;
            }
            Done::Superseded => {}
            Done::Failed(e, _, _) => {
                if opts.watch.is_some() {
                    stand_ins.push((i, e.clone()));
                }
                failed.push((
                    scenes[i].file.clone(),
                    scenes[i].line.unwrap_or(0) as usize,
                    scenes[i].short_name(),
                    e,
                ))
            }
        }
    }
    reporter.finish_progress();
    if cancel.is_cancelled() {
        p.hashes.save();
        return Err(Error::Interrupted);
    }
    for s in steps {
        match s.action {
            Action::Fresh(e) | Action::Reuse { entry: e, .. } => entries[s.index] = Some(e),
            Action::Render { .. } | Action::Missing => {}
        }
    }
    let superseded = opts.watch.as_ref().is_some_and(|w| w.is_superseded());
    if superseded {
        p.hashes.save();
        reporter.emit(&Message::BuildFinished {
            success: false,
            output: None,
            rendered,
            cached,
            failed: failed.len(),
            seconds: (timer.secs() * 1000.0).round() / 1000.0,
            duration: None,
            superseded: true,
            subtitles: None,
            chapters: None,
        });
        return Ok(BuildOutcome {
            success: false,
            output: None,
            rendered,
            cached,
            failed: failed.len(),
            superseded: true,
        });
    }
    // Watch mode keeps the video's timing while the user fixes a scene: its
    // last good render, else a card naming the scene and its error.
    for (i, error) in stand_ins {
        let scene = &scenes[i];
        if let Ok(Lookup::Hit(e)) = p.store.latest(&scene.id, settings.profile.name()) {
            reporter.warning(&format!(
                "{} failed; the video keeps its last good render (stale)",
                scene.id
            ));
            entries[i] = Some(*e);
            continue;
        }
        let like = entries.iter().flatten().next().map(|e| e.info.clone());
        match crate::media::placeholder::card(
            &services.ffmpeg,
            scene,
            &error,
            settings,
            like.as_ref(),
            &p.hashes,
            &state.join("placeholders"),
        )
        .await
        {
            Ok(e) => {
                reporter.warning(&format!(
                    "{} failed and has never rendered; the video shows a placeholder card",
                    scene.id
                ));
                entries[i] = Some(e);
            }
            Err(e) => reporter.warning(&format!("no placeholder for {}: {e}", scene.id)),
        }
    }

    let total = n_built;
    let ok = rendered + cached;
    let mut written = None;
    let mut published = None;
    let available: Vec<(&crate::scene::Scene, Entry)> = entries
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|e| (&scenes[i], e)))
        .collect();
    if opts.strict && !failed.is_empty() {
        reporter.warning("--strict: a scene failed, so no final video was written");
    } else if available.is_empty() {
        reporter.warning("no scene rendered, so no final video was written");
    } else {
        let job = publish::Publish {
            ffmpeg: &services.ffmpeg,
            hashes: &p.hashes,
            state: &state,
            mux_cache: p.store.dir().join("mux"),
            work: &scratch.path().join("stitch"),
            output: &output,
            gap: project.config.gap.map(|g| g.0.as_secs_f64()).unwrap_or(0.0),
            subtitles: project.config.output.0.subtitles,
            jobs: settings.jobs,
            root: &project.root,
        };
        let done = publish::publish(&job, &available, reporter, cancel).await;
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        published = Some(done?);
        written = Some(output.clone());
    }
    let duration = published.as_ref().map(|o| o.seconds);
    p.hashes.save();
    record_stats(
        project,
        BuildStats {
            rendered,
            cached,
            failed: failed.len(),
            when: now_unix(),
        },
    );

    let success = failed.is_empty() && written.is_some();
    reporter.emit(&Message::BuildFinished {
        success,
        output: written.as_ref().map(|p| p.display().to_string()),
        rendered,
        cached,
        failed: failed.len(),
        seconds: (timer.secs() * 1000.0).round() / 1000.0,
        duration: duration.map(|d| (d * 1000.0).round() / 1000.0),
        superseded: false,
        subtitles: published
            .as_ref()
            .and_then(|o| o.subtitles.as_ref())
            .map(|p| p.display().to_string()),
        chapters: published
            .as_ref()
            .and_then(|o| o.chapters.as_ref())
            .map(|p| p.display().to_string()),
    });
    if !reporter.is_json() {
        if let (Some(p), Some(d)) = (&written, duration) {
            reporter.status(
                "Finished",
                &format!(
                    "{} ({d:.2} s of video) in {:.2}s",
                    project.relative(p),
                    timer.secs()
                ),
            );
        }
        if !failed.is_empty() {
            failed.sort_by(|a, b| crate::fsutil::natural_path_cmp(&a.0, &b.0).then(a.1.cmp(&b.1)));
            let list = failed
                .iter()
                .map(|(_, _, n, e)| format!("{n} failed ({})", e.summary()))
                .collect::<Vec<_>>()
                .join("; ");
            reporter.err(&format!("{ok}/{total} scenes rendered; {list}"));
        }
    }
    Ok(BuildOutcome {
        success,
        output: written,
        rendered,
        cached,
        failed: failed.len(),
        superseded: false,
    })
}

/// Which project, profile and parallelism: shared by `build` and `watch`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Project folder (default: the nearest folder upward with parender.toml)
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Build the release profile (default quality high: 1920x1080 at 60 fps)
    #[arg(long)]
    pub release: bool,
    /// Manim quality, overriding the profile: l m h p k or low medium high production fourk
    #[arg(long, short = 'q', value_name = "Q", value_parser = parse_quality)]
    pub quality: Option<Quality>,
    /// Renders at once (default: profile's `jobs`, else the number of CPUs)
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::config::MAX_JOBS as i64))]
    pub jobs: Option<u32>,
}

impl ProfileArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            release: self.release,
            quality: self.quality,
            jobs: self.jobs.map(|j| j as usize),
        }
    }
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Write the final video here instead of out/<profile>/<name>.mp4
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write no final video when any scene failed
    #[arg(long)]
    pub strict: bool,
    /// Say why each scene was rendered (what changed) or reused
    #[arg(long)]
    pub explain: bool,
    /// Output format for messages
    #[arg(long, value_enum, default_value = "human", value_name = "FMT")]
    pub message_format: MessageFormat,
    /// Build only these scenes (`file.py`, `file.py:Class` or `Class`); the
    /// video still includes every other scene's last render
    #[arg(value_name = "SCENE")]
    pub scenes: Vec<String>,
}

pub(crate) fn parse_quality(s: &str) -> Result<Quality, String> {
    s.parse().map_err(|_| {
        format!(
            "expected one of {}",
            crate::config::QUALITY_NAMES.join(", ")
        )
    })
}

/// `parender build`.
pub async fn run(args: BuildArgs, cancel: CancellationToken) -> ExitCode {
    let mut reporter = Reporter::new(args.message_format);
    reporter.explain = args.explain;
    let reporter = Arc::new(reporter);
    let project = match Project::open(args.profile.project.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(&reporter, e),
    };
    let services = match services(&project) {
        Ok(s) => s,
        Err(e) => return fail(&reporter, e),
    };
    let opts = BuildOptions {
        overrides: args.profile.overrides(),
        output: args.output,
        strict: args.strict,
        scenes: args.scenes,
        watch: None,
    };
    match build(&project, &opts, &services, &reporter, &cancel).await {
        Ok(outcome) if outcome.success => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => fail(&reporter, e),
    }
}

/// The real renderer and tools for a project (or, with
/// `PARENDER_FAKE_RENDERER=1`, a fast stand-in for Manim, for tests of the
/// cache and the pipeline around it; documented in the README).
pub fn services(project: &Project) -> Result<Services, Error> {
    let tools = Toolchain::resolve(project)?;
    let ffmpeg = Ffmpeg {
        ffmpeg: tools.ffmpeg.clone(),
        ffprobe: tools.ffprobe.clone(),
    };
    let renderer: Arc<dyn crate::render::Renderer> =
        if std::env::var_os("PARENDER_FAKE_RENDERER").is_some_and(|v| v == "1") {
            Arc::new(crate::render::fake::FakeRenderer {
                ffmpeg: ffmpeg.clone(),
            })
        } else {
            Arc::new(ManimRenderer {
                python: tools.python.clone(),
            })
        };
    Ok(Services {
        renderer,
        ffmpeg,
        python: tools.python,
    })
}
