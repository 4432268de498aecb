//! `parender build`: drives the pipeline once, one way:
//! discover → plan → render → mux → stitch → publish.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::discover::{self, Discovery};
use crate::error::Error;
use crate::fingerprint::SharedInputs;
use crate::media::Ffmpeg;
use crate::messages::{Message, SceneStatus};
use crate::mux::{self, Segment};
use crate::plan::{self, Action};
use crate::project::Project;
use crate::render::{RenderFailure, RenderJob, Renderer};
use crate::report::{Reporter, Timer, user_traceback};
use crate::scene::{SceneError, SceneId};
use crate::settings::{BuildSettings, Overrides};
use crate::stitch;
use crate::store::{Entry, LocalStore, Store, now_unix};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub overrides: Overrides,
    pub output: Option<PathBuf>,
    pub strict: bool,
    /// `SCENE...`: restrict the build to these scenes.
    pub scenes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct BuildOutcome {
    pub success: bool,
    pub output: Option<PathBuf>,
    pub rendered: usize,
    pub cached: usize,
    pub failed: usize,
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

/// The result of one scene's render task.
enum Done {
    Rendered(Entry, f64),
    Failed(SceneError, String, f64),
}

/// One scene's render, run on its own task: render, probe, store, report.
struct RenderTask {
    job: RenderJob,
    key: String,
    profile: String,
    renderer: Arc<dyn Renderer>,
    store: Arc<dyn Store>,
    ffmpeg: Ffmpeg,
    reporter: Arc<Reporter>,
    cancel: CancellationToken,
}

impl RenderTask {
    async fn run(self) -> Done {
        let id = self.job.scene.id.0.clone();
        self.reporter.scene_started(&id);
        let t = Timer::start();
        let progress = |n: u32| self.reporter.scene_progress(&id, n);
        let result = self
            .renderer
            .render(&self.job, &progress, &self.cancel)
            .await;
        let secs = t.secs();
        let done = match result {
            Ok(out) => match self.store_render(&out.video, out.log_tail, secs).await {
                Ok(e) => Done::Rendered(e, secs),
                Err(e) => Done::Failed(SceneError::plain(e.to_string()), String::new(), secs),
            },
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
                Done::Failed(f.error(), detail, secs)
            }
        };
        // Free the render's media folder as soon as its video is stored.
        let _ = std::fs::remove_dir_all(&self.job.media_dir);
        match &done {
            Done::Rendered(_, s) => {
                self.reporter
                    .scene_finished(&id, SceneStatus::Rendered, *s, None, None)
            }
            Done::Failed(e, d, s) if !self.cancel.is_cancelled() => {
                self.reporter
                    .scene_finished(&id, SceneStatus::Failed, *s, Some(e), Some(d))
            }
            Done::Failed(..) => {}
        }
        done
    }

    async fn store_render(
        &self,
        video: &Path,
        log_tail: String,
        secs: f64,
    ) -> Result<Entry, Error> {
        let info = self.ffmpeg.probe_video(video).await?;
        let entry = Entry {
            key: self.key.clone(),
            scene: self.job.scene.id.clone(),
            profile: self.profile.clone(),
            video_hash: String::new(),
            info,
            render_seconds: secs,
            created: now_unix(),
            log_tail,
            video: PathBuf::new(),
        };
        self.store.put(entry, video)
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
    let settings = BuildSettings::resolve(&project.config, &opts.overrides);
    let Discovery {
        scenes,
        broken,
        versions,
        warnings,
    } = discover::discover(project, &services.python, cancel).await?;
    let mut warnings = warnings;
    let selected = discover::select(&scenes, &opts.scenes)?;
    // Scenes in files Python cannot load; they count as failed in full builds.
    let broken_scenes: usize = if opts.scenes.is_empty() {
        broken.iter().map(|b| b.classes.len().max(1)).sum()
    } else {
        0
    };

    let state = project.state_dir();
    let store: Arc<dyn Store> = Arc::new(LocalStore::open(state.join("cache")));
    let tmp_root = state.join("tmp");
    std::fs::create_dir_all(&tmp_root).map_err(|e| Error::io(&tmp_root, e))?;
    // Everything temporary lives here and is removed when this is dropped:
    // on success, on error and on Ctrl-C alike.
    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&tmp_root)
        .map_err(|e| Error::io(&tmp_root, e))?;

    let mut scene_files: Vec<String> = scenes.iter().map(|s| s.file.clone()).collect();
    scene_files.extend(broken.iter().map(|b| b.file.clone()));
    let shared = SharedInputs::collect(project, &scene_files, &settings.render, &versions)?;
    let keys = scenes
        .iter()
        .map(|s| shared.scene_key(project, s))
        .collect::<Result<Vec<_>, _>>()?;
    let steps = plan::plan(
        &scenes,
        &selected,
        &keys,
        settings.profile.name(),
        store.as_ref(),
        &mut warnings,
    )?;
    for w in &warnings {
        reporter.warning(w);
    }

    let n_selected = selected.iter().filter(|s| **s).count();
    let r = &settings.render;
    reporter.emit(&Message::BuildStarted {
        project: project.root.display().to_string(),
        profile: settings.profile.name().into(),
        quality: r.quality.name().into(),
        width: r.width,
        height: r.height,
        fps: r.fps,
        jobs: settings.jobs,
        scenes: scenes.len() + broken_scenes,
        selected: n_selected + broken_scenes,
    });
    reporter.status(
        "Building",
        &format!(
            "{} [{} {}x{} @{} fps] {} scene{}, {} job{} (manim {}, python {})",
            settings.profile.name(),
            r.quality,
            r.width,
            r.height,
            r.fps,
            scenes.len(),
            if scenes.len() == 1 { "" } else { "s" },
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
        for b in &broken {
            let detail = user_traceback(&b.traceback, &project.root);
            let classes = if b.classes.is_empty() {
                vec!["<module>".to_string()]
            } else {
                b.classes.clone()
            };
            for (n, class) in classes.iter().enumerate() {
                let id = SceneId::new(&b.file, class);
                reporter.scene_finished(
                    id.as_str(),
                    SceneStatus::Failed,
                    0.0,
                    Some(&b.error),
                    Some(&detail),
                );
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

    let to_render: Vec<usize> = steps
        .iter()
        .filter(|s| matches!(s.action, Action::Render))
        .map(|s| s.index)
        .collect();
    let mut cached = 0;
    for s in &steps {
        if let Action::Fresh(_) = s.action {
            reporter.scene_finished(
                scenes[s.index].id.as_str(),
                SceneStatus::Cached,
                0.0,
                None,
                None,
            );
            cached += 1;
        }
    }

    reporter.start_progress(to_render.len());
    let semaphore = Arc::new(Semaphore::new(settings.jobs));
    let mut tasks = tokio::task::JoinSet::new();
    for &i in &to_render {
        let task = RenderTask {
            job: RenderJob {
                scene: scenes[i].clone(),
                settings: settings.render.clone(),
                project_root: project.root.clone(),
                media_dir: scratch.path().join(format!("render-{i}")),
            },
            key: keys[i].clone(),
            profile: settings.profile.name().to_string(),
            renderer: services.renderer.clone(),
            store: store.clone(),
            ffmpeg: services.ffmpeg.clone(),
            reporter: reporter.clone(),
            cancel: cancel.clone(),
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
    let mut rendered = 0;
    while let Some(joined) = tasks.join_next().await {
        let (i, done) = joined.map_err(|e| Error::Other(format!("a render task failed: {e}")))?;
        match done {
            Done::Rendered(e, _) => {
                entries[i] = Some(e);
                rendered += 1;
            }
            Done::Failed(e, _, _) => failed.push((
                scenes[i].file.clone(),
                scenes[i].line.unwrap_or(0) as usize,
                scenes[i].short_name(),
                e,
            )),
        }
    }
    reporter.finish_progress();
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    for s in steps {
        match s.action {
            Action::Fresh(e) | Action::Reuse { entry: e, .. } => entries[s.index] = Some(e),
            Action::Render | Action::Missing => {}
        }
    }

    let total = scenes.len() + broken_scenes;
    let ok = rendered + cached;
    let output = output_path(project, &settings, opts.output.as_deref());
    let mut written = None;
    let mut duration = None;
    let available: Vec<(usize, Entry)> = entries
        .into_iter()
        .enumerate()
        .filter_map(|(i, e)| e.map(|e| (i, e)))
        .collect();
    if opts.strict && !failed.is_empty() {
        reporter.warning("--strict: a scene failed, so no final video was written");
    } else if available.is_empty() {
        reporter.warning("no scene rendered, so no final video was written");
    } else {
        reporter.status("Stitching", &format!("{} scenes", available.len()));
        let gap = project.config.gap.map(|g| g.0.as_secs_f64()).unwrap_or(0.0);
        let last = available.len() - 1;
        let work = scratch.path().join("mux");
        let ff = &services.ffmpeg;
        let segments: Vec<Result<Segment, Error>> =
            futures::stream::iter(available.iter().enumerate())
                .map(|(n, (i, e))| {
                    let scene = &scenes[*i];
                    let gap_frames = if n == last {
                        0
                    } else {
                        (gap * e.info.fps_num as f64 / e.info.fps_den as f64).round() as u64
                    };
                    let audio = scene.audio.as_ref().map(|a| project.root.join(a));
                    let work = work.join(n.to_string());
                    async move {
                        mux::mux(
                            ff,
                            &scene.id,
                            &e.video,
                            &e.info,
                            audio.as_deref(),
                            gap_frames,
                            &work,
                        )
                        .await
                    }
                })
                .buffered(settings.jobs)
                .collect()
                .await;
        let segments = segments.into_iter().collect::<Result<Vec<_>, _>>()?;
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let stitched =
            stitch::stitch(ff, &segments, &scratch.path().join("stitch"), &output).await?;
        duration = Some(stitched.seconds);
        written = Some(stitched.output);
    }

    let success = failed.is_empty() && written.is_some();
    let shown = written.as_ref().map(|p| {
        p.strip_prefix(&project.root)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| p.display().to_string())
    });
    reporter.emit(&Message::BuildFinished {
        success,
        output: written.as_ref().map(|p| p.display().to_string()),
        rendered,
        cached,
        failed: failed.len(),
        seconds: (timer.secs() * 1000.0).round() / 1000.0,
        duration: duration.map(|d| (d * 1000.0).round() / 1000.0),
    });
    if !reporter.is_json() {
        if let (Some(p), Some(d)) = (&shown, duration) {
            reporter.status(
                "Finished",
                &format!("{p} ({d:.2} s of video) in {:.1}s", timer.secs()),
            );
        }
        if !failed.is_empty() {
            failed.sort_by(|a, b| discover::natural_path_cmp(&a.0, &b.0).then(a.1.cmp(&b.1)));
            let list = failed
                .iter()
                .map(|(_, _, n, e)| format!("{n} failed ({})", e.summary()))
                .collect::<Vec<_>>()
                .join("; ");
            eprintln!("{ok}/{total} scenes rendered; {list}");
        }
    }
    Ok(BuildOutcome {
        success,
        output: written,
        rendered,
        cached,
        failed: failed.len(),
    })
}
