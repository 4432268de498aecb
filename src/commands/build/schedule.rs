//! Which stale scene renders when: longest first, as many at once as the
//! profile's `jobs`, each on its own task.
//!
//! A build's length is at least its longest render, so starting that one
//! last leaves every other job slot idle at the end. Renders are started in
//! order of expected time, longest first (LPT scheduling): the scene's last
//! recorded render time in this profile, else in the other profile scaled
//! by the pixel rate, else an estimate from the number of animations in its
//! class.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::ahead::TrackAhead;
use super::prepare::{Prepared, why_stale};
use super::task::{Done, RenderTask};
use super::{Services, Tally, WatchHooks};
use crate::analyze::hashcache::HashCache;
use crate::cache::store::Entry;
use crate::error::Error;
use crate::ffmpeg::Ffmpeg;
use crate::media::mux::{self, Segment};
use crate::media::publish::{SceneMux, gap_frames};
use crate::project::Project;
use crate::render::RenderJob;
use crate::render::split;
use crate::render::steal::{self, Victim};
use crate::report::{Reporter, Timer};
use crate::scene::SceneError;
use crate::scene::SceneId;
use crate::settings::RenderSettings;

/// What every render of one build shares.
pub(super) struct Context<'a> {
    pub project: &'a Project,
    pub p: &'a Prepared,
    pub services: &'a Services,
    pub reporter: &'a Arc<Reporter>,
    pub cancel: &'a CancellationToken,
    pub watch: Option<&'a Arc<WatchHooks>>,
    /// Whether a long scene may be split (`[render] split`, a real renderer).
    pub split: bool,
    /// This build's scratch folder (narrations decoded ahead live there).
    pub scratch: &'a Path,
}

/// How long the renders took, and the one that finished last (the build's
/// critical path runs through it).
#[derive(Debug, Clone, Default)]
pub(super) struct RenderTimings {
    pub wall: f64,
    pub last: Option<LastRender>,
}

#[derive(Debug, Clone)]
pub(super) struct LastRender {
    pub scene: String,
    /// Seconds it waited for a job slot.
    pub waited: f64,
    pub seconds: f64,
}

/// Renders the stale scenes, longest first, and records each result.
pub(super) async fn render_stale(
    ctx: &Context<'_>,
    stale: Vec<(usize, Option<String>)>,
    tally: &mut Tally,
) -> Result<RenderTimings, Error> {
    let timer = Timer::start();
    let mut ordered: Vec<(f64, usize, Option<String>)> = stale
        .into_iter()
        .map(|(i, corrupt)| (expected_seconds(ctx.p, &ctx.project.root, i), i, corrupt))
        .collect();
    // Longest first; equal ones in the scenes' order (the sort is stable).
    ordered.sort_by(|a, b| b.0.total_cmp(&a.0));
    let sorted: Vec<f64> = ordered.iter().map(|s| s.0).collect();
    ctx.reporter.start_progress(ordered.len());
    let jobs = ctx.p.settings.jobs;
    let slots = Arc::new(Semaphore::new(jobs));
    // Muxes and encodes run here, even when renders run on a cluster.
    let local_jobs = jobs.min(crate::settings::default_jobs());
    let muxes = Arc::new(Semaphore::new(local_jobs));
    let mut tasks = tokio::task::JoinSet::new();
    let mut victims = Vec::new();
    for (n, (expected, i, corrupt)) in ordered.into_iter().enumerate() {
        let pieces = if n == 0 && ctx.split {
            split_pieces(&sorted, jobs)
        } else {
            1
        };
        // Taken here, in order, so the longest renders start first.
        let permit = tokio::select! {
            p = slots.clone().acquire_many_owned(pieces as u32) => p.ok(),
            _ = ctx.cancel.cancelled() => None,
        };
        let mut task = render_task(ctx, i, corrupt.as_deref());
        task.split = pieces;
        // A render expected to be short is never taken over: the thief's
        // dry run would only slow it down.
        if ctx.split && jobs >= 2 && pieces < 2 && worth_taking_over(ctx, i, expected) {
            let v = Victim::new(task.job.clone(), expected, task.cancel.clone());
            task.victim = Some(Arc::new(v));
            victims.extend(task.victim.clone());
        }
        let victim = task.victim.clone();
        let mut mux = EarlyMux::new(ctx, i);
        let muxes = muxes.clone();
        let waited = timer.secs();
        tasks.spawn(async move {
            let t = Timer::start();
            let (done, segment) = match permit {
                Some(permit) if !task.cancel.is_cancelled() => {
                    let (done, ()) = tokio::join!(task.run(), mux.ahead());
                    if let Some(v) = victim {
                        v.abandon();
                    }
                    // The next render starts at once; the mux fills the CPU
                    // the renders leave (the last one alone leaves most).
                    drop(permit);
                    let mut segment = None;
                    if let Done::Rendered(e, _) = &done
                        && let Ok(_muxing) = muxes.acquire().await
                    {
                        segment = mux.run(e.clone()).await;
                    }
                    (done, segment)
                }
                _ => (
                    Done::Failed(SceneError::plain("cancelled"), String::new(), 0.0),
                    None,
                ),
            };
            (i, done, segment, waited, t.secs())
        });
    }
    let mut timings = RenderTimings::default();
    let mut ahead = TrackAhead::new(
        ctx.p.discovery.scenes.len(),
        ctx.services.ffmpeg.in_background(),
        ctx.p.store.dir().join("aac"),
        ctx.scratch.join("stitch"),
        local_jobs,
        ctx.cancel.clone(),
    );
    let all_done = CancellationToken::new();
    let joining = async {
        let _done = all_done.clone().drop_guard();
        while let Some(joined) = tasks.join_next().await {
            let (i, done, segment, waited, secs) =
                joined.map_err(|e| Error::Other(format!("a render task failed: {e}")))?;
            if let Some(s) = segment {
                ahead.muxed(i, s);
            }
            timings.last = Some(LastRender {
                scene: ctx.p.discovery.scenes[i].id.to_string(),
                waited,
                seconds: secs,
            });
            tally.record(ctx.p, i, done, ctx.watch.is_some());
        }
        Ok::<(), Error>(())
    };
    let ((), joined) = tokio::join!(steal_tail(ctx, &slots, &victims, &all_done), joining);
    ahead.finish().await;
    joined?;
    ctx.reporter.finish_progress();
    timings.wall = timer.secs();
    Ok(timings)
}

/// Once every stale scene has started, each job slot that frees takes the
/// rest of the running render with the most left, if that saves time (see
/// [`crate::render::steal`]): the end of a build is not one render on one
/// slot while the others idle. Ends when every render has.
async fn steal_tail(
    ctx: &Context<'_>,
    slots: &Arc<Semaphore>,
    victims: &[Arc<Victim>],
    all_done: &CancellationToken,
) {
    let mut thieves = tokio::task::JoinSet::new();
    while !victims.is_empty() {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.ok(),
            _ = all_done.cancelled() => None,
            _ = ctx.cancel.cancelled() => None,
        };
        let Some(permit) = permit else { break };
        let Some(victim) = next_victim(victims, all_done).await else {
            break;
        };
        let renderer = ctx.services.renderer.clone();
        let reporter = ctx.reporter.clone();
        thieves.spawn(async move {
            let _permit = permit;
            let id = victim.job().scene.id.0.clone();
            let progress = |n: u32| reporter.scene_progress(&id, n);
            let announce = |k: u32| {
                let what = format!("{id} from animation {k} on a free job slot");
                reporter.status("Splitting", &what);
            };
            steal::steal(&victim, renderer.as_ref(), &progress, &announce).await;
        });
    }
    while thieves.join_next().await.is_some() {}
}

/// The running render with the most left by its expected time, once one
/// has shown an animation; `None` when none can become one.
async fn next_victim(victims: &[Arc<Victim>], all_done: &CancellationToken) -> Option<Arc<Victim>> {
    loop {
        let best = victims
            .iter()
            .filter_map(|v| Some((v.open_and_left()?, v)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((_, v)) = best {
            return Some(v.clone());
        }
        if all_done.is_cancelled() || !victims.iter().any(|v| v.unclaimed()) {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Scene `i`'s mux with its narration, to run as soon as its render is
/// stored, while the other scenes render: publishing after the last render
/// then finds every mux but the last ones in the mux cache. Its narration
/// is decoded while it renders ([`EarlyMux::ahead`]). Both run at a lower
/// CPU priority than renders, which they must not delay, and at most one
/// per job slot (and local CPU) at once. Errors are left for publishing to
/// report; Ctrl-C drops the mux (and kills its ffmpeg).
struct EarlyMux {
    ffmpeg: Ffmpeg,
    cache: PathBuf,
    scratch: PathBuf,
    hashes: Arc<HashCache>,
    scene: SceneId,
    audio: Option<PathBuf>,
    ahead: Option<mux::Ahead>,
    last: bool,
    gap: f64,
    cancel: CancellationToken,
}

impl EarlyMux {
    fn new(ctx: &Context<'_>, i: usize) -> EarlyMux {
        let p = ctx.p;
        let scene = &p.discovery.scenes[i];
        let gap = ctx.project.config.gap.map(|g| g.0.as_secs_f64());
        EarlyMux {
            ffmpeg: ctx.services.ffmpeg.in_background(),
            cache: p.store.dir().join("mux"),
            scratch: ctx.scratch.join("ahead"),
            hashes: p.hashes.clone(),
            scene: scene.id.clone(),
            audio: scene.audio.as_ref().map(|a| ctx.project.root.join(a)),
            ahead: None,
            last: i + 1 == p.discovery.scenes.len(),
            gap: gap.unwrap_or(0.0),
            cancel: ctx.cancel.clone(),
        }
    }

    /// Decodes the narration (run beside the render). A failure here is
    /// not reported: the mux then decodes it again and says why.
    async fn ahead(&mut self) {
        let Some(audio) = &self.audio else {
            return;
        };
        let ahead = mux::decode_ahead(&self.ffmpeg, audio, &self.scratch, &self.hashes);
        tokio::select! {
            _ = self.cancel.cancelled() => {}
            a = ahead => self.ahead = a.ok().flatten(),
        }
    }

    /// The segment, unless the mux failed or was cancelled.
    async fn run(self, entry: Entry) -> Option<Segment> {
        let job = SceneMux {
            gap_frames: gap_frames(self.gap, &entry.info, self.last),
            ffmpeg: self.ffmpeg,
            cache: self.cache,
            hashes: self.hashes,
            scene: self.scene,
            entry,
            audio: self.audio,
            ahead: self.ahead,
        };
        tokio::select! {
            _ = self.cancel.cancelled() => None,
            s = job.run() => s.ok(),
        }
    }
}

fn render_task(ctx: &Context<'_>, i: usize, corrupt: Option<&str>) -> RenderTask {
    let p = ctx.p;
    let scene = &p.discovery.scenes[i];
    let media_root = ctx.project.state_dir().join("media");
    let media = media_root
        .join(p.settings.profile.name())
        .join(&blake3::hash(scene.id.0.as_bytes()).to_hex()[..16]);
    // LaTeX compiled once for the project, whichever scene or quality
    // needs it (see `share_tex` in python/render_driver.py); a media folder
    // for `cache gc` like the scenes' own.
    let tex = media_root.join("shared").join("tex");
    RenderTask {
        job: RenderJob {
            scene: scene.clone(),
            settings: p.settings.render.clone(),
            project_root: ctx.project.root.clone(),
            media_dir: media,
            key: p.keys[i].clone(),
            // (Left out for a project path that is not UTF-8.)
            extra_env: tex
                .to_str()
                .map(|t| ("PARENDER_TEX_CACHE".to_string(), t.to_string()))
                .into_iter()
                .collect(),
        },
        inputs: p.inputs[i].clone(),
        why: why_stale(p, i, corrupt),
        profile: p.settings.profile.name().to_string(),
        renderer: ctx.services.renderer.clone(),
        store: p.store.clone(),
        fingerprinter: p.fingerprinter.clone(),
        ffmpeg: ctx.services.ffmpeg.clone(),
        reporter: ctx.reporter.clone(),
        cancel: ctx.cancel.child_token(),
        stop: ctx.cancel.clone(),
        watch: ctx.watch.cloned(),
        split: 1,
        victim: None,
    }
}

/// Below this expected time a scene is never split: the pieces' own start
/// and the dry run would eat the gain.
const SPLIT_FROM_SECONDS: f64 = 4.0;

/// Whether a free slot may take over the rest of scene `i`'s render: it is
/// expected to take [`SPLIT_FROM_SECONDS`], and it has enough video for a
/// split to give the thief a piece (a balanced split leaves it about half of
/// what is left, and a piece needs [`split::MIN_PIECE_SECONDS`]).
fn worth_taking_over(ctx: &Context<'_>, i: usize, expected: f64) -> bool {
    expected >= SPLIT_FROM_SECONDS
        && video_seconds(ctx.p, &ctx.project.root, i) >= 2.0 * split::MIN_PIECE_SECONDS
}

/// Seconds of video scene `i` makes: as its latest render had, else as its
/// class's `play`/`wait` calls add up to.
fn video_seconds(p: &Prepared, root: &Path, i: usize) -> f64 {
    let scene = &p.discovery.scenes[i];
    p.find_latest(i, |e| Some(e.info.frames as f64 / e.info.fps()))
        .unwrap_or_else(|| {
            let source = std::fs::read_to_string(root.join(&scene.file)).unwrap_or_default();
            class_video_seconds(&source, scene.line.unwrap_or(1) as usize)
        })
}

/// Into how many pieces to split the longest render (`expected` sorted,
/// longest first): as many as there are job slots when it is the only
/// render (an edit under `watch`), two when it dominates (it would take
/// longer than all the others spread over the slots), else none (1).
fn split_pieces(expected: &[f64], jobs: usize) -> usize {
    let Some((&longest, rest)) = expected.split_first() else {
        return 1;
    };
    if jobs < 2 || longest < SPLIT_FROM_SECONDS {
        return 1;
    }
    if rest.is_empty() {
        return jobs;
    }
    let others: f64 = rest.iter().sum();
    if longest > others / jobs as f64 { 2 } else { 1 }
}

/// How long scene `i` is expected to render, in seconds.
pub(super) fn expected_seconds(p: &Prepared, root: &Path, i: usize) -> f64 {
    let scene = &p.discovery.scenes[i];
    let here = &p.settings.render;
    let now = pixel_rate(here.width, here.height, here.fps as f64);
    // Scaled by the pixel rate when it rendered at another quality.
    let recorded = p.find_latest(i, |e| {
        let then = pixel_rate(e.info.width, e.info.height, e.info.fps());
        Some(e.render_seconds * (now / then.max(1.0)).powf(0.7))
    });
    recorded.unwrap_or_else(|| estimate_seconds(&root.join(&scene.file), scene.line, here))
}

fn pixel_rate(width: u32, height: u32, fps: f64) -> f64 {
    width as f64 * height as f64 * fps
}

/// A scene never rendered: a second to start, and per animation in its
/// class (`play` and `wait` calls) about 0.3 s at 480p15, growing with the
/// pixel rate (encoding is not all of a render's time, hence the power).
pub(super) fn estimate_seconds(file: &Path, line: Option<u32>, r: &RenderSettings) -> f64 {
    let source = std::fs::read_to_string(file).unwrap_or_default();
    let video = class_video_seconds(&source, line.unwrap_or(1) as usize).max(1.0);
    let scale = (pixel_rate(r.width, r.height, r.fps as f64) / pixel_rate(854, 480, 15.0))
        .max(0.1)
        .powf(0.7);
    // A warm render at 854x480, 15 fps, takes about 0.15 s per second of
    // video (the example lecture: 0.75 s for 5 s), plus its start.
    1.0 + 0.15 * video * scale
}

/// The lines of the class defined at `line` (1-based): its header and its
/// indented body.
fn class_lines(source: &str, line: usize) -> Vec<&str> {
    source
        .lines()
        .skip(line.saturating_sub(1))
        .enumerate()
        .take_while(|(n, l)| *n == 0 || l.is_empty() || l.starts_with([' ', '\t', '#']))
        .map(|(_, l)| l)
        .collect()
}

/// Seconds of video the class's `play`/`wait` calls add up to, from their
/// literal `run_time=` and durations (1 s where none is written), a call in
/// a `for` loop counted once per iteration (`range` of literals; 4 where the
/// count is not written down).
fn class_video_seconds(source: &str, line: usize) -> f64 {
    let lines = class_lines(source, line);
    let mut loops: Vec<(usize, f64)> = Vec::new();
    let mut total = 0.0;
    for (n, l) in lines.iter().enumerate() {
        let code = l.trim_start();
        if code.is_empty() || code.starts_with('#') {
            continue;
        }
        let indent = l.len() - code.len();
        while loops.last().is_some_and(|(at, _)| indent <= *at) {
            loops.pop();
        }
        let calls: Vec<usize> = code
            .match_indices(".play(")
            .chain(code.match_indices(".wait("))
            .map(|(at, _)| at)
            .collect();
        if !calls.is_empty() {
            // A call's arguments may go on over the next lines.
            let times: f64 = loops.iter().map(|(_, k)| k).product();
            let rest = lines[n..].join("\n");
            let rest = &rest[indent..];
            for at in calls {
                let wait = code[at..].starts_with(".wait(");
                total += times * call_seconds(call_args(&rest[at + 6..]), wait);
            }
        }
        if code.starts_with("for ") && code.ends_with(':') {
            loops.push((indent, loop_count(code)));
        }
    }
    total
}

/// The text up to the parenthesis that closes the call.
fn call_args(text: &str) -> &str {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => return &text[..i],
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    text
}

/// A call's seconds: `run_time=X`, or a wait's first argument or
/// `duration=X`; 1 s where none is a number.
fn call_seconds(args: &str, wait: bool) -> f64 {
    let number = |key: &str| {
        let at = args.find(key)? + key.len();
        let value = args[at..].trim_start();
        let end = value
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(value.len());
        value[..end].parse::<f64>().ok()
    };
    let first = || {
        args.trim_start()
            .split([',', ')'])
            .next()?
            .trim()
            .parse()
            .ok()
    };
    let given = if wait {
        number("duration=").or_else(first)
    } else {
        number("run_time=")
    };
    given.unwrap_or(1.0)
}

/// Iterations of `for ... in range(a[, b]):` with literal bounds, else 4.
fn loop_count(header: &str) -> f64 {
    let literal = || -> Option<f64> {
        let inner = call_args(header.split_once("range(")?.1);
        let n: Vec<f64> = inner
            .split(',')
            .map(|v| v.trim().parse().ok())
            .collect::<Option<_>>()?;
        match n[..] {
            [b] => Some(b),
            [a, b] | [a, b, _] => Some(b - a),
            _ => None,
        }
    };
    literal().filter(|n| *n >= 0.0).unwrap_or(4.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_long_render_that_dominates_or_is_alone_is_split() {
        assert_eq!(split_pieces(&[], 2), 1);
        assert_eq!(split_pieces(&[10.0], 2), 2);
        assert_eq!(split_pieces(&[10.0], 4), 4);
        assert_eq!(split_pieces(&[10.0], 1), 1);
        assert_eq!(split_pieces(&[3.0], 2), 1);
        assert_eq!(split_pieces(&[10.0, 5.0, 5.0], 2), 2);
        assert_eq!(split_pieces(&[10.0, 8.0, 8.0, 8.0], 2), 1);
    }

    #[test]
    fn animations_are_counted_in_the_class_alone() {
        let src = "from manim import *\n\nclass A(Scene):\n    def construct(self):\n        self.play(X)\n\n        self.wait()\n\nclass B(Scene):\n    def construct(self):\n        self.play(Y); self.play(Z, run_time=2.5)\n";
        assert_eq!(class_video_seconds(src, 3), 2.0);
        assert_eq!(class_video_seconds(src, 9), 3.5);
        assert_eq!(class_video_seconds(src, 1), 0.0);
    }

    #[test]
    fn run_times_waits_and_loops_add_up() {
        let src = r#"class S(Scene):
    def construct(self):
        rows = [Square() for k in range(1, 9)]
        self.play(
            LaggedStart(*[FadeIn(r) for r in rows], lag_ratio=0.4),
            run_time=2.0,
        )
        for r in rows:
            self.play(Indicate(r), run_time=0.5)
        for k in range(3):
            self.wait(0.25)
            for j in range(1, 3):
                self.play(Wiggle(rows[j]))
        self.wait(duration=1.5)
        self.wait()
"#;
        // 2 + 4 × 0.5 + 3 × (0.25 + 2 × 1) + 1.5 + 1
        assert_eq!(class_video_seconds(src, 1), 13.25);
    }

    #[test]
    fn more_animations_and_pixels_take_longer() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("s.py");
        std::fs::write(&f, "class A(Scene):\n    def construct(self):\n        self.play(X)\n        self.play(Y)\n        self.wait()\n").unwrap();
        let low = RenderSettings::preset(crate::config::Quality::Low);
        let high = RenderSettings::preset(crate::config::Quality::High);
        // 3 s of video at 0.15 s each, plus the start.
        let a = estimate_seconds(&f, Some(1), &low);
        assert!((a - 1.45).abs() < 1e-9, "{a}");
        assert!(estimate_seconds(&f, Some(1), &high) > 3.0 * a);
    }
}
