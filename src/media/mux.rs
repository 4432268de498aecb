//! Combining a scene with its narration and its own sound, to whole frames.
//!
//! A segment lasts max(video, narration, the scene's own sound), rounded up
//! to a whole frame, plus the gap that follows it. When the audio (or the
//! gap) is longer than the video, the last frame is held: only the held tail
//! is encoded, with the codec settings, frame rate and time base of Manim's
//! own file, and joined to it by stream copy, so the scene's own frames stay
//! bit-identical; a long hold is half-second units encoded once and joined
//! as often as needed, then the rest ([`HOLD_UNIT_SECONDS`]). The narration
//! and the scene's sound (`add_sound`, manim-voiceover) are decoded to PCM
//! here and mixed sample-exact from the scene's first frame, at their own
//! levels (summed, saturating; clipping is counted and reported, not hidden
//! by a limiter). The mix is kept as FLAC
//! (lossless: decoding gives back every sample; its length in samples is in
//! the meta), a sixth or so of the PCM for speech, and decoded again when
//! [`crate::media::stitch`] lays the track out by sample count and encodes it
//! as one track: no AAC priming or frame rounding at scene boundaries. A
//! scene's narration is decoded ahead, while the scene renders ([`Ahead`]).
//!
//! A narration file (or a scene's own sound) that is empty, missing or not
//! audio is that scene's problem, not the build's: the scene is built
//! without it (silence) and the problem is reported with the segment.
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analyze::hashcache::HashCache;
use crate::error::Error;
use crate::ffmpeg::{BYTES_PER_SAMPLE, Ffmpeg, VideoInfo};
use crate::scene::SceneId;

/// One video file of a segment and its frame count.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub path: PathBuf,
    pub frames: u64,
}

/// Which of a scene's audio inputs a [`Problem`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioSource {
    /// The narration file paired with the scene.
    Narration,
    /// The scene's own sound (`add_sound`), from its render.
    Sound,
}

/// An audio input that was left out of a segment, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub source: AudioSource,
    /// What is wrong with it: `is empty (0 bytes)`, `is not audio (...)`.
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub scene: SceneId,
    /// Video files to join by stream copy, in order (the render, then the hold).
    pub pieces: Vec<Piece>,
    pub info: VideoInfo,
    /// Frames of the whole segment, hold and gap included.
    pub frames: u64,
    /// The segment's audio (narration and the scene's own sound, mixed;
    /// FLAC of 48 kHz stereo 16-bit) and its exact length in samples.
    pub audio: Option<(PathBuf, u64)>,
    /// Samples where narration and the scene's sound together clipped.
    pub clipped: u64,
    /// Audio inputs left out (the segment is silent where they would be).
    pub problems: Vec<Problem>,
}

impl Segment {
    pub fn seconds(&self) -> f64 {
        self.frames as f64 * self.info.fps_den as f64 / self.info.fps_num as f64
    }
}

/// Bumped whenever what a cached mux holds changes meaning.
pub const MUX_FORMAT: &str = "parender-mux-v5";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MuxMeta {
    frames: u64,
    /// blake3 of `hold.mp4`: the held frames after the units (all of them
    /// when there are none).
    hold: Option<String>,
    /// A long hold's unit, joined `count` times before `hold.mp4`.
    #[serde(default)]
    unit: Option<HeldUnit>,
    /// blake3 of `audio.flac` and its length in samples, with any audio.
    audio: Option<(String, u64)>,
    #[serde(default)]
    clipped: u64,
    /// Inputs left out, reported again on every use of the cached mux.
    #[serde(default)]
    problems: Vec<Problem>,
}

/// `hold-unit.mp4` of a mux folder: `frames` held frames, joined `count`
/// times by stream copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeldUnit {
    hash: String,
    frames: u64,
    count: u64,
}

/// The held frames' files in a mux folder.
const HOLD: &str = "hold.mp4";
const HOLD_UNIT: &str = "hold-unit.mp4";

/// A long hold is made of units of this length, encoded once and joined by
/// stream copy, so its cost stops growing with its length: x264 spends
/// 7 ms per held 1080p frame (137 held frames at 60 fps: 1.4-1.7 CPU-s in
/// one file, 0.7-0.8 s as 30-frame units and the rest). Each unit starts with a
/// key frame of the same picture (about 13 kB at 1080p).
const HOLD_UNIT_SECONDS: f64 = 0.5;

/// How `frames` held frames are made: `count` copies of a unit of `unit`
/// frames, then `rest` frames in a file of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HoldPlan {
    unit: u64,
    count: u64,
    rest: u64,
}

fn hold_plan(frames: u64, fps: f64) -> HoldPlan {
    let unit = (fps * HOLD_UNIT_SECONDS).ceil();
    if !(1.0..1e6).contains(&unit) || frames < 2 * unit as u64 {
        return HoldPlan {
            unit: 0,
            count: 0,
            rest: frames,
        };
    }
    let unit = unit as u64;
    HoldPlan {
        unit,
        count: frames / unit,
        rest: frames % unit,
    }
}

/// Inputs of one scene's mux: the rendered video, its own sound, its
/// narration, the gap.
pub struct MuxInput<'a> {
    pub scene: &'a SceneId,
    pub video: &'a Path,
    pub video_hash: &'a str,
    pub info: &'a VideoInfo,
    /// The scene's own sound (a WAV from its render) and its hash.
    pub sound: Option<(&'a Path, &'a str)>,
    pub audio: Option<&'a Path>,
    pub gap_frames: u64,
    /// The narration, decoded and encoded while the scene rendered.
    pub ahead: Option<&'a Ahead>,
}

/// A scene's narration decoded and kept as FLAC ahead of its mux, while the
/// scene renders (on a core the render leaves idle), so the mux after the
/// render has only the held tail left to encode. Used when the narration
/// is still the one decoded (same hash) and the render has no sound of its
/// own to mix in; otherwise the mux decodes as usual. Its files live in a
/// locked temp folder (in the build's scratch folder), removed when it is
/// dropped.
pub struct Ahead {
    hash: String,
    dir: crate::fsutil::LockedTempDir,
    /// `audio.flac` in `dir` and its length in samples, if it has any.
    samples: Option<u64>,
    problems: Vec<Problem>,
}

/// Decodes `audio` (a narration) ahead of its mux, in a temp folder in
/// `parent`; `None` when it cannot be read at all (the mux then says why).
pub async fn decode_ahead(
    ff: &Ffmpeg,
    audio: &Path,
    parent: &Path,
    hashes: &HashCache,
) -> Result<Option<Ahead>, Error> {
    let Ok(Some(hash)) = hashes.hash(audio) else {
        return Ok(None);
    };
    let dir = crate::fsutil::locked_tempdir(parent, ".tmp-")?;
    let flac = dir.path().join(AUDIO);
    let mut problems = Vec::new();
    let n = decode_or_leave_out(
        ff,
        audio,
        (&flac, Decoded::Flac),
        AudioSource::Narration,
        &mut problems,
    )
    .await?;
    let samples = n.filter(|n| *n > 0);
    if samples.is_none() {
        let _ = std::fs::remove_file(&flac);
    }
    Ok(Some(Ahead {
        hash,
        dir,
        samples,
        problems,
    }))
}

/// Muxes are cached under `cache` by (video hash, audio content hash, gap,
/// format): a changed narration re-muxes its scene without re-rendering
/// it, and an unchanged one is not decoded or encoded again. A cache hit
/// marks the mux used now (`gc` evicts the least recently used).
pub async fn mux(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    cache: &Path,
    hashes: &HashCache,
) -> Result<Segment, Error> {
    // A narration that is gone or unreadable is left out, and said so.
    let mut problems = Vec::new();
    let audio_hash = match input.audio {
        Some(a) => match hashes.hash(a) {
            Ok(Some(h)) => Some(h),
            Ok(None) => {
                problems.push(Problem {
                    source: AudioSource::Narration,
                    message: "is missing or not a regular file".into(),
                });
                None
            }
            Err(e) => {
                problems.push(Problem {
                    source: AudioSource::Narration,
                    message: format!("cannot be read ({})", without_path(&e.to_string(), a)),
                });
                None
            }
        },
        None => None,
    };
    let input = &MuxInput {
        audio: input.audio.filter(|_| audio_hash.is_some()),
        ahead: input
            .ahead
            .filter(|a| input.sound.is_none() && audio_hash.as_deref() == Some(a.hash.as_str())),
        ..*input
    };
    let key = blake3::hash(
        serde_json::json!([
            MUX_FORMAT,
            input.video_hash,
            input.sound.map(|s| s.1),
            audio_hash,
            input.gap_frames,
            input.info.format()
        ])
        .to_string()
        .as_bytes(),
    )
    .to_hex()
    .to_string();
    let dir = cache.join(&key);
    // Problems found now come first, then those kept with the mux.
    let with_problems = |mut seg: Segment| {
        seg.problems.splice(0..0, problems.iter().cloned());
        seg
    };
    if let Some(seg) = cached(&dir, input, hashes)? {
        return Ok(with_problems(seg));
    }
    // Locked while it is built: a later build or gc removes it only if this
    // process dies (kill -9) before it is renamed into place.
    let tmp = crate::fsutil::locked_tempdir(cache, ".tmp-")?;
    let meta = build(ff, input, tmp.path(), hashes).await?;
    let json = serde_json::to_vec(&meta).map_err(|e| Error::Other(e.to_string()))?;
    crate::fsutil::write_atomic(&tmp.path().join("meta.json"), &json)?;
    let (built, _lock) = tmp.keep();
    if std::fs::rename(&built, &dir).is_ok() {
        let _ = std::fs::remove_file(dir.join(crate::fsutil::DIR_LOCK));
    } else {
        // Another process cached the same mux meanwhile: use theirs.
        let _ = std::fs::remove_dir_all(&built);
    }
    let seg = cached(&dir, input, hashes)?.ok_or_else(|| {
        Error::Other(format!(
            "the mux of {} did not persist in {}",
            input.scene,
            dir.display()
        ))
    })?;
    Ok(with_problems(seg))
}

/// The cached segment in `dir`, if it is whole; marks it used.
fn cached(dir: &Path, input: &MuxInput<'_>, hashes: &HashCache) -> Result<Option<Segment>, Error> {
    let meta_path = dir.join("meta.json");
    let Ok(bytes) = std::fs::read(&meta_path) else {
        return Ok(None);
    };
    let Ok(meta) = serde_json::from_slice::<MuxMeta>(&bytes) else {
        let _ = std::fs::remove_dir_all(dir);
        return Ok(None);
    };
    let mut pieces = vec![Piece {
        path: input.video.to_path_buf(),
        frames: input.info.frames,
    }];
    let intact = |name: &str, want: &str| -> Result<bool, Error> {
        Ok(hashes.hash(&dir.join(name))?.as_deref() == Some(want))
    };
    // Held frames after the units; `None` when the frames do not add up
    // (not a mux this version wrote).
    let rest = meta
        .unit
        .as_ref()
        .map_or(Some(0), |u| {
            u.frames.checked_mul(u.count).filter(|n| *n > 0)
        })
        .and_then(|units| {
            meta.frames
                .checked_sub(input.info.frames)?
                .checked_sub(units)
        })
        .filter(|rest| (*rest > 0) == meta.hold.is_some());
    let Some(rest) = rest else {
        let _ = std::fs::remove_dir_all(dir);
        return Ok(None);
    };
    if let Some(u) = &meta.unit {
        if !intact(HOLD_UNIT, &u.hash)? {
            let _ = std::fs::remove_dir_all(dir);
            return Ok(None);
        }
        let unit = Piece {
            path: dir.join(HOLD_UNIT),
            frames: u.frames,
        };
        pieces.extend(std::iter::repeat_n(unit, u.count as usize));
    }
    if let Some(h) = &meta.hold {
        if !intact(HOLD, h)? {
            let _ = std::fs::remove_dir_all(dir);
            return Ok(None);
        }
        pieces.push(Piece {
            path: dir.join(HOLD),
            frames: rest,
        });
    }
    let audio = match &meta.audio {
        Some((h, n)) => {
            if !intact(AUDIO, h)? {
                let _ = std::fs::remove_dir_all(dir);
                return Ok(None);
            }
            Some((dir.join(AUDIO), *n))
        }
        None => None,
    };
    if let Ok(f) = std::fs::File::options().write(true).open(&meta_path) {
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    Ok(Some(Segment {
        scene: input.scene.clone(),
        pieces,
        info: input.info.clone(),
        frames: meta.frames,
        audio,
        clipped: meta.clipped,
        problems: meta.problems,
    }))
}

/// The segment's audio in a mux folder.
const AUDIO: &str = "audio.flac";

/// The segment's audio as FLAC and the held tail, into `work`.
async fn build(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    work: &Path,
    hashes: &HashCache,
) -> Result<MuxMeta, Error> {
    let info = input.info;
    let audio = segment_audio(ff, input, work).await?;
    let samples = audio.flac.as_ref().map_or(0, |(_, n)| *n);
    let audio_frames = info.frames_for_samples(samples);
    let frames = info.frames.max(audio_frames) + input.gap_frames;
    let plan = hold_plan(frames - info.frames, info.fps());
    encode_hold(ff, input, plan, work).await?;
    let hash_of = |name: &str| Ok::<_, Error>(hashes.hash(&work.join(name))?.unwrap_or_default());
    let hold_hash = (plan.rest > 0).then(|| hash_of(HOLD)).transpose()?;
    let unit = match plan.count {
        0 => None,
        count => Some(HeldUnit {
            hash: hash_of(HOLD_UNIT)?,
            frames: plan.unit,
            count,
        }),
    };
    let flac = match audio.flac {
        Some((flac, n)) => Some((hashes.hash(&flac)?.unwrap_or_default(), n)),
        None => None,
    };
    Ok(MuxMeta {
        frames,
        hold: hold_hash,
        unit,
        audio: flac,
        clipped: audio.clipped,
        problems: audio.problems,
    })
}

/// A segment's audio, kept: `work/audio.flac` and its length in samples
/// (none when silent), the samples that clipped, the inputs left out.
struct SegmentAudio {
    flac: Option<(PathBuf, u64)>,
    clipped: u64,
    problems: Vec<Problem>,
}

/// The segment's audio from the narration decoded ahead, or decoded (and
/// mixed with the scene's own sound) now.
async fn segment_audio(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    work: &Path,
) -> Result<SegmentAudio, Error> {
    if let Some(a) = input.ahead {
        return Ok(SegmentAudio {
            flac: take_ahead(a, work)?,
            clipped: 0,
            problems: a.problems.clone(),
        });
    }
    if input.sound.is_none() {
        return narration_only(ff, input.audio, work).await;
    }
    let mixed = decode_and_mix(ff, input, work).await?;
    let flac = match mixed.pcm {
        Some((pcm, n)) if n > 0 => {
            let flac = work.join(AUDIO);
            encode_flac(ff, &pcm, &flac).await?;
            let _ = std::fs::remove_file(&pcm);
            Some((flac, n))
        }
        Some((pcm, _)) => {
            let _ = std::fs::remove_file(&pcm);
            None
        }
        None => None,
    };
    Ok(SegmentAudio {
        flac,
        clipped: mixed.clipped,
        problems: mixed.problems,
    })
}

/// A segment whose render has no sound: the narration, if any, decoded
/// straight to `work/audio.flac`.
async fn narration_only(
    ff: &Ffmpeg,
    audio: Option<&Path>,
    work: &Path,
) -> Result<SegmentAudio, Error> {
    let mut problems = Vec::new();
    let flac = work.join(AUDIO);
    let n = match audio {
        Some(a) => {
            let to = (flac.as_path(), Decoded::Flac);
            decode_or_leave_out(ff, a, to, AudioSource::Narration, &mut problems).await?
        }
        None => None,
    };
    let flac = match n {
        Some(n) if n > 0 => Some((flac, n)),
        _ => {
            let _ = std::fs::remove_file(&flac);
            None
        }
    };
    Ok(SegmentAudio {
        flac,
        clipped: 0,
        problems,
    })
}

/// Moves the FLAC decoded ahead into `work` (a copy if it cannot be moved:
/// the scratch and cache folders on two file systems).
fn take_ahead(a: &Ahead, work: &Path) -> Result<Option<(PathBuf, u64)>, Error> {
    let Some(n) = a.samples else {
        return Ok(None);
    };
    let (from, to) = (a.dir.path().join(AUDIO), work.join(AUDIO));
    if std::fs::rename(&from, &to).is_err() {
        std::fs::copy(&from, &to).map_err(|e| Error::io(&to, e))?;
    }
    Ok(Some((to, n)))
}

/// A segment's decoded audio: PCM and its length in samples, the samples
/// that clipped, and the inputs left out.
struct Mixed {
    pcm: Option<(PathBuf, u64)>,
    clipped: u64,
    problems: Vec<Problem>,
}

/// `message` without a leading `<path>: ` (ffmpeg and I/O errors start so)
/// or ffmpeg's `[mp3 @ 0x55d0...] ` context, lines joined with `; `.
fn without_path(message: &str, path: &Path) -> String {
    let p = format!("{}: ", path.display());
    message
        .lines()
        .map(|l| {
            let l = l.trim();
            let l = match l.split_once("] ") {
                Some((ctx, rest)) if ctx.starts_with('[') && ctx.contains(" @ 0x") => rest,
                _ => l,
            };
            l.strip_prefix(&p).unwrap_or(l).trim()
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What [`decode_or_leave_out`] writes: raw PCM to mix, or FLAC to keep.
#[derive(Clone, Copy)]
enum Decoded {
    Pcm,
    Flac,
}

/// Decodes `file` to `out` as `kind` (48 kHz stereo s16 either way); its
/// length in samples. A file that is empty or not audio is a [`Problem`]
/// (returns `None`); any other failure (ffmpeg missing, the disk full) is
/// an error, so it is never cached as silence.
async fn decode_or_leave_out(
    ff: &Ffmpeg,
    file: &Path,
    (out, kind): (&Path, Decoded),
    source: AudioSource,
    problems: &mut Vec<Problem>,
) -> Result<Option<u64>, Error> {
    let decoded = match kind {
        Decoded::Pcm => ff.decode_audio(file, out).await,
        Decoded::Flac => ff.decode_audio_flac(file, out).await,
    };
    let error = match decoded {
        Ok(n) => return Ok(Some(n)),
        Err(e) => e,
    };
    let message = match std::fs::metadata(file) {
        Ok(m) if m.len() == 0 => "is empty (0 bytes)".to_string(),
        Ok(_) => match ff.has_audio(file).await {
            // It has audio that ffmpeg could not decode: not something to
            // take for the input's fault without knowing more.
            Ok(true) => return Err(error),
            Ok(false) => "has no audio stream".to_string(),
            Err(probe) => {
                let why = match &probe {
                    Error::Media { message, .. } => without_path(message, file),
                    other => other.to_string(),
                };
                format!("is not audio ({why})")
            }
        },
        Err(e) => format!("cannot be read ({e})"),
    };
    let _ = std::fs::remove_file(out);
    problems.push(Problem { source, message });
    Ok(None)
}

/// The segment's audio in `work/audio.pcm`: the narration, the scene's
/// own sound, or both mixed, with its length in samples and how many
/// samples clipped. Inputs that are not audio are left out.
async fn decode_and_mix(ff: &Ffmpeg, input: &MuxInput<'_>, work: &Path) -> Result<Mixed, Error> {
    let out = work.join("audio.pcm");
    let narration = work.join("narration.pcm");
    let sound = work.join("sound.pcm");
    let mut problems = Vec::new();
    let n = match input.audio {
        Some(a) => {
            decode_or_leave_out(
                ff,
                a,
                (&narration, Decoded::Pcm),
                AudioSource::Narration,
                &mut problems,
            )
            .await?
        }
        None => None,
    };
    let s = match input.sound {
        Some((wav, _)) => {
            match decode_or_leave_out(
                ff,
                wav,
                (&sound, Decoded::Pcm),
                AudioSource::Sound,
                &mut problems,
            )
            .await?
            {
                Some(_) => Some(trim_silent_tail(&sound)?),
                None => None,
            }
        }
        None => None,
    };
    let rename = |from: &Path| std::fs::rename(from, &out).map_err(|e| Error::io(&out, e));
    let (pcm, clipped) = match (n, s) {
        (None, None) => (None, 0),
        (Some(n), None) => {
            rename(&narration)?;
            (Some((out, n)), 0)
        }
        (None, Some(s)) => {
            rename(&sound)?;
            (Some((out, s)), 0)
        }
        (Some(_), Some(_)) => {
            let (samples, clipped) = mix_files(&narration, &sound, &out)?;
            let _ = std::fs::remove_file(&narration);
            let _ = std::fs::remove_file(&sound);
            (Some((out, samples)), clipped)
        }
    };
    Ok(Mixed {
        pcm,
        clipped,
        problems,
    })
}

/// Encodes raw PCM (48 kHz stereo s16le) to FLAC.
async fn encode_flac(ff: &Ffmpeg, pcm: &Path, flac: &Path) -> Result<(), Error> {
    let mut cmd = ff.command(&ff.ffmpeg);
    cmd.args(["-nostdin", "-v", "error", "-y", "-f", "s16le", "-ar"])
        .arg(crate::ffmpeg::SAMPLE_RATE.to_string())
        .arg("-ac")
        .arg(crate::ffmpeg::CHANNELS.to_string())
        .arg("-i")
        .arg(pcm)
        .args(["-c:a", "flac", "-f", "flac"])
        .arg(flac);
    // Dies with parender; killed if this future is dropped (cancelled).
    let out = crate::procs::output(cmd).await.map_err(|e| Error::Media {
        tool: "ffmpeg",
        what: pcm.display().to_string(),
        message: format!("cannot run {}: {e}", ff.ffmpeg.display()),
    })?;
    if !out.status.success() {
        return Err(Error::Media {
            tool: "ffmpeg",
            what: pcm.display().to_string(),
            message: crate::procs::tail_lines(&out.stderr, 8),
        });
    }
    Ok(())
}

/// Encodes the held frames of `plan` (its unit and the rest, as
/// [`HOLD_UNIT`] and [`HOLD`] in `work`), checked to join the video by
/// stream copy: in one ffmpeg run, else (a video whose timestamps are off
/// its frame grid) from the last frame decoded apart.
async fn encode_hold(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    plan: HoldPlan,
    work: &Path,
) -> Result<(), Error> {
    let (unit, rest) = (work.join(HOLD_UNIT), work.join(HOLD));
    let outs: Vec<(u64, &Path)> = [(plan.unit, &unit), (plan.rest, &rest)]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, p)| (n, p.as_path()))
        .collect();
    if outs.is_empty() {
        return Ok(());
    }
    let info = input.info;
    if ff.encode_holds_of(input.video, info, &outs).await.is_ok()
        && check_holds(ff, input, &outs).await.is_ok()
    {
        return Ok(());
    }
    let last = ff.last_frame(input.video, info).await?;
    let raw = work.join("last.yuv");
    std::fs::write(&raw, &last).map_err(|e| Error::io(&raw, e))?;
    ff.encode_holds(&raw, info, &outs).await?;
    let _ = std::fs::remove_file(&raw);
    check_holds(ff, input, &outs).await
}

async fn check_holds(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    outs: &[(u64, &Path)],
) -> Result<(), Error> {
    for (frames, path) in outs {
        check_hold(ff, input, *frames, path).await?;
    }
    Ok(())
}

/// Whether the held tail has `hold` frames in the scene's format.
async fn check_hold(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    hold: u64,
    tail: &Path,
) -> Result<(), Error> {
    let info = input.info;
    let got = ff.probe_video(tail).await?;
    if got.frames != hold || got.format() != info.format() {
        return Err(Error::Incompatible(format!(
            "the held last frame of {} came out as {} frames in another format ({:?}) than the scene ({:?})",
            input.scene,
            got.frames,
            got.format(),
            info.format()
        )));
    }
    Ok(())
}

/// Cuts the digital silence (all-zero samples) off the end of a PCM file
/// and returns the samples left. Manim pads a scene's sound with silence (at
/// least a second of it, pydub's default), which must not hold the scene's
/// last frame for longer than its video or its real sound lasts. Reads the
/// file backwards in blocks, so a long sound is not read into memory.
fn trim_silent_tail(pcm: &Path) -> Result<u64, Error> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(pcm)
        .map_err(|e| Error::io(pcm, e))?;
    let len = f.metadata().map_err(|e| Error::io(pcm, e))?.len();
    let sample = BYTES_PER_SAMPLE;
    let mut end = len / sample * sample;
    const BLOCK: u64 = 64 * 1024;
    let mut buf = vec![0u8; BLOCK as usize];
    let keep = loop {
        if end == 0 {
            break 0;
        }
        let start = end.saturating_sub(BLOCK);
        let block = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(block))
            .map_err(|e| Error::io(pcm, e))?;
        if let Some(i) = block
            .chunks_exact(sample as usize)
            .rposition(|s| s.iter().any(|b| *b != 0))
        {
            break start + (i as u64 + 1) * sample;
        }
        end = start;
    };
    f.set_len(keep).map_err(|e| Error::io(pcm, e))?;
    Ok(keep / sample)
}

fn mix_files(a: &Path, b: &Path, out: &Path) -> Result<(u64, u64), Error> {
    let open = |p: &Path| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .map_err(|e| Error::io(p, e))
    };
    let file = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let mut w = BufWriter::new(file);
    let (bytes, clipped) = mix(open(a)?, open(b)?, &mut w).map_err(|e| Error::io(out, e))?;
    w.flush().map_err(|e| Error::io(out, e))?;
    Ok((bytes / BYTES_PER_SAMPLE, clipped))
}

/// Sums two s16le streams sample by sample (the shorter one ends in
/// silence), saturating. Returns bytes written and values that clipped.
pub fn mix(
    mut a: impl Read,
    mut b: impl Read,
    out: &mut impl Write,
) -> std::io::Result<(u64, u64)> {
    const CHUNK: usize = 64 * 1024;
    let (mut ba, mut bb) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut written, mut clipped) = (0u64, 0u64);
    loop {
        let na = read_full(&mut a, &mut ba)?;
        let nb = read_full(&mut b, &mut bb)?;
        let n = na.max(nb);
        if n == 0 {
            return Ok((written, clipped));
        }
        ba[na..n].fill(0);
        bb[nb..n].fill(0);
        for (x, y) in ba[..n].chunks_exact_mut(2).zip(bb[..n].chunks_exact(2)) {
            let sum =
                i16::from_le_bytes([x[0], x[1]]) as i32 + i16::from_le_bytes([y[0], y[1]]) as i32;
            let v = sum.clamp(i16::MIN as i32, i16::MAX as i32);
            clipped += u64::from(v != sum);
            x.copy_from_slice(&(v as i16).to_le_bytes());
        }
        out.write_all(&ba[..n])?;
        written += n as u64;
    }
}

/// Fills `buf` as far as the reader goes; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffmpeg::testing::{ffmpeg, on_path};
    use std::ffi::OsStr;

    #[test]
    fn a_long_hold_is_made_of_half_second_units_and_the_rest() {
        let plan = |frames, fps| {
            let p = hold_plan(frames, fps);
            (p.unit, p.count, p.rest)
        };
        assert_eq!(plan(150, 60.0), (30, 5, 0));
        assert_eq!(plan(91, 60.0), (30, 3, 1));
        assert_eq!(plan(45, 15.0), (8, 5, 5));
        // Shorter than two units: one file, as before.
        assert_eq!(plan(59, 60.0), (0, 0, 59));
        assert_eq!(plan(0, 60.0), (0, 0, 0));
        assert_eq!(plan(100, f64::NAN), (0, 0, 100));
    }

    #[tokio::test]
    async fn a_long_hold_joins_its_units_to_the_frames_the_narration_needs() {
        let t = tempfile::tempdir().unwrap();
        let (ff, hashes) = (on_path(), HashCache::default());
        let video = t.path().join("v.mp4");
        let src =
            "color=black:size=64x48:rate=15,format=yuv420p,geq=lum='mod(N*9+X,256)':cb=128:cr=128";
        let args = [
            "-f",
            "lavfi",
            "-i",
            src,
            "-frames:v",
            "10",
            "-c:v",
            "libx264",
        ];
        let tb = ["-video_track_timescale", "15360"];
        ffmpeg(
            args.iter()
                .chain(&tb)
                .map(OsStr::new)
                .chain([video.as_os_str()]),
        );
        let wav = t.path().join("n.wav");
        let sine = ["-f", "lavfi", "-i", "sine=d=3", "-ar", "48000"];
        ffmpeg(sine.iter().map(OsStr::new).chain([wav.as_os_str()]));
        let info = ff.probe_video(&video).await.unwrap();
        let scene = SceneId::new("scenes/a.py", "A");
        let input = MuxInput {
            scene: &scene,
            video: &video,
            video_hash: "v",
            info: &info,
            sound: None,
            audio: Some(&wav),
            gap_frames: 0,
            ahead: None,
        };
        let cache = t.path().join("mux");
        let seg = mux(&ff, &input, &cache, &hashes).await.unwrap();
        // 3 s at 15 fps: the video's 10 frames, 4 units of 8, the rest 3.
        let frames: Vec<u64> = seg.pieces.iter().map(|p| p.frames).collect();
        assert_eq!(frames, [10, 8, 8, 8, 8, 3]);
        assert_eq!(seg.frames, 45);
        let again = mux(&ff, &input, &cache, &hashes).await.unwrap();
        assert_eq!(
            again.pieces, seg.pieces,
            "the cached mux has the same pieces"
        );
        // A kept mux whose frames do not add up is made again.
        let kept = std::fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let meta = kept.join("meta.json");
        let text = std::fs::read_to_string(&meta).unwrap();
        // (the units alone would make 42: then the rest file has no place)
        let wrong = text.replace("\"frames\":45,", "\"frames\":42,");
        assert_ne!(wrong, text);
        std::fs::write(&meta, wrong).unwrap();
        assert!(cached(&kept, &input, &hashes).unwrap().is_none());
        let remade = mux(&ff, &input, &cache, &hashes).await.unwrap();
        assert_eq!(remade.pieces, seg.pieces);
        // Joined by stream copy, every held frame shows the last frame.
        let list = t.path().join("list.txt");
        let lines: String = seg
            .pieces
            .iter()
            .map(|p| format!("file '{}'\n", p.path.display()))
            .collect();
        std::fs::write(&list, lines).unwrap();
        let joined = t.path().join("joined.mp4");
        let concat = ["-f", "concat", "-safe", "0", "-i"].map(OsStr::new);
        let copy = ["-c", "copy"].map(OsStr::new);
        ffmpeg(
            concat
                .into_iter()
                .chain([list.as_os_str()])
                .chain(copy)
                .chain([joined.as_os_str()]),
        );
        let all = crate::ffmpeg::testing::decoded_frames(&joined);
        let n = info.frame_bytes();
        assert_eq!(all.len(), 45 * n);
        let last = &crate::ffmpeg::testing::decoded_frames(&video)[9 * n..10 * n];
        for (i, frame) in all.chunks(n).enumerate().skip(10) {
            let off: u64 = frame
                .iter()
                .zip(last)
                .map(|(a, b)| a.abs_diff(*b) as u64)
                .sum();
            // Lossy, but less than a level per pixel on average.
            assert!(
                off < n as u64,
                "held frame {i} is {off} levels off the last"
            );
        }
    }

    #[tokio::test]
    async fn narration_decoded_ahead_is_whole_or_says_what_is_wrong() {
        let t = tempfile::tempdir().unwrap();
        let ff = on_path();
        let hashes = HashCache::default();
        let wav = t.path().join("n.wav");
        let lavfi = ["-f", "lavfi", "-i", "sine=d=0.5", "-ar", "44100"];
        ffmpeg(lavfi.iter().map(OsStr::new).chain([wav.as_os_str()]));
        let cache = t.path().join("mux");
        let a = decode_ahead(&ff, &wav, &cache, &hashes)
            .await
            .unwrap()
            .unwrap();
        // Resampled to 48 kHz: 0.5 s is 24000 samples.
        assert_eq!((a.samples, a.problems.len()), (Some(24_000), 0));
        let work = t.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let (flac, n) = take_ahead(&a, &work).unwrap().unwrap();
        assert_eq!((flac, n), (work.join(AUDIO), 24_000));
        // Its temp folder goes with it.
        drop(a);
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);

        let empty = t.path().join("e.wav");
        std::fs::write(&empty, b"").unwrap();
        let a = decode_ahead(&ff, &empty, &cache, &hashes)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.samples, None);
        assert_eq!(a.problems[0].message, "is empty (0 bytes)");
        assert!(
            decode_ahead(&ff, &t.path().join("gone.wav"), &cache, &hashes)
                .await
                .unwrap()
                .is_none()
        );
    }

    fn pcm(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn problem_messages_lose_paths_and_ffmpeg_contexts() {
        let f = Path::new("/p/audio/c.mp3");
        assert_eq!(
            without_path(
                "[mp3 @ 0x55847dee4600] Failed to read frame size\n/p/audio/c.mp3: Invalid argument\n",
                f
            ),
            "Failed to read frame size; Invalid argument"
        );
    }

    #[test]
    fn a_silent_tail_is_cut() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("s.pcm");
        // Stereo samples: sound, a quiet one (left only), then silence.
        std::fs::write(&f, pcm(&[5, 5, 0, 1, 0, 0, 0, 0])).unwrap();
        assert_eq!(trim_silent_tail(&f).unwrap(), 2);
        assert_eq!(std::fs::read(&f).unwrap(), pcm(&[5, 5, 0, 1]));
        std::fs::write(&f, pcm(&[0, 0])).unwrap();
        assert_eq!(trim_silent_tail(&f).unwrap(), 0);
        // Sound, then silence over several of the blocks it reads backwards.
        let mut long = vec![0i16; 2 * 70_000];
        long[3] = -7;
        std::fs::write(&f, pcm(&long)).unwrap();
        assert_eq!(trim_silent_tail(&f).unwrap(), 2);
        assert_eq!(std::fs::read(&f).unwrap(), pcm(&[0, 0, 0, -7]));
        // Sound up to the very end, and a stray half sample cut off.
        let mut bytes = pcm(&vec![1i16; 2 * 40_000]);
        bytes.push(9);
        std::fs::write(&f, &bytes).unwrap();
        assert_eq!(trim_silent_tail(&f).unwrap(), 40_000);
    }

    #[test]
    fn mixing_sums_saturates_and_keeps_the_longer() {
        let a = pcm(&[100, -200, 30000, -30000, 7, 8]);
        let b = pcm(&[1, 2, 10000, -10000]);
        let mut out = Vec::new();
        let (bytes, clipped) = mix(&a[..], &b[..], &mut out).unwrap();
        assert_eq!(bytes, 12);
        assert_eq!(clipped, 2);
        assert_eq!(out, pcm(&[101, -198, i16::MAX, i16::MIN, 7, 8]));
        // Either side may be the longer one, across chunk boundaries.
        let long: Vec<i16> = (0..70_000).map(|i| (i % 100) as i16).collect();
        let mut out = Vec::new();
        mix(&pcm(&[5])[..], &pcm(&long)[..], &mut out).unwrap();
        assert_eq!(out.len(), 140_000);
        assert_eq!(&out[..4], &pcm(&[5, 1])[..]);
        assert_eq!(&out[139_998..], &pcm(&[99])[..]);
    }
}
