//! One scene's render task: lock, render, check that its inputs held
//! still, store, report.
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::WatchHooks;
use crate::analyze::fingerprint::{Fingerprinter, Inputs, explain};
use crate::cache::store::{Entry, Extras, LocalStore, Lookup, Store, now_unix};
use crate::error::Error;
use crate::ffmpeg::Ffmpeg;
use crate::messages::SceneStatus;
use crate::render::split;
use crate::render::steal::{self, Victim};
use crate::render::{Progress, RenderFailure, RenderJob, Rendered, Renderer};
use crate::report::{Finished, Reporter, Timer, user_traceback};
use crate::scene::SceneError;

/// The result of one scene's render task.
pub(crate) enum Done {
    Rendered(Entry, f64),
    /// Another parender process rendered it while this one waited.
    CachedMeanwhile(Entry),
    /// Watch mode: its inputs changed during the render, which was stopped.
    Superseded,
    Failed(SceneError, String, f64),
}

/// One scene's render, run on its own task: lock, render, check that the
/// inputs did not change meanwhile, store, report.
pub(super) struct RenderTask {
    pub job: RenderJob,
    pub inputs: Inputs,
    pub why: Vec<String>,
    pub profile: String,
    pub renderer: Arc<dyn Renderer>,
    pub store: Arc<LocalStore>,
    pub fingerprinter: Arc<Fingerprinter>,
    pub ffmpeg: Ffmpeg,
    pub reporter: Arc<Reporter>,
    /// Cancels this render alone (a child of `stop`).
    pub cancel: CancellationToken,
    /// The whole build's stop (Ctrl-C).
    pub stop: CancellationToken,
    pub watch: Option<Arc<WatchHooks>>,
    /// Render in up to this many pieces at once (1: whole).
    pub split: usize,
    /// Rendered whole, but a free job slot may take the rest of it.
    pub victim: Option<Arc<Victim>>,
}

/// How often a render is retried when its inputs keep changing under it.
const MAX_ATTEMPTS: usize = 3;

impl RenderTask {
    pub(super) async fn run(mut self) -> Done {
        let id = self.job.scene.id.0.clone();
        let _lock = match self.lock().await {
            Ok(l) => l,
            Err(e) => return self.finish(&id, Done::Failed(e, String::new(), 0.0)),
        };
        if self.cancel.is_cancelled() {
            return Done::Failed(SceneError::plain("cancelled"), String::new(), 0.0);
        }
        // Another process may have rendered it while we waited for the lock.
        if let Ok(Lookup::Hit(e)) = self.store.get(&self.job.key) {
            return self.finish(&id, Done::CachedMeanwhile(*e));
        }
        self.set_inflight(&id, true);
        self.reporter.scene_started(&id, &self.why);
        let done = self.render_until_inputs_hold(&id).await;
        self.set_inflight(&id, false);
        self.finish(&id, done)
    }

    /// The scene's lock in this profile: one render of a scene at a time,
    /// across processes.
    async fn lock(&self) -> Result<crate::cache::store::FileLock, SceneError> {
        let (store, scene, profile) = (
            self.store.clone(),
            self.job.scene.id.clone(),
            self.profile.clone(),
        );
        match tokio::task::spawn_blocking(move || store.lock_scene(&scene, &profile)).await {
            Ok(Ok(l)) => Ok(l),
            Ok(Err(e)) => Err(SceneError::plain(e.to_string())),
            Err(e) => Err(SceneError::plain(e.to_string())),
        }
    }

    /// Watch mode: lists the render as in flight, so an edit can cancel it.
    fn set_inflight(&self, id: &str, on: bool) {
        if let Some(w) = &self.watch
            && let Ok(mut m) = w.inflight.lock()
        {
            if on {
                m.insert(id.to_string(), (self.job.key.clone(), self.cancel.clone()));
            } else {
                m.remove(id);
            }
        }
    }

    /// Renders, then hashes the inputs again: an input edited during the
    /// render must not be stored under the new content's key. An edited
    /// scene renders again, up to [`MAX_ATTEMPTS`] times.
    async fn render_until_inputs_hold(&mut self, id: &str) -> Done {
        let t = Timer::start();
        for attempt in 1..=MAX_ATTEMPTS {
            let progress = |n: u32| self.reporter.scene_progress(id, n);
            let result = self.render_once(id, &progress).await;
            let secs = t.secs();
            let out = match result {
                Ok(out) => out,
                Err(f) => return self.failed(f, secs),
            };
            self.fingerprinter.refresh(&self.inputs);
            let now = match self.fingerprinter.inputs(&self.job.scene) {
                Ok(i) => i,
                Err(e) => {
                    return Done::Failed(SceneError::plain(e.to_string()), String::new(), secs);
                }
            };
            if now == self.inputs {
                return match self.store_render(out, secs).await {
                    Ok(e) => Done::Rendered(e, secs),
                    Err(e) => Done::Failed(SceneError::plain(e.to_string()), String::new(), secs),
                };
            }
            if attempt < MAX_ATTEMPTS {
                self.reporter.warning(&format!(
                    "{id}: its inputs changed during the render ({}); rendering it again",
                    explain(Some(&self.inputs), &now).join(", ")
                ));
                self.job.key = now.key();
                self.inputs = now;
            }
        }
        Done::Failed(
            SceneError::plain(
                "its inputs kept changing while it rendered; try again when the edits settle",
            ),
            String::new(),
            t.secs(),
        )
    }

    /// One render: whole, or split into animation ranges rendered at once
    /// when `split` asks for pieces and a dry run finds places where that
    /// is frame-exact.
    async fn render_once(
        &self,
        id: &str,
        progress: Progress<'_>,
    ) -> Result<Rendered, RenderFailure> {
        let r = self.renderer.as_ref();
        if let Some(v) = self.victim.as_ref().filter(|v| v.running())
            && self.split < 2
        {
            v.begin();
            let tracked = |n: u32| {
                v.progress(n);
                progress(n)
            };
            let out = r.render(v.job(), &tracked, &self.cancel).await;
            return steal::settle(v, out, r, &self.ffmpeg, progress).await;
        }
        if self.split < 2 {
            return r.render(&self.job, progress, &self.cancel).await;
        }
        let splits = match split::analyze(r, &self.job, &self.cancel).await {
            Ok(a) => {
                let at = split::split_point(&a, self.split);
                if let Some(why) = &a.unsafe_reason {
                    tracing::debug!("{id} renders whole: {why}");
                }
                at
            }
            Err(RenderFailure::Cancelled) => return Err(RenderFailure::Cancelled),
            // The whole render reports the scene's own errors.
            Err(_) => Vec::new(),
        };
        if !splits.is_empty() {
            let pieces = splits.len() + 1;
            self.reporter.status(
                "Splitting",
                &format!("{id} into {pieces} pieces (before animations {splits:?})"),
            );
        }
        split::render_split(r, &self.job, &splits, &self.ffmpeg, progress, &self.cancel).await
    }

    /// A failed render: the error and what to show below it (the user's
    /// frames of the traceback, else Manim's log), recorded for `status`.
    /// A render cancelled by an edit (not by Ctrl-C) was superseded.
    fn failed(&self, f: RenderFailure, secs: f64) -> Done {
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
        if matches!(f, RenderFailure::Cancelled) {
            if !self.stop.is_cancelled() {
                return Done::Superseded;
            }
        } else {
            let _ = self
                .store
                .record_failure(&self.job.key, &self.job.scene.id, Some(&f.error()));
        }
        Done::Failed(f.error(), detail, secs)
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
        let (info, has_audio) = match out.probed.clone() {
            Some(p) => p,
            None => ff.probe_render(&out.video).await?,
        };
        let work = tempfile::Builder::new()
            .prefix(".store-")
            .tempdir_in(&self.job.media_dir)
            .map_err(|e| Error::io(&self.job.media_dir, e))?;
        let (mut video, mut sound) = (out.video.clone(), None);
        if has_audio {
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
