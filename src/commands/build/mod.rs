//! `parender build`: drives the pipeline once, one way:
//! discover → plan → render → mux → stitch → publish.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::process::ExitCode;

use clap::Args;
use tokio_util::sync::CancellationToken;

mod ahead;
mod output;
mod prepare;
mod remote;
mod schedule;
mod scratch;
mod summary;
mod task;

pub use output::{check_output, output_path};
pub use prepare::{Prepared, describe_audio, prepare, why_stale};
pub use summary::{BuildStats, stats_path};

use crate::analyze::discover;
use crate::analyze::toolchain::Toolchain;
use crate::cache::plan::{self, Action};
use crate::cache::store::{Entry, Lookup, Store};
use crate::config::{Backend, Quality};
use crate::error::Error;
use crate::ffmpeg::Ffmpeg;
use crate::media::publish;
use crate::project::Project;
use crate::python::Runner;
use crate::render::Renderer;
use crate::render::cli::ManimRenderer;
use crate::render::warm::WarmRenderer;
use crate::report::{MessageFormat, Reporter, Timer, fail};
use crate::scene::SceneError;
use crate::settings::Overrides;
use scratch::Scratch;
use task::Done;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub overrides: Overrides,
    pub output: Option<PathBuf>,
    pub strict: bool,
    /// `SCENE...`: restrict the build to these scenes.
    pub scenes: Vec<String>,
    /// Wait for the uploads to the remote cache before finishing.
    pub wait_uploads: bool,
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
    /// What was published, when a video was.
    pub published: Option<crate::media::publish::Outcome>,
}

/// The services a build uses; tests can swap the renderer.
pub struct Services {
    pub renderer: Arc<dyn Renderer>,
    pub ffmpeg: Ffmpeg,
    /// Runs discovery (and, with the warm backend, renders): warm workers
    /// that live as long as these services.
    pub runner: Arc<Runner>,
    /// Whether the renderer can render animation ranges (`-n A,B`).
    pub can_split: bool,
    /// Whether renders go through the runner's warm workers.
    pub warm_renders: bool,
    /// The shared remote cache (`[cache] remote`), when there is one.
    pub remote: Option<Arc<crate::cache::remote::Remote>>,
    /// The cluster renders run on (`[executor]`), when not this machine.
    pub cluster: Option<Arc<dyn crate::python::RunScript>>,
}

/// What the renders of one build came to, scene by scene.
pub(super) struct Tally {
    /// The video of each scene, when it has one.
    pub entries: Vec<Option<Entry>>,
    pub failed: Vec<Failure>,
    /// Watch mode: failed scenes, to be shown by their last good render or
    /// a card.
    pub stand_ins: Vec<(usize, SceneError)>,
    pub rendered: usize,
    pub cached: usize,
    /// This build's new renders, for the remote cache.
    pub new_renders: Vec<Entry>,
}

/// A failed scene, with its file and position for the summary's order.
pub(super) struct Failure {
    pub file: String,
    pub order: usize,
    pub name: String,
    pub error: SceneError,
}

impl Tally {
    fn new(scenes: usize) -> Tally {
        Tally {
            entries: vec![None; scenes],
            failed: Vec::new(),
            stand_ins: Vec::new(),
            rendered: 0,
            cached: 0,
            new_renders: Vec::new(),
        }
    }

    pub(super) fn fail(&mut self, file: String, order: usize, name: String, error: SceneError) {
        self.failed.push(Failure {
            file,
            order,
            name,
            error,
        });
    }

    /// Records how scene `i`'s render task ended.
    fn record(&mut self, p: &Prepared, i: usize, done: Done, watch: bool) {
        let scene = &p.discovery.scenes[i];
        match done {
            Done::Rendered(e, _) => {
                self.new_renders.push(e.clone());
                self.entries[i] = Some(e);
                self.rendered += 1;
            }
            Done::CachedMeanwhile(e) => {
                self.entries[i] = Some(e);
                self.cached += 1;
            }
            Done::Superseded => {}
            Done::Failed(e, _, _) => {
                if watch {
                    self.stand_ins.push((i, e.clone()));
                }
                let line = scene.line.unwrap_or(0) as usize;
                self.fail(scene.file.clone(), line, scene.short_name(), e);
            }
        }
    }

    /// The cache's videos of the scenes that needed no render.
    fn take_reused(&mut self, steps: Vec<plan::Step>) {
        for s in steps {
            match s.action {
                Action::Fresh(e) | Action::Reuse { entry: e, .. } => {
                    self.entries[s.index] = Some(e)
                }
                Action::Render { .. } | Action::Missing => {}
            }
        }
    }
}

/// Runs the pipeline once: prepare → plan → render → publish, each a named
/// step below.
pub async fn build(
    project: &Project,
    opts: &BuildOptions,
    services: &Services,
    reporter: &Arc<Reporter>,
    cancel: &CancellationToken,
) -> Result<BuildOutcome, Error> {
    let timer = Timer::start();
    let mut p = prepare(project, &opts.overrides, &services.runner, cancel).await?;
    let prepared_in = timer.secs();
    if let Some(w) = services.runner.take_warning().await {
        reporter.warning(&w);
    }
    let selected = discover::select(&p.discovery.scenes, &opts.scenes)?;
    let output = output_path(project, &p.settings, opts.output.as_deref());
    check_output(project, &p, &output)?;
    let scratch = Scratch::create(&project.state_dir())?;
    let mut steps = plan_renders(&p, &selected, reporter)?;
    let from_remote = match &services.remote {
        Some(r) => remote::fetch(&p, &mut steps, r, reporter).await,
        None => Vec::new(),
    };
    let counts = summary::Counts::new(&p, &selected, opts.scenes.is_empty());
    summary::announce(project, &p, &counts, reporter);
    let mut tally = Tally::new(p.discovery.scenes.len());
    if opts.scenes.is_empty() {
        summary::report_broken(project, &p, reporter, &mut tally);
    }
    tally.cached += summary::report_fresh(&p, &steps, &from_remote, reporter);
    let stale = stale_scenes(&steps);
    scratch.check_can_render(stale.len(), &project.state_dir())?;
    if !stale.is_empty() {
        cluster_slots(&mut p, services, reporter).await;
    }
    let ctx = schedule::Context {
        project,
        p: &p,
        services,
        reporter,
        cancel,
        watch: opts.watch.as_ref(),
        split: services.can_split && project.config.render.split.unwrap_or(true),
        scratch: scratch.path(),
    };
    if !stale.is_empty() && services.warm_renders {
        // Before the first render, so a fallback's warning comes first.
        services.runner.warm_up().await;
        if let Some(w) = services.runner.take_warning().await {
            reporter.warning(&w);
        }
    }
    let renders = schedule::render_stale(&ctx, stale, &mut tally).await?;
    if let Some(r) = &services.remote {
        remote::upload(r, std::mem::take(&mut tally.new_renders));
    }
    if cancel.is_cancelled() {
        p.hashes.save();
        return Err(Error::Interrupted);
    }
    tally.take_reused(steps);
    if opts.watch.as_ref().is_some_and(|w| w.is_superseded()) {
        p.hashes.save();
        return Ok(summary::superseded(&tally, &timer, reporter));
    }
    stand_in_for_failures(project, &p, services, reporter, &mut tally).await;
    let publish_timer = Timer::start();
    let published = publish_video(
        project, &p, opts, services, &scratch, &output, &tally, reporter, cancel,
    )
    .await?;
    let timings = summary::Timings {
        prepare: prepared_in,
        renders,
        publish: publish_timer.secs(),
    };
    p.hashes.save();
    if let Some(r) = &services.remote {
        remote::finish(r, opts.wait_uploads, reporter).await;
    }
    summary::record_stats(project, &tally);
    Ok(summary::finish(
        project, &counts, tally, published, timings, &timer, reporter,
    ))
}

/// On a cluster, unless `jobs` was set: as many renders at once as the
/// cluster has CPUs for, not as many as this machine has.
async fn cluster_slots(p: &mut Prepared, services: &Services, reporter: &Reporter) {
    if p.settings.jobs_given {
        return;
    }
    let Some(cluster) = &services.cluster else {
        return;
    };
    if let Some(n) = cluster.slots().await
        && n != p.settings.jobs
    {
        p.settings.jobs = n;
        reporter.status(
            "Cluster",
            &format!(
                "{n} render{} at once: the cluster's CPUs over `cpus` per render (set `jobs` to choose)",
                if n == 1 { "" } else { "s" }
            ),
        );
    }
}

/// Looks every selected scene up in the cache.
fn plan_renders(
    p: &Prepared,
    selected: &[bool],
    reporter: &Reporter,
) -> Result<Vec<plan::Step>, Error> {
    let mut warnings = p.discovery.warnings.clone();
    let steps = plan::plan(
        &p.discovery.scenes,
        selected,
        &p.keys,
        p.settings.profile.name(),
        p.store.as_ref(),
        &mut warnings,
    )?;
    for w in &warnings {
        reporter.warning(w);
    }
    Ok(steps)
}

/// The scenes to render, each with why its cache entry was unusable.
fn stale_scenes(steps: &[plan::Step]) -> Vec<(usize, Option<String>)> {
    steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Render { corrupt } => Some((s.index, corrupt.clone())),
            _ => None,
        })
        .collect()
}

/// Watch mode keeps the video's timing while the user fixes a scene: its
/// last good render, else a card naming the scene and its error.
async fn stand_in_for_failures(
    project: &Project,
    p: &Prepared,
    services: &Services,
    reporter: &Reporter,
    tally: &mut Tally,
) {
    let scenes = &p.discovery.scenes;
    let profile = p.settings.profile.name();
    for (i, error) in std::mem::take(&mut tally.stand_ins) {
        let scene = &scenes[i];
        if let Ok(Lookup::Hit(e)) = p.store.latest(&scene.id, profile) {
            reporter.warning(&format!(
                "{} failed; the video keeps its last good render (stale)",
                scene.id
            ));
            tally.entries[i] = Some(*e);
            continue;
        }
        let like = tally
            .entries
            .iter()
            .flatten()
            .next()
            .map(|e| e.info.clone());
        match crate::media::placeholder::card(
            &services.ffmpeg,
            scene,
            &error,
            &p.settings,
            like.as_ref(),
            &p.hashes,
            &project.state_dir().join("placeholders"),
        )
        .await
        {
            Ok(e) => {
                reporter.warning(&format!(
                    "{} failed and has never rendered; the video shows a placeholder card",
                    scene.id
                ));
                tally.entries[i] = Some(e);
            }
            Err(e) => reporter.warning(&format!("no placeholder for {}: {e}", scene.id)),
        }
    }
}

/// Muxes and stitches every scene that has a video; `None` when there is
/// nothing to publish (or `--strict` and a scene failed).
#[allow(clippy::too_many_arguments)]
async fn publish_video(
    project: &Project,
    p: &Prepared,
    opts: &BuildOptions,
    services: &Services,
    scratch: &Scratch,
    output: &Path,
    tally: &Tally,
    reporter: &Arc<Reporter>,
    cancel: &CancellationToken,
) -> Result<Option<(PathBuf, publish::Outcome)>, Error> {
    let available: Vec<(&crate::scene::Scene, Entry)> = tally
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.clone().map(|e| (&p.discovery.scenes[i], e)))
        .collect();
    if opts.strict && !tally.failed.is_empty() {
        reporter.warning("--strict: a scene failed, so no final video was written");
        return Ok(None);
    }
    if available.is_empty() {
        reporter.warning("no scene rendered, so no final video was written");
        return Ok(None);
    }
    let state = project.state_dir();
    let job = publish::Publish {
        ffmpeg: &services.ffmpeg,
        hashes: &p.hashes,
        state: &state,
        mux_cache: p.store.dir().join("mux"),
        work: &scratch.path().join("stitch"),
        output,
        gap: project.config.gap.map(|g| g.0.as_secs_f64()).unwrap_or(0.0),
        subtitles: project.config.output.0.subtitles,
        // Encodes run here, even when renders ran on a cluster.
        jobs: p.settings.jobs.min(crate::settings::default_jobs()),
        root: &project.root,
    };
    let done = publish::publish(&job, &available, reporter, cancel).await;
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    Ok(Some((output.to_path_buf(), done?)))
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
    /// Wait until the new renders are uploaded to the remote cache
    /// (`[cache] remote`) before finishing; without it they upload in the
    /// background, and the next build finishes what is left
    #[arg(long)]
    pub wait_uploads: bool,
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
        wait_uploads: args.wait_uploads,
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
    let ffmpeg = Ffmpeg::new(&tools.ffmpeg, &tools.ffprobe);
    let backend = project.config.render.backend;
    let runner = Arc::new(Runner::new(
        &tools.python,
        &project.root,
        &project.state_dir().join("tmp"),
        backend == Backend::Warm,
    ));
    let fake = std::env::var_os("PARENDER_FAKE_RENDERER").is_some_and(|v| v == "1");
    let cluster = crate::execute::cluster_runner(
        &project.config.executor,
        &tools.python,
        &project.root,
        &project.state_dir().join("tmp"),
    );
    let local = cluster.is_none();
    let remote = match &project.config.cache.remote {
        Some(url) => Some(Arc::new(crate::cache::remote::Remote::open(
            url,
            &project.state_dir().join("cache"),
        )?)),
        None => None,
    };
    let renderer: Arc<dyn crate::render::Renderer> = if fake {
        Arc::new(crate::render::fake::FakeRenderer {
            ffmpeg: ffmpeg.clone(),
        })
    } else if let Some(runner) = cluster.clone() {
        Arc::new(WarmRenderer::<dyn crate::python::RunScript> { runner })
    } else if backend == Backend::Warm {
        Arc::new(WarmRenderer {
            runner: runner.clone(),
        })
    } else {
        Arc::new(ManimRenderer {
            python: tools.python.clone(),
        })
    };
    Ok(Services {
        renderer,
        ffmpeg,
        runner,
        // Splits and warm renders are local matters: on a cluster each
        // render is one task of the engine.
        can_split: !fake && local,
        warm_renders: !fake && local && backend == Backend::Warm,
        remote,
        cluster: cluster.filter(|_| !fake),
    })
}
