//! What a build tells people and scripts: its header, the scenes that
//! need no work, the closing summary, and the counts `cache stats` shows.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::prepare::Prepared;
use super::schedule::RenderTimings;
use super::{BuildOutcome, Tally};
use crate::cache::plan::{Action, Step};
use crate::cache::store::now_unix;
use crate::media::publish;
use crate::messages::{CriticalStep, Message, SceneStatus, Timings as TimingsMessage};
use crate::project::Project;
use crate::report::{Finished, Reporter, Timer, user_traceback};
use crate::scene::SceneId;

/// How many scenes a build covers, counted the same way in the header, the
/// JSON and the summary: a file Python cannot load counts once per class.
pub(super) struct Counts {
    pub all: usize,
    pub built: usize,
}

impl Counts {
    pub(super) fn new(p: &Prepared, selected: &[bool], full_build: bool) -> Counts {
        // Scenes in files Python cannot load count as failed in full builds.
        let broken: usize = if full_build {
            p.discovery
                .broken
                .iter()
                .map(|b| b.classes.len().max(1))
                .sum()
        } else {
            0
        };
        Counts {
            all: p.discovery.scenes.len() + broken,
            built: selected.iter().filter(|s| **s).count() + broken,
        }
    }
}

/// Where the time went.
pub(super) struct Timings {
    pub prepare: f64,
    pub renders: RenderTimings,
    pub publish: f64,
}

impl Timings {
    fn message(&self) -> TimingsMessage {
        let round = |s: f64| (s * 1000.0).round() / 1000.0;
        let mut path = vec![CriticalStep {
            step: "prepare (discover, fingerprint, plan)".into(),
            seconds: round(self.prepare),
        }];
        if let Some(last) = &self.renders.last {
            if last.waited > 0.0005 {
                path.push(CriticalStep {
                    step: "wait for a job slot".into(),
                    seconds: round(last.waited),
                });
            }
            path.push(CriticalStep {
                step: format!("render {}", last.scene),
                seconds: round(last.seconds),
            });
        }
        path.push(CriticalStep {
            step: "publish (mux, stitch)".into(),
            seconds: round(self.publish),
        });
        TimingsMessage {
            prepare: round(self.prepare),
            render: round(self.renders.wall),
            publish: round(self.publish),
            critical_path: path,
        }
    }
}

/// `5 scenes`, or `2 of 5 scenes` in a `SCENE...` build.
pub(super) fn count_scenes(built: usize, all: usize) -> String {
    let plural = if all == 1 { "" } else { "s" };
    if built == all {
        format!("{all} scene{plural}")
    } else {
        format!("{built} of {all} scene{plural}")
    }
}

/// The build-started message and the `Building ...` line.
pub(super) fn announce(project: &Project, p: &Prepared, counts: &Counts, reporter: &Reporter) {
    let settings = &p.settings;
    let versions = &p.discovery.versions;
    let r = &settings.render;
    reporter.emit(&Message::BuildStarted {
        project: project.root.display().to_string(),
        profile: settings.profile.name().into(),
        quality: r.quality.name().into(),
        width: r.width,
        height: r.height,
        fps: r.fps,
        jobs: settings.jobs,
        scenes: counts.all,
        selected: counts.built,
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
            count_scenes(counts.built, counts.all),
            settings.jobs,
            if settings.jobs == 1 { "" } else { "s" },
            versions.manim,
            versions.python
        ),
    );
}

/// A file Python cannot load fails every scene in it.
pub(super) fn report_broken(
    project: &Project,
    p: &Prepared,
    reporter: &Reporter,
    tally: &mut Tally,
) {
    for b in &p.discovery.broken {
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
            tally.fail(
                b.file.clone(),
                n,
                format!("{short}:{class}"),
                b.error.clone(),
            );
        }
    }
}

/// Reports the scenes whose render is in the cache; returns how many.
pub(super) fn report_fresh(
    p: &Prepared,
    steps: &[Step],
    from_remote: &[usize],
    reporter: &Reporter,
) -> usize {
    let mut cached = 0;
    for s in steps {
        if let Action::Fresh(_) = s.action {
            let why = if from_remote.binary_search(&s.index).is_ok() {
                "from the remote cache: rendered elsewhere from the same inputs"
            } else {
                "reused: no input changed"
            };
            reporter.scene_finished(&Finished {
                scene: p.discovery.scenes[s.index].id.as_str(),
                status: SceneStatus::Cached,
                seconds: 0.0,
                error: None,
                detail: None,
                why: &std::iter::once(why.to_string())
                    .chain(p.inputs[s.index].notes.iter().cloned())
                    .collect::<Vec<_>>(),
            });
            cached += 1;
        }
    }
    cached
}

/// Watch mode: an edit arrived during the build; nothing is stitched.
pub(super) fn superseded(tally: &Tally, timer: &Timer, reporter: &Reporter) -> BuildOutcome {
    reporter.emit(&Message::BuildFinished {
        success: false,
        output: None,
        rendered: tally.rendered,
        cached: tally.cached,
        failed: tally.failed.len(),
        seconds: (timer.secs() * 1000.0).round() / 1000.0,
        duration: None,
        superseded: true,
        subtitles: None,
        chapters: None,
        timings: None,
    });
    BuildOutcome {
        success: false,
        output: None,
        rendered: tally.rendered,
        cached: tally.cached,
        failed: tally.failed.len(),
        superseded: true,
        published: None,
    }
}

/// The build-finished message and the closing lines.
pub(super) fn finish(
    project: &Project,
    counts: &Counts,
    mut tally: Tally,
    published: Option<(PathBuf, publish::Outcome)>,
    timings: Timings,
    timer: &Timer,
    reporter: &Reporter,
) -> BuildOutcome {
    let success = tally.failed.is_empty() && published.is_some();
    let duration = published.as_ref().map(|(_, o)| o.seconds);
    let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let timings = timings.message();
    reporter.emit(&Message::BuildFinished {
        success,
        output: published.as_ref().map(|(p, _)| p.display().to_string()),
        rendered: tally.rendered,
        cached: tally.cached,
        failed: tally.failed.len(),
        seconds: (timer.secs() * 1000.0).round() / 1000.0,
        duration: duration.map(|d| (d * 1000.0).round() / 1000.0),
        superseded: false,
        subtitles: published.as_ref().and_then(|(_, o)| shown(&o.subtitles)),
        chapters: published.as_ref().and_then(|(_, o)| shown(&o.chapters)),
        timings: Some(timings.clone()),
    });
    if !reporter.is_json() {
        if reporter.explain {
            explain_timings(&timings, reporter);
        }
        if let Some(((p, _), d)) = published.as_ref().zip(duration) {
            reporter.status(
                "Finished",
                &format!(
                    "{} ({d:.2} s of video) in {:.2}s",
                    project.relative(p),
                    timer.secs()
                ),
            );
        }
        if !tally.failed.is_empty() {
            tally.failed.sort_by(|a, b| {
                crate::fsutil::natural_path_cmp(&a.file, &b.file).then(a.order.cmp(&b.order))
            });
            let list = tally
                .failed
                .iter()
                .map(|f| format!("{} failed ({})", f.name, f.error.summary()))
                .collect::<Vec<_>>()
                .join("; ");
            let ok = tally.rendered + tally.cached;
            reporter.err(&format!("{ok}/{} scenes rendered; {list}", counts.built));
        }
    }
    let (output, published) = published.unzip();
    BuildOutcome {
        success,
        output,
        published,
        rendered: tally.rendered,
        cached: tally.cached,
        failed: tally.failed.len(),
        superseded: false,
    }
}

/// `--explain`: the steps that set the build's length.
fn explain_timings(t: &TimingsMessage, reporter: &Reporter) {
    let path = t
        .critical_path
        .iter()
        .map(|s| format!("{} {:.2}s", s.step, s.seconds))
        .collect::<Vec<_>>()
        .join(" → ");
    reporter.status("Timing", &format!("critical path: {path}"));
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

pub(super) fn record_stats(project: &Project, tally: &Tally) {
    let path = stats_path(project);
    let mut all: Vec<BuildStats> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    all.push(BuildStats {
        rendered: tally.rendered,
        cached: tally.cached,
        failed: tally.failed.len(),
        when: now_unix(),
    });
    let keep = all.len().saturating_sub(50);
    all.drain(..keep);
    if let Ok(bytes) = serde_json::to_vec(&all) {
        let _ = crate::fsutil::write_atomic(&path, &bytes);
    }
}
