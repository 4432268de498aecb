//! Splitting one long scene into animation ranges rendered in parallel and
//! joined by stream copy, only where that gives the same frames as the
//! whole render.
//!
//! Manim's `-n A,B` renders animations A..=B (0-based, `self.wait()` counts)
//! and fast-forwards the ones before A to their end state in a single step,
//! into the same output name (`<Class>.mp4`; the range does not change it).
//! A piece starting at animation K therefore matches the whole render when
//! the state after that fast-forward equals the state after drawing
//! 0..K-1 frame by frame. Measured with Manim 0.22: it does for ordinary
//! animations, and it does not when an updater ran during an animation
//! before K (a dt updater gets one big step; updaters that rebuild
//! Text/DecimalNumber differ slightly), or when the scene reads the clock,
//! waits on a condition, or places sound by scene time (Manim drops the
//! sound of skipped animations; subcaptions it keeps, at their scene time,
//! so the last piece's are the whole render's).
//!
//! So a dry run ([`analyze`]: `-n 1000000`, every animation skipped, nothing
//! encoded, about the cost of importing Manim) records per animation its run
//! time and whether it ran with updaters (or is drawn by a user function per
//! frame), plus anything that makes the scene unsafe to split at all;
//! [`split_point`] picks split indices where it is safe, balancing the
//! pieces' run time; [`render_split`] renders the pieces concurrently and
//! [`join`] concatenates them by stream copy after checking that their
//! formats agree.
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::{Progress, RenderFailure, RenderJob, Rendered, Renderer};
use crate::error::Error;
use crate::ffmpeg::{Ffmpeg, VideoInfo};
use crate::media::subtitles::{Cue, parse_srt, to_srt};
use crate::media::timeline::Timeline;
use crate::scene::SceneError;

/// A piece shorter than this (in animation run time) costs more in process
/// start, import and `construct` than it saves.
pub const MIN_PIECE_SECONDS: f64 = 2.0;

/// `-n` of the dry run: a start no scene reaches ([`MAX_ANIMATIONS`]), so
/// Manim skips every animation but still runs `construct`.
const DRY_RUN_FROM: &str = "1000000";

/// More animations than a dry run can report: its own `-n` start.
const MAX_ANIMATIONS: usize = 1_000_000;

/// The dry run's events, written by the driver in `PARENDER_ANALYZE` mode.
const ANALYSIS_FILE: &str = "parender-analysis.jsonl";

/// Manim options that select animations or another kind of output: a scene
/// rendered with them is not split.
const OWN_SELECTION: &[&str] = &[
    "-n",
    "--from_animation_number",
    "-s",
    "--save_last_frame",
    "-g",
    "--save_pngs",
    "-i",
    "--save_as_gif",
    "-t",
    "--transparent",
    "--format",
];

/// One `play` (or `wait`) of a scene, as the dry run saw it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AnimInfo {
    pub run_time: f64,
    /// Updaters were active during it (on the scene or any mobject, at its
    /// start or end, or on its own mobjects), or it is drawn step by step
    /// (`UpdateFromFunc`, `ChangingDecimal`, `PhaseFlow`, a user-written
    /// `interpolate`): its end state depends on the frames drawn.
    pub updaters: bool,
}

/// What the dry run found about a scene.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SceneAnalysis {
    /// Every animation, in play order (index = Manim's animation number).
    pub animations: Vec<AnimInfo>,
    /// Why the scene must be rendered whole, if it must.
    pub unsafe_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Event {
    Plan {
        index: usize,
        #[serde(flatten)]
        info: AnimInfo,
    },
    Unsafe {
        reason: String,
    },
    Analyzed {
        animations: usize,
    },
    #[serde(other)]
    Other,
}

impl SceneAnalysis {
    /// Parses the dry run's JSON lines. Fails unless the run got to the end
    /// (an `analyzed` event). A run that did not record every animation
    /// (another renderer than Cairo, whose plays the driver does not see)
    /// makes the scene unsafe to split.
    pub fn from_events(text: &str) -> Result<SceneAnalysis, String> {
        let mut plans: Vec<Option<AnimInfo>> = Vec::new();
        let mut reasons: Vec<String> = Vec::new();
        let mut total = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(line) {
                Ok(Event::Plan { index, .. }) if index > MAX_ANIMATIONS => {
                    return Err(format!("animation number {index} in the dry run"));
                }
                Ok(Event::Plan { index, info }) => {
                    if plans.len() <= index {
                        plans.resize(index + 1, None);
                    }
                    plans[index] = Some(info);
                }
                Ok(Event::Unsafe { reason }) if !reasons.contains(&reason) => reasons.push(reason),
                Ok(Event::Analyzed { animations }) => total = Some(animations),
                Ok(_) => {}
                Err(e) => return Err(format!("bad analysis line {line:?}: {e}")),
            }
        }
        let total = total.ok_or("the dry run did not finish")?;
        let animations: Option<Vec<AnimInfo>> = plans.into_iter().collect();
        match animations {
            Some(a) if a.len() == total => Ok(SceneAnalysis {
                animations: a,
                unsafe_reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            }),
            _ => Ok(SceneAnalysis {
                animations: Vec::new(),
                unsafe_reason: Some(format!(
                    "the dry run did not see all {total} animations (not the Cairo renderer?)"
                )),
            }),
        }
    }

    pub fn run_time(&self) -> f64 {
        self.animations.iter().map(|a| a.run_time).sum()
    }

    /// The last animation a piece may start at (0 when none after the
    /// first): a piece may start at K when no animation before K ran with
    /// updaters. K itself may have them: the animations before it are then
    /// fast-forwarded exactly, an updater added between K-1 and K is added
    /// by the same code in both renders, and from K on both draw the same
    /// frames with the same time steps (checked frame by frame in
    /// tests/e2e_split.rs, as is a split one animation later, which differs).
    pub fn last_safe_start(&self) -> usize {
        let n = self.animations.len();
        let first_updater = self.animations.iter().position(|a| a.updaters);
        first_updater.unwrap_or(n).min(n.saturating_sub(1))
    }
}

/// Split indices K (each piece's first animation; the first piece starts at
/// 0) for at most `pieces` pieces: only safe ones (see
/// [`SceneAnalysis::last_safe_start`]), every piece at least
/// [`MIN_PIECE_SECONDS`] of run time, the longest piece as short as
/// possible (fewer pieces on a tie). Empty when the scene is unsafe to
/// split or no split is worth it.
pub fn split_point(a: &SceneAnalysis, pieces: usize) -> Vec<u32> {
    if a.unsafe_reason.is_some() || pieces < 2 {
        return Vec::new();
    }
    let times: Vec<f64> = a.animations.iter().map(|x| x.run_time).collect();
    let last = a.last_safe_start();
    let mut best: Option<(f64, Vec<usize>)> = None;
    for p in 2..=pieces.min(times.len()) {
        if let Some((longest, splits)) = best_partition(&times, last, p)
            && best.as_ref().is_none_or(|(b, _)| longest < *b - 1e-9)
        {
            best = Some((longest, splits));
        }
    }
    best.map(|(_, s)| s.into_iter().map(|k| k as u32).collect())
        .unwrap_or_default()
}

/// Run time of animation ranges, from prefix sums.
struct Spans(Vec<f64>);

impl Spans {
    fn new(times: &[f64]) -> Spans {
        let mut prefix = vec![0.0];
        for t in times {
            prefix.push(prefix[prefix.len() - 1] + t);
        }
        Spans(prefix)
    }

    /// Run time of animations `from..to`, when long enough for a piece.
    fn piece(&self, from: usize, to: usize) -> Option<f64> {
        let t = self.0[to] - self.0[from];
        (t >= MIN_PIECE_SECONDS - 1e-9).then_some(t)
    }
}

/// The partition of `times` into exactly `pieces` ranges, every range at
/// least [`MIN_PIECE_SECONDS`] long and every split at most `last`, whose
/// longest range is shortest: that length and the split indices. Dynamic
/// programming over split positions (a scene has tens of animations).
fn best_partition(times: &[f64], last: usize, pieces: usize) -> Option<(f64, Vec<usize>)> {
    let n = times.len();
    let spans = Spans::new(times);
    let splits = 1..=last.min(n - 1);
    // best[q][k]: the shortest longest range of q+1 ranges covering 0..k
    // (k a split), and where the last of them starts.
    let mut best = vec![vec![None::<(f64, usize)>; n + 1]; pieces - 1];
    for k in splits.clone() {
        best[0][k] = spans.piece(0, k).map(|t| (t, 0));
    }
    for q in 1..pieces - 1 {
        for k in splits.clone() {
            best[q][k] = (1..k)
                .filter_map(|j| Some((best[q - 1][j]?.0.max(spans.piece(j, k)?), j)))
                .min_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    let q = pieces - 2;
    let (longest, k) = splits
        .filter_map(|k| Some((best[q][k]?.0.max(spans.piece(k, n)?), k)))
        .min_by(|a, b| a.0.total_cmp(&b.0))?;
    let mut found = vec![k];
    for q in (1..=q).rev() {
        found.push(best[q][*found.last()?]?.1);
    }
    found.reverse();
    Some((longest, found))
}

/// The pieces' animation ranges for split indices `splits`: `(A, B)` for
/// `-n A,B`, with `None` for the last piece's open end.
pub fn piece_ranges(splits: &[u32]) -> Vec<(u32, Option<u32>)> {
    let starts = std::iter::once(0).chain(splits.iter().copied());
    let ends = splits
        .iter()
        .map(|k| Some(k.saturating_sub(1)))
        .chain(std::iter::once(None));
    starts.zip(ends).collect()
}

/// Whether the user's own Manim options select animations or another output
/// kind, which splitting would fight with.
fn own_selection(job: &RenderJob) -> Option<String> {
    job.settings.manim_args.iter().find_map(|a| {
        let flag = a.split('=').next().unwrap_or(a);
        OWN_SELECTION
            .contains(&flag)
            .then(|| format!("the Manim options include `{a}`"))
    })
}

/// Piece `i`'s own media folder, kept between renders like the scene's
/// (Manim's Tex and Text caches live there).
fn piece_dir(job: &RenderJob, i: usize) -> PathBuf {
    job.media_dir.join(format!("piece-{i}"))
}

fn failed(message: impl Into<String>, log_tail: String) -> RenderFailure {
    RenderFailure::Failed {
        error: SceneError::plain(message),
        traceback: String::new(),
        log_tail,
    }
}

/// The dry run: `job` through `renderer` with `-n 1000000` and
/// `PARENDER_ANALYZE`, in piece 0's media folder (so the Tex and Text it
/// makes serve that piece). Nothing is encoded, so the renderer's "no
/// video" failure is expected; a scene error (the run never finished) is
/// returned as the renderer reported it. Callers render the scene whole on
/// any error but `Cancelled`: that render reports the scene's own errors.
pub async fn analyze(
    renderer: &dyn Renderer,
    job: &RenderJob,
    cancel: &CancellationToken,
) -> Result<SceneAnalysis, RenderFailure> {
    if let Some(reason) = own_selection(job) {
        return Ok(SceneAnalysis {
            animations: Vec::new(),
            unsafe_reason: Some(reason),
        });
    }
    let mut dry = job.clone();
    dry.media_dir = piece_dir(job, 0);
    let events = dry.media_dir.join(ANALYSIS_FILE);
    std::fs::create_dir_all(&dry.media_dir).map_err(|e| {
        failed(
            format!("cannot create {}: {e}", dry.media_dir.display()),
            String::new(),
        )
    })?;
    let _ = std::fs::remove_file(&events);
    dry.settings
        .manim_args
        .extend(["-n".into(), DRY_RUN_FROM.into()]);
    let value = events.to_string_lossy().into_owned();
    dry.extra_env.push(("PARENDER_ANALYZE".into(), value));
    let result = renderer.render(&dry, &|_| {}, cancel).await;
    if let Err(RenderFailure::Cancelled | RenderFailure::TimedOut(_)) = &result {
        return result.map(|_| SceneAnalysis::default());
    }
    let text = std::fs::read_to_string(&events).unwrap_or_default();
    SceneAnalysis::from_events(&text).map_err(|why| match result {
        Err(f) => f,
        Ok(r) => failed(format!("split analysis failed: {why}"), r.log_tail),
    })
}

/// Renders `job` as the pieces `splits` gives (see [`piece_ranges`]),
/// concurrently, each a clone of the job with `-n A,B` and its own media
/// folder, then joins them by stream copy into the job's media folder where
/// a whole render would have put its video. When a piece fails the others
/// are cancelled and that failure is returned. Progress reports Manim's
/// animation numbers, which count from the scene's start in every piece;
/// each piece reports only its own range.
pub async fn render_split(
    renderer: &dyn Renderer,
    job: &RenderJob,
    splits: &[u32],
    ffmpeg: &Ffmpeg,
    progress: Progress<'_>,
    cancel: &CancellationToken,
) -> Result<Rendered, RenderFailure> {
    if splits.is_empty() {
        return renderer.render(job, progress, cancel).await;
    }
    if splits[0] == 0 || splits.windows(2).any(|w| w[0] >= w[1]) {
        return Err(failed(
            format!("bad split points {splits:?}: they must increase from 1"),
            String::new(),
        ));
    }
    let ranges = piece_ranges(splits);
    let jobs: Vec<RenderJob> = (0..ranges.len())
        .map(|i| piece_job(job, i, ranges[i]))
        .collect();
    let stop = cancel.child_token();
    let runs = jobs
        .iter()
        .zip(&ranges)
        .map(|(j, r)| run_piece(renderer, j, *r, progress, &stop));
    let results = futures::future::join_all(runs).await;
    let pieces = first_failure(results, cancel)?;
    join_pieces(job, &pieces, ffmpeg).await
}

/// A clone of `job` that renders only `range`, in its own media folder.
fn piece_job(job: &RenderJob, i: usize, (from, upto): (u32, Option<u32>)) -> RenderJob {
    let mut piece = job.clone();
    piece.media_dir = piece_dir(job, i);
    let range = match upto {
        Some(upto) => format!("{from},{upto}"),
        None => from.to_string(),
    };
    piece.settings.manim_args.extend(["-n".into(), range]);
    piece
}

/// One piece; a failure cancels the other pieces through `stop`.
async fn run_piece(
    renderer: &dyn Renderer,
    job: &RenderJob,
    (from, upto): (u32, Option<u32>),
    progress: Progress<'_>,
    stop: &CancellationToken,
) -> Result<Rendered, RenderFailure> {
    let own = move |i: u32| {
        if i >= from && upto.is_none_or(|u| i <= u) {
            progress(i)
        }
    };
    let out = renderer.render(job, &own, stop).await;
    if out.is_err() {
        stop.cancel();
    }
    out
}

/// Every piece's render, or the failure to report: a piece's own failure
/// before the cancellations it caused, or `Cancelled` when the caller
/// cancelled.
fn first_failure(
    results: Vec<Result<Rendered, RenderFailure>>,
    cancel: &CancellationToken,
) -> Result<Vec<Rendered>, RenderFailure> {
    if cancel.is_cancelled() {
        return Err(RenderFailure::Cancelled);
    }
    let mut pieces = Vec::with_capacity(results.len());
    let mut cancelled = None;
    for r in results {
        match r {
            Ok(p) => pieces.push(p),
            Err(RenderFailure::Cancelled) => cancelled = Some(RenderFailure::Cancelled),
            Err(f) => return Err(f),
        }
    }
    match cancelled {
        Some(c) => Err(c),
        None => Ok(pieces),
    }
}

/// Joins the pieces where a whole render of `job` puts its video
/// (`videos/<file stem>/<quality>/<Class>.mp4`), after removing what an
/// earlier whole render left there (its video, sound and subtitles).
async fn join_pieces(
    job: &RenderJob,
    pieces: &[Rendered],
    ffmpeg: &Ffmpeg,
) -> Result<Rendered, RenderFailure> {
    let log_tail = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| format!("--- piece {i}\n{}", p.log_tail))
        .collect::<Vec<_>>()
        .join("\n");
    let out = output_path(job);
    for ext in ["mp4", "wav", "srt"] {
        let _ = std::fs::remove_file(out.with_extension(ext));
    }
    let pieces_ref: Vec<&Rendered> = pieces.iter().collect();
    let subtitles = match joined_subtitles(&pieces_ref, ffmpeg, &out).await {
        Ok(s) => s,
        Err(why) => return Err(failed(why, log_tail)),
    };
    let videos: Vec<PathBuf> = pieces.iter().map(|p| p.video.clone()).collect();
    match join(ffmpeg, &videos, &out).await {
        Ok(()) => Ok(Rendered {
            video: out,
            sound: None,
            subtitles,
            log_tail,
            probed: None,
            stopped_at: None,
            resumed_time: None,
        }),
        Err(e) => Err(failed(
            format!("cannot join the split render: {e}"),
            log_tail,
        )),
    }
}

/// The subtitles of pieces joined into `out`, as the whole render's
/// `.srt`. Manim keeps a subcaption added in a skipped animation (each
/// piece runs `construct` up to its end), so piece i's file starts with
/// the cues of the pieces before it, and only its own new cues are taken;
/// they are placed by a clock that counted the skipped animations' exact
/// run times, so they move by where the whole render is at the piece's
/// start (the frames before it) minus where the piece was
/// ([`Rendered::resumed_time`]): within a millisecond of the whole
/// render's times. Sound cannot be joined so (Manim drops `add_sound` in
/// skipped animations): an error, as the dry run keeps such scenes whole.
pub async fn joined_subtitles(
    pieces: &[&Rendered],
    ffmpeg: &Ffmpeg,
    out: &Path,
) -> Result<Option<PathBuf>, String> {
    if pieces.iter().any(|p| p.sound.is_some()) {
        return Err("a split render made sound, which pieces cannot place: render it whole".into());
    }
    if pieces.iter().all(|p| p.subtitles.is_none()) {
        return Ok(None);
    }
    let mut cues: Vec<Cue> = Vec::new();
    let mut frames = 0u64;
    let mut fps = 1.0;
    for (i, piece) in pieces.iter().enumerate() {
        let own = match &piece.subtitles {
            Some(srt) => {
                let text =
                    std::fs::read_to_string(srt).map_err(|e| format!("{}: {e}", srt.display()))?;
                parse_srt(&text)
            }
            None => Vec::new(),
        };
        if own.len() < cues.len()
            || own[..cues.len()]
                .iter()
                .zip(&cues)
                .any(|(a, b)| a.text != b.text)
        {
            return Err("the pieces of a split render disagree about its subcaptions".into());
        }
        let shift_ms = match (i, piece.resumed_time) {
            (0, _) => 0.0,
            (_, Some(t)) => (frames as f64 / fps - t) * 1000.0,
            (_, None) => return Err(format!("piece {i} did not say where it started")),
        };
        let moved = |ms: u64| (ms as f64 + shift_ms).round().max(0.0) as u64;
        cues.extend(own[cues.len()..].iter().map(|c| Cue {
            start: moved(c.start),
            end: moved(c.end),
            text: c.text.clone(),
        }));
        // The piece's own report of its format where it made one.
        let info = match &piece.probed {
            Some((info, _)) => info.clone(),
            None => ffmpeg
                .probe_video(&piece.video)
                .await
                .map_err(|e| e.to_string())?,
        };
        frames += info.frames;
        fps = info.fps();
    }
    let srt = out.with_extension("srt");
    crate::fsutil::write_atomic(&srt, to_srt(&cues).as_bytes()).map_err(|e| e.to_string())?;
    Ok(Some(srt))
}

/// Where Manim puts a whole render of `job`: the path
/// [`crate::render::find_output`] looks at first.
fn output_path(job: &RenderJob) -> PathBuf {
    let stem = Path::new(&job.scene.file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    job.media_dir
        .join("videos")
        .join(stem)
        .join(job.settings.folder_name())
        .join(format!("{}.mp4", job.scene.class))
}

/// Concatenates `pieces` into `out` by stream copy (the concat demuxer,
/// `-c copy`), video only. Every piece must have the same codec, profile,
/// pixel format, size, frame rate and time base (a piece with another time
/// base silently corrupts the join); each piece's duration is written into
/// the concat list from its frame count, so no container's rounded
/// duration shifts the next piece off the frame grid. The result is checked
/// to have every piece's frames and written to a temp file renamed into
/// place.
pub async fn join(ffmpeg: &Ffmpeg, pieces: &[PathBuf], out: &Path) -> Result<(), Error> {
    let mut infos = Vec::with_capacity(pieces.len());
    for p in pieces {
        infos.push(ffmpeg.probe_video(p).await?);
    }
    let first = infos
        .first()
        .ok_or_else(|| Error::Incompatible("a split render with no pieces".into()))?;
    check_formats(pieces, &infos)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let list = out.with_file_name(format!(".{name}.pieces.txt"));
    let tmp = out.with_file_name(format!(".{name}.joining.mp4"));
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(&list, concat_list(pieces, &infos)).map_err(|e| Error::io(&list, e))?;
    let joined = ffmpeg.concat_copy(&list, first, &tmp).await;
    let _ = std::fs::remove_file(&list);
    let checked = match joined {
        Ok(()) => check_joined(ffmpeg, &infos, &tmp).await,
        Err(e) => Err(e),
    };
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))
}

/// Fails naming the first piece whose format differs from the first's, and
/// how.
fn check_formats(pieces: &[PathBuf], infos: &[VideoInfo]) -> Result<(), Error> {
    let show = |i: &VideoInfo| {
        format!(
            "{} {} {} {}x{} at {}/{} fps, time base {}/{}",
            i.codec,
            i.profile,
            i.pix_fmt,
            i.width,
            i.height,
            i.fps_num,
            i.fps_den,
            i.tb_num,
            i.tb_den
        )
    };
    let first = &infos[0];
    match infos.iter().position(|i| i.format() != first.format()) {
        None => Ok(()),
        Some(k) => Err(Error::Incompatible(format!(
            "the pieces of a split render differ: {} is {}, but {} is {}",
            pieces[0].display(),
            show(first),
            pieces[k].display(),
            show(&infos[k])
        ))),
    }
}

/// The concat demuxer's list: every piece, quoted, with its exact duration.
fn concat_list(pieces: &[PathBuf], infos: &[VideoInfo]) -> String {
    let frames = infos.iter().map(|i| (String::new(), i.frames));
    let timeline = Timeline::new(infos[0].fps_num, infos[0].fps_den, frames);
    timeline.concat_list(
        pieces
            .iter()
            .map(PathBuf::as_path)
            .zip(infos.iter().map(|i| i.frames)),
    )
}

/// The joined video has the pieces' format and all their frames.
async fn check_joined(ffmpeg: &Ffmpeg, infos: &[VideoInfo], joined: &Path) -> Result<(), Error> {
    let got = ffmpeg.probe_video(joined).await?;
    let frames: u64 = infos.iter().map(|i| i.frames).sum();
    if got.format() == infos[0].format() && got.frames == frames {
        return Ok(());
    }
    Err(Error::Media {
        tool: "ffmpeg",
        what: joined.display().to_string(),
        message: format!(
            "the join has {} frames ({}/{} time base), the pieces {frames} ({}/{})",
            got.frames, got.tb_num, got.tb_den, infos[0].tb_num, infos[0].tb_den
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scene(anims: &[(f64, bool)]) -> SceneAnalysis {
        SceneAnalysis {
            animations: anims
                .iter()
                .map(|&(run_time, updaters)| AnimInfo { run_time, updaters })
                .collect(),
            unsafe_reason: None,
        }
    }

    fn plain(times: &[f64]) -> SceneAnalysis {
        scene(&times.iter().map(|&t| (t, false)).collect::<Vec<_>>())
    }

    #[test]
    fn two_pieces_balance_run_time() {
        // 2+2 | 1+3: 4 and 4.
        assert_eq!(split_point(&plain(&[2.0, 2.0, 1.0, 3.0]), 2), vec![2]);
        // 1+1+1+1+1+1 | ... : the middle.
        assert_eq!(split_point(&plain(&[1.0; 8]), 2), vec![4]);
    }

    #[test]
    fn three_pieces_minimise_the_longest() {
        let a = plain(&[1.0, 2.0, 3.0, 1.0, 2.0, 3.0]);
        // 1+2 | 3+1 | 2+3: the longest is 5; two pieces could not beat 6.
        let s = split_point(&a, 3);
        assert_eq!(s, vec![2, 4]);
        let ranges = piece_ranges(&s);
        assert_eq!(ranges, vec![(0, Some(1)), (2, Some(3)), (4, None)]);
    }

    #[test]
    fn more_pieces_only_when_they_shorten_the_longest() {
        // One 6 s animation dominates: 3 pieces cannot beat 2.
        let a = plain(&[6.0, 2.0, 2.0]);
        assert_eq!(split_point(&a, 3), vec![1]);
    }

    #[test]
    fn no_split_before_an_updater_ran() {
        // Updaters from animation 2 on: a piece may start at 1 or 2, not 3.
        let a = scene(&[(2.0, false), (2.0, false), (2.0, true), (2.0, true)]);
        assert_eq!(a.last_safe_start(), 2);
        assert_eq!(split_point(&a, 2), vec![2]);
        // A third piece only when it shortens the longest: 2|2|4 is no
        // better than 4|4; 3|3|2 beats 3|5.
        assert_eq!(split_point(&a, 4), vec![2]);
        let c = scene(&[(3.0, false), (3.0, false), (1.0, true), (1.0, true)]);
        assert_eq!(split_point(&c, 2), vec![1]);
        assert_eq!(split_point(&c, 3), vec![1, 2]);
        // Updaters from the start: nothing to split.
        let b = scene(&[(5.0, true), (5.0, false), (5.0, false)]);
        assert_eq!(split_point(&b, 2), Vec::<u32>::new());
    }

    #[test]
    fn short_or_unsafe_scenes_stay_whole() {
        // Too short: every piece needs MIN_PIECE_SECONDS.
        assert!(split_point(&plain(&[1.0, 1.0, 1.5]), 2).is_empty());
        assert_eq!(split_point(&plain(&[1.0, 1.0, 1.0, 1.0]), 3), vec![2]);
        assert!(split_point(&plain(&[10.0]), 2).is_empty());
        assert!(split_point(&plain(&[]), 2).is_empty());
        assert!(split_point(&plain(&[3.0, 3.0]), 1).is_empty());
        let mut a = plain(&[3.0, 3.0, 3.0]);
        a.unsafe_reason = Some("adds sound (add_sound)".into());
        assert!(split_point(&a, 2).is_empty());
    }

    #[test]
    fn splits_are_always_safe_and_balanced_enough() {
        // Every pattern of 1..=9 animations with small run times and an
        // updater start: splits increase, respect the safe limit and the
        // minimum piece length, and never leave a piece longer than the
        // whole scene.
        for n in 1..=9usize {
            for first in 0..=n {
                let anims: Vec<(f64, bool)> = (0..n)
                    .map(|i| (0.5 + ((i * 7) % 5) as f64, i >= first))
                    .collect();
                let a = scene(&anims);
                for p in 1..=4 {
                    let s = split_point(&a, p);
                    assert!(s.len() < p.max(1), "{anims:?} {p} {s:?}");
                    assert!(s.windows(2).all(|w| w[0] < w[1]));
                    assert!(
                        s.iter()
                            .all(|&k| k >= 1 && k as usize <= a.last_safe_start())
                    );
                    let mut bounds = vec![0usize];
                    bounds.extend(s.iter().map(|&k| k as usize));
                    bounds.push(n);
                    for w in bounds.windows(2) {
                        let t: f64 = anims[w[0]..w[1]].iter().map(|x| x.0).sum();
                        assert!(s.is_empty() || t >= MIN_PIECE_SECONDS - 1e-9);
                    }
                }
            }
        }
    }

    #[test]
    fn events_parse_and_must_be_complete() {
        let text = concat!(
            "{\"event\":\"started\",\"pid\":1}\n",
            "{\"event\":\"plan\",\"index\":1,\"run_time\":2.0,\"updaters\":true}\n",
            "{\"event\":\"plan\",\"index\":0,\"run_time\":1.5,\"updaters\":false}\n",
            "{\"event\":\"unsafe\",\"reason\":\"reads the clock (time.time)\"}\n",
            "{\"event\":\"unsafe\",\"reason\":\"reads the clock (time.time)\"}\n",
        );
        assert_eq!(
            SceneAnalysis::from_events(text),
            Err("the dry run did not finish".into())
        );
        let done = format!("{text}{{\"event\":\"analyzed\",\"animations\":2}}\n");
        let a = SceneAnalysis::from_events(&done).unwrap();
        assert_eq!(
            a.animations,
            vec![
                AnimInfo {
                    run_time: 1.5,
                    updaters: false
                },
                AnimInfo {
                    run_time: 2.0,
                    updaters: true
                }
            ]
        );
        assert_eq!(
            a.unsafe_reason.as_deref(),
            Some("reads the clock (time.time)")
        );
        assert_eq!(a.run_time(), 3.5);
        let missing = format!("{text}{{\"event\":\"analyzed\",\"animations\":3}}\n");
        let unsure = SceneAnalysis::from_events(&missing).unwrap();
        assert!(split_point(&unsure, 2).is_empty());
        assert!(unsure.unsafe_reason.unwrap().contains("all 3 animations"));
    }

    #[test]
    fn concat_list_quotes_paths_and_gives_exact_durations() {
        let infos = [VideoInfo::fixture(15, 68), VideoInfo::fixture(15, 53)];
        let pieces = [PathBuf::from("/m/it's/a.mp4"), PathBuf::from("/m/b.mp4")];
        assert_eq!(
            concat_list(&pieces, &infos),
            "file '/m/it'\\''s/a.mp4'\nduration 4.533333\nfile '/m/b.mp4'\nduration 3.533334\n"
        );
    }

    #[test]
    fn formats_must_agree() {
        let a = VideoInfo::fixture(15, 10);
        let b = VideoInfo {
            tb_den: 90000,
            ..VideoInfo::fixture(15, 20)
        };
        let p = [PathBuf::from("a.mp4"), PathBuf::from("b.mp4")];
        assert!(check_formats(&p, &[a.clone(), a.clone()]).is_ok());
        let e = check_formats(&p, &[a, b]).unwrap_err().to_string();
        assert!(e.contains("time base 1/90000"), "{e}");
        assert!(e.contains("b.mp4"), "{e}");
    }
}
