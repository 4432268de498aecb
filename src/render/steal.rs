//! Taking the rest of a running render onto a job slot that would
//! otherwise idle at the end of a build.
//!
//! When the last renders run and a slot frees, the render with the most
//! left to do is split where it stands: a thief makes the dry run of
//! [`super::split`] (which animations may start a piece), picks an animation
//! K ahead of the owner that balances what each has left, and asks the
//! owner, through a control file its render driver reads before every
//! animation, to stop before K; the thief renders `-n K` meanwhile. The
//! owner's driver answers once: it stops exactly before K (Manim ends the
//! scene early, as `-n 0,K-1` would) or declines because it is already past
//! K. A stopped owner joins its video with the thief's by stream copy (or
//! renders the rest itself if the thief failed); a declining or finished
//! owner cancels the thief. Either way the scene's video is frame for frame
//! the whole render's: the split point is one the dry run found safe.
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::split::{self, SceneAnalysis};
use super::{Progress, RenderFailure, RenderJob, Rendered, Renderer};
use crate::ffmpeg::Ffmpeg;
use crate::scene::SceneError;

/// The control file's variable for the render driver.
pub const CONTROL_VAR: &str = "PARENDER_CONTROL";

/// A steal must shorten the owner's remaining time by at least this much
/// (seconds): less is within the estimate's error.
const MIN_GAIN: f64 = 0.5;

type PieceResult = Result<Rendered, RenderFailure>;

/// A render others may take the rest of: its job (with the control file in
/// its environment), how far it got, and whether it was stolen.
pub struct Victim {
    job: RenderJob,
    control: PathBuf,
    /// Expected render seconds (for picking the victim with most left).
    expected: f64,
    cancel: CancellationToken,
    started: Mutex<Option<Instant>>,
    /// When its first animation was reported: its pace is measured from
    /// there (not from the start, which adds the fork and `construct`).
    first_drawn: Mutex<Option<Instant>>,
    /// The animation it renders now, plus one (0: none yet).
    current: AtomicU32,
    state: Mutex<State>,
}

enum State {
    Open,
    /// A thief is looking at it (one attempt per render).
    Claimed,
    Stolen {
        at: u32,
        piece: oneshot::Receiver<PieceResult>,
        stop: CancellationToken,
    },
    Closed,
}

impl Victim {
    /// `job` as its owner will render it: with [`CONTROL_VAR`] set to a
    /// file in its media folder. `cancel` is the owner's (a thief stops
    /// with it).
    pub fn new(mut job: RenderJob, expected: f64, cancel: CancellationToken) -> Victim {
        let control = job.media_dir.join("parender-control");
        let value = control.to_string_lossy().into_owned();
        job.extra_env.push((CONTROL_VAR.into(), value));
        Victim {
            job,
            control,
            expected,
            cancel,
            started: Mutex::new(None),
            first_drawn: Mutex::new(None),
            current: AtomicU32::new(0),
            state: Mutex::new(State::Open),
        }
    }

    /// The job the owner renders.
    pub fn job(&self) -> &RenderJob {
        &self.job
    }

    /// The owner's job for a thief: no control file, and a media folder of
    /// its own (`steal/` in the owner's) for the dry run and the rest.
    fn thief_job(&self) -> RenderJob {
        let mut job = self.job.clone();
        job.extra_env.retain(|(k, _)| k != CONTROL_VAR);
        job.media_dir = self.job.media_dir.join("steal");
        job
    }

    /// The owner's render starts (an old control file is removed first).
    pub fn begin(&self) {
        let _ = std::fs::remove_file(&self.control);
        if let Ok(mut s) = self.started.lock() {
            *s = Some(Instant::now());
        }
    }

    /// The owner's render reached animation `index`.
    pub fn progress(&self, index: u32) {
        self.current.fetch_max(index + 1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_drawn.lock() {
            first.get_or_insert_with(Instant::now);
        }
    }

    /// Seconds left by the expected time, if it runs, has shown an
    /// animation, and no thief has looked at it yet.
    pub fn open_and_left(&self) -> Option<f64> {
        let started = (*self.started.lock().ok()?)?;
        (self.unclaimed() && self.current.load(Ordering::Relaxed) > 0)
            .then(|| self.expected - started.elapsed().as_secs_f64())
    }

    /// Whether it is still running: a thief may keep waiting for it.
    pub fn running(&self) -> bool {
        !matches!(self.state.lock().ok().as_deref(), Some(State::Closed))
    }

    /// Whether no thief has looked at it and it has not finished.
    pub fn unclaimed(&self) -> bool {
        matches!(self.state.lock().ok().as_deref(), Some(State::Open))
    }

    /// Its owner's task ended without settling (it failed, was cancelled,
    /// or never rendered): closed, and a thief at work is stopped.
    pub fn abandon(&self) {
        if let State::Stolen { stop, .. } = self.close() {
            stop.cancel();
        }
    }

    fn claim(&self) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if matches!(*s, State::Open) {
            *s = State::Claimed;
            return true;
        }
        false
    }

    /// Whether a thief could save [`MIN_GAIN`] at all, judged before its
    /// dry run by [`best_gain`].
    fn worth_a_dry_run(&self) -> bool {
        let times = || {
            let started = (*self.started.lock().ok()?)?;
            let first = (*self.first_drawn.lock().ok()?)?;
            Some((started, first))
        };
        let Some((started, first)) = times() else {
            return false;
        };
        let start = first.duration_since(started).as_secs_f64();
        let left = self.expected - started.elapsed().as_secs_f64();
        best_gain(left, start) >= MIN_GAIN
    }

    /// The animation it renders now and the seconds since its first one
    /// was reported.
    fn position(&self) -> Option<(usize, f64)> {
        let first = (*self.first_drawn.lock().ok()?)?;
        let current = self.current.load(Ordering::Relaxed).checked_sub(1)?;
        Some((current as usize, first.elapsed().as_secs_f64()))
    }

    /// Records the steal at `at`, unless the owner finished meanwhile.
    fn stolen(
        &self,
        at: u32,
        piece: oneshot::Receiver<PieceResult>,
        stop: CancellationToken,
    ) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if !matches!(*s, State::Claimed) {
            return false;
        }
        *s = State::Stolen { at, piece, stop };
        true
    }

    /// The owner's render returned: closes the victim and gives back what
    /// a thief was doing.
    fn close(&self) -> State {
        match self.state.lock() {
            Ok(mut s) => std::mem::replace(&mut *s, State::Closed),
            Err(_) => State::Closed,
        }
    }
}

/// The most a steal can save on a render with `left` seconds to go whose
/// own start took `start`: a dry run and the thief's piece each take about
/// `start` before they draw, the rest is shared evenly, and while the dry
/// run takes CPU from the owner (on a machine whose cores the renders
/// fill) the owner loses about half of it.
fn best_gain(left: f64, start: f64) -> f64 {
    (left - 3.0 * start) / 2.0
}

/// The split point for taking the rest of a render that is at animation
/// `current`, `elapsed` seconds after its first one, by the dry run `a`,
/// when a piece
/// starts `fast_forward` seconds after its process does: K and the
/// seconds it saves. Only a safe K at least two animations ahead (the
/// owner moves on while it is asked), leaving the thief at least
/// [`split::MIN_PIECE_SECONDS`] of video, and only when it saves
/// [`MIN_GAIN`]. The owner's pace is its elapsed time per second of video
/// done (half of the current animation counted as done).
pub fn steal_point(
    a: &SceneAnalysis,
    current: usize,
    elapsed: f64,
    fast_forward: f64,
) -> Option<(u32, f64)> {
    let t: Vec<f64> = a.animations.iter().map(|x| x.run_time).collect();
    let n = t.len();
    if a.unsafe_reason.is_some() || current >= n {
        return None;
    }
    let sum = |r: std::ops::Range<usize>| t[r].iter().sum::<f64>();
    let done = sum(0..current) + 0.5 * t[current];
    if done < 0.25 || elapsed <= 0.0 {
        return None;
    }
    let pace = elapsed / done;
    let whole = pace * (sum(current..n) - 0.5 * t[current]);
    let first = (current + 2).max(2);
    let last = a.last_safe_start().min(n - 1);
    (first..=last)
        .filter(|&k| sum(k..n) >= split::MIN_PIECE_SECONDS - 1e-9)
        .map(|k| {
            let owner = pace * (sum(current..k) - 0.5 * t[current]);
            let thief = fast_forward + pace * sum(k..n);
            (k, owner.max(thief))
        })
        .min_by(|x, y| x.1.total_cmp(&y.1))
        .map(|(k, finish)| (k as u32, whole - finish))
        .filter(|(_, gain)| *gain >= MIN_GAIN)
}

/// A thief's attempt on `victim`, on the job slot its caller holds: the dry
/// run, the split point, the request, and `-n K`. Returns the split point
/// when it stole (the owner then takes the piece); `None` when the victim
/// was taken, finished, unsafe or not worth it.
/// `announce` is told K before the piece renders.
pub async fn steal(
    victim: &Victim,
    renderer: &dyn Renderer,
    progress: Progress<'_>,
    announce: &(dyn Fn(u32) + Sync),
) -> Option<u32> {
    if !victim.claim() || !victim.worth_a_dry_run() {
        return None;
    }
    let stop = victim.cancel.child_token();
    let dry = victim.thief_job();
    let t = Instant::now();
    let a = split::analyze(renderer, &dry, &stop).await.ok()?;
    let fast_forward = t.elapsed().as_secs_f64();
    let (current, elapsed) = victim.position()?;
    let point = steal_point(&a, current, elapsed, fast_forward);
    tracing::debug!(
        "steal {}: at animation {current} of {} after {elapsed:.2}s, dry run {fast_forward:.2}s, safe up to {}, unsafe: {:?} -> {point:?}",
        victim.job.scene.id.0,
        a.animations.len(),
        a.last_safe_start(),
        a.unsafe_reason
    );
    let (k, _gain) = point?;
    let (tx, rx) = oneshot::channel();
    if !victim.stolen(k, rx, stop.clone()) {
        return None;
    }
    // The request goes out only once the owner can find the piece.
    if crate::fsutil::write_atomic(&victim.control, k.to_string().as_bytes()).is_err() {
        stop.cancel();
        let _ = tx.send(Err(RenderFailure::Cancelled));
        return None;
    }
    announce(k);
    let piece = rest_job(&dry, k);
    let own = move |i: u32| {
        if i >= k {
            progress(i)
        }
    };
    let result = renderer.render(&piece, &own, &stop).await;
    let _ = tx.send(result);
    Some(k)
}

/// A thief's job (see [`Victim::thief_job`]) from animation `k` on, in
/// its own media folder.
fn rest_job(thief: &RenderJob, k: u32) -> RenderJob {
    let mut rest = thief.clone();
    rest.media_dir = thief.media_dir.join("piece-rest");
    rest.settings
        .manim_args
        .extend(["-n".into(), k.to_string()]);
    rest
}

/// The owner's render of `victim` returned `out`: when it stopped for a
/// thief, its video joined with the thief's piece (or with the rest
/// rendered here, if the thief failed); otherwise `out` as it is, and a
/// thief still at work is stopped.
pub async fn settle(
    victim: &Victim,
    out: PieceResult,
    renderer: &dyn Renderer,
    ffmpeg: &Ffmpeg,
    progress: Progress<'_>,
) -> Result<Rendered, RenderFailure> {
    let state = victim.close();
    let _ = std::fs::remove_file(&victim.control);
    let stopped = out.as_ref().ok().and_then(|o| o.stopped_at);
    let (Some(k), Ok(out)) = (stopped, &out) else {
        if let State::Stolen { stop, .. } = state {
            stop.cancel();
        }
        return out;
    };
    let out = out.clone();
    let piece = match state {
        State::Stolen { at, piece, .. } if at == k => piece.await.ok(),
        _ => None,
    };
    let rest = match piece {
        Some(Ok(r)) => r,
        Some(Err(RenderFailure::Cancelled)) if victim.cancel.is_cancelled() => {
            return Err(RenderFailure::Cancelled);
        }
        // The thief failed (or there was none): the rest is rendered here.
        _ => {
            let rest = rest_job(&victim.thief_job(), k);
            renderer.render(&rest, progress, &victim.cancel).await?
        }
    };
    join(out, rest, ffmpeg).await
}

/// The owner's video (animations before K) and the rest, joined where the
/// owner's video is.
async fn join(owner: Rendered, rest: Rendered, ffmpeg: &Ffmpeg) -> Result<Rendered, RenderFailure> {
    let fail = |message: String| RenderFailure::Failed {
        error: SceneError::plain(message),
        traceback: String::new(),
        log_tail: format!("{}\n--- the rest\n{}", owner.log_tail, rest.log_tail),
    };
    let subtitles = match split::joined_subtitles(&[&owner, &rest], ffmpeg, &owner.video).await {
        Ok(s) => s,
        Err(why) => return Err(fail(why)),
    };
    let joined = sibling(&owner.video, "joined");
    let pieces = [owner.video.clone(), rest.video.clone()];
    if let Err(e) = split::join(ffmpeg, &pieces, &joined).await {
        return Err(fail(format!("cannot join the two pieces: {e}")));
    }
    if let Err(e) = std::fs::rename(&joined, &owner.video) {
        return Err(fail(format!("cannot move {}: {e}", joined.display())));
    }
    Ok(Rendered {
        log_tail: format!("{}\n--- the rest\n{}", owner.log_tail, rest.log_tail),
        subtitles,
        probed: None,
        stopped_at: None,
        resumed_time: None,
        ..owner
    })
}

/// `video` with `.tag` before its extension, beside it.
fn sibling(video: &Path, tag: &str) -> PathBuf {
    let stem = video.file_stem().unwrap_or_default().to_string_lossy();
    video.with_file_name(format!("{stem}.{tag}.mp4"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::split::AnimInfo;

    fn scene(times: &[f64]) -> SceneAnalysis {
        SceneAnalysis {
            animations: times
                .iter()
                .map(|&run_time| AnimInfo {
                    run_time,
                    updaters: false,
                })
                .collect(),
            unsafe_reason: None,
        }
    }

    #[test]
    fn the_rest_is_split_where_both_finish_together() {
        // Ten 1-s animations, at animation 2 after 2.5 s: 1 s of wall per
        // second of video, 7.5 s left. Owner to K: K - 2.5; thief: 0.5 +
        // 10 - K; together at K = 6.5, so K = 6 or 7 (finish 4.5, 3 s
        // sooner).
        let (k, gain) = steal_point(&scene(&[1.0; 10]), 2, 2.5, 0.5).unwrap();
        assert!(k == 6 || k == 7, "{k}");
        assert!((gain - 3.0).abs() < 1e-9, "{gain}");
    }

    #[test]
    fn never_just_ahead_of_the_owner_nor_for_too_little() {
        // At animation 6 of 10: K = 8 is the first possible one, and the
        // last that leaves the thief 2 s of video.
        let (k, _) = steal_point(&scene(&[1.0; 10]), 6, 6.5, 0.2).unwrap();
        assert_eq!(k, 8);
        // At 7, a K two ahead leaves 1 s: not worth a process.
        assert_eq!(steal_point(&scene(&[1.0; 10]), 7, 7.5, 0.2), None);
        // A slow start for the thief eats the gain.
        assert_eq!(steal_point(&scene(&[1.0; 4]), 0, 0.5, 3.0), None);
        // No pace yet.
        assert_eq!(steal_point(&scene(&[0.2; 10]), 0, 0.5, 0.1), None);
    }

    #[test]
    fn no_dry_run_where_even_the_best_split_saves_too_little() {
        // The example's Outro at 1080p: 3.1 s left, 1.3 s to its first
        // animation. A dry run and the piece's own start eat the gain.
        assert!(best_gain(3.1, 1.3) < MIN_GAIN);
        // A long render with a quick start is worth a look.
        assert!(best_gain(6.0, 1.0) >= MIN_GAIN);
        // The bound is not below what steal_point finds after the dry run:
        // 7.5 s left after starting in 0.5 s saves 3 s there (see above).
        let (_, gain) = steal_point(&scene(&[1.0; 10]), 2, 2.5, 0.5).unwrap();
        assert!(best_gain(7.5 + 0.5, 0.5) >= gain);
    }

    #[test]
    fn only_where_the_dry_run_says_it_is_safe() {
        let mut a = scene(&[1.0; 10]);
        a.animations[4].updaters = true;
        // K may be 4 at most (no updater ran before it).
        let (k, _) = steal_point(&a, 1, 1.5, 0.2).unwrap();
        assert!(k <= 4, "{k}");
        a.unsafe_reason = Some("reads the clock".into());
        assert_eq!(steal_point(&a, 1, 1.5, 0.2), None);
    }
}
