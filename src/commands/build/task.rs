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
use crate::render::{RenderFailure, RenderJob, Rendered, Renderer};
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
}

/// How often a render is retried when its inputs keep changing under it.
const MAX_ATTEMPTS: usize = 3;

impl RenderTask {
    pub(super) async fn run(mut self) -> Done {
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
