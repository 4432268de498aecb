//! Publishing: every available render muxed with its audio, then stitched
//! into the final video with its chapters and subtitles — unless nothing
//! that goes into it changed since the last time it was written.
//!
//! What the last stitch of an output was made from is recorded in
//! `.parender/outputs/`, in four parts (video pieces, audio, chapters,
//! subtitles), so `--explain` can say which one changed, and side files a
//! previous stitch wrote but this one does not (subtitles that are gone) are
//! removed.
use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::analyze::hashcache::HashCache;
use crate::cache::store::Entry;
use crate::config::SubtitleMode;
use crate::error::Error;
use crate::ffmpeg::Ffmpeg;
use crate::media::mux::{self, AudioSource, MuxInput, Segment};
use crate::media::recent;
use crate::media::stitch::{self, Part};
use crate::report::Reporter;
use crate::scene::Scene;
use crate::scene::SceneId;

/// What one build publishes: the scenes that have a render, in order.
pub struct Publish<'a> {
    pub ffmpeg: &'a Ffmpeg,
    pub hashes: &'a std::sync::Arc<HashCache>,
    /// `.parender/`: the mux cache and the records of past stitches.
    pub state: &'a Path,
    pub mux_cache: PathBuf,
    /// This build's scratch folder.
    pub work: &'a Path,
    pub output: &'a Path,
    pub gap: f64,
    pub subtitles: SubtitleMode,
    pub jobs: usize,
    pub root: &'a Path,
}

/// The published video and what came with it.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seconds: f64,
    pub chapters: Option<PathBuf>,
    pub subtitles: Option<PathBuf>,
    /// The stitch's key: changes whenever the video does.
    pub key: String,
    /// Where each scene sits in the video, in order.
    pub placed: Vec<PlacedScene>,
}

/// One scene's place in the published video.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedScene {
    pub scene: String,
    pub title: String,
    pub start: f64,
    pub seconds: f64,
    /// Its render (a placeholder card for a scene that never rendered).
    pub video: PathBuf,
    /// The render's own length (without any held frames or gap).
    pub video_seconds: f64,
}

/// Every part's place on the timeline of `parts`.
fn placed(parts: &[Part]) -> Vec<PlacedScene> {
    let Some(timeline) = stitch::timeline(parts) else {
        return Vec::new();
    };
    let at = |frame: u64| timeline.micros_at(frame) as f64 / 1e6;
    parts
        .iter()
        .zip(&timeline.scenes)
        .map(|(part, t)| {
            let render = part.segment.pieces.first();
            PlacedScene {
                scene: part.segment.scene.to_string(),
                title: part.title.clone(),
                start: at(t.start),
                seconds: at(t.start + t.frames) - at(t.start),
                video: render.map(|p| p.path.clone()).unwrap_or_default(),
                video_seconds: render.map_or(0.0, |p| p.frames as f64) / part.segment.info.fps(),
            }
        })
        .collect()
}

/// The parts of a stitch's key, so a change can be named.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Parts {
    video: String,
    audio: String,
    chapters: String,
    subtitles: String,
}

/// What the last stitch of an output was made from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Record {
    key: String,
    size: u64,
    modified_ns: i128,
    #[serde(default)]
    parts: Parts,
    #[serde(default)]
    chapters: Option<PathBuf>,
    #[serde(default)]
    subtitles: Option<PathBuf>,
    #[serde(default)]
    side_files: Vec<PathBuf>,
}

fn record_path(state: &Path, output: &Path) -> PathBuf {
    let h = blake3::hash(output.as_os_str().as_encoded_bytes()).to_hex();
    state.join("outputs").join(format!("{}.json", &h[..32]))
}

fn stamp_of(output: &Path) -> Option<(u64, i128)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(output).ok()?;
    Some((
        m.len(),
        m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
    ))
}

/// One scene's mux, with everything it needs owned, so it can run on any
/// task: here, for every scene at publishing, and earlier, right after its
/// render (see `commands::build::schedule`), when publishing then finds it
/// in the mux cache.
pub struct SceneMux {
    pub ffmpeg: Ffmpeg,
    pub cache: PathBuf,
    pub hashes: std::sync::Arc<HashCache>,
    pub scene: SceneId,
    pub entry: Entry,
    /// The narration's path, absolute.
    pub audio: Option<PathBuf>,
    pub gap_frames: u64,
    /// Its narration, decoded while it rendered.
    pub ahead: Option<mux::Ahead>,
}

impl SceneMux {
    pub async fn run(&self) -> Result<Segment, Error> {
        let e = &self.entry;
        let input = MuxInput {
            scene: &self.scene,
            video: &e.video,
            video_hash: &e.video_hash,
            info: &e.info,
            sound: e.sound_file.as_deref().zip(e.sound.as_deref()),
            audio: self.audio.as_deref(),
            gap_frames: self.gap_frames,
            ahead: self.ahead.as_ref(),
        };
        mux::mux(&self.ffmpeg, &input, &self.cache, &self.hashes).await
    }
}

/// The frames of silence after a scene: `gap` seconds, none after the last.
pub fn gap_frames(gap: f64, info: &crate::ffmpeg::VideoInfo, last: bool) -> u64 {
    if last {
        0
    } else {
        (gap * info.fps()).round() as u64
    }
}

/// Muxes each scene's render with its narration and own sound (cached).
async fn mux_all(p: &Publish<'_>, scenes: &[(&Scene, Entry)]) -> Result<Vec<Part>, Error> {
    let last = scenes.len().saturating_sub(1);
    let jobs: Vec<_> = scenes
        .iter()
        .enumerate()
        .map(|(n, (scene, e))| {
            let job = SceneMux {
                ffmpeg: p.ffmpeg.clone(),
                cache: p.mux_cache.clone(),
                hashes: p.hashes.clone(),
                scene: scene.id.clone(),
                entry: e.clone(),
                audio: scene.audio.as_ref().map(|a| p.root.join(a)),
                ahead: None,
                gap_frames: gap_frames(p.gap, &e.info, n == last),
            };
            let title = scene.title().to_string();
            async move {
                Ok(Part {
                    segment: job.run().await?,
                    title,
                    subtitles: job.entry.subtitles_file.clone(),
                })
            }
        })
        .collect();
    let muxes: Vec<Result<Part, Error>> = futures::stream::iter(jobs)
        .buffered(p.jobs.max(1))
        .collect()
        .await;
    muxes.into_iter().collect()
}

/// The four parts of the stitch's key.
fn parts_of(parts: &[Part], mode: SubtitleMode, hashes: &HashCache) -> Result<Parts, Error> {
    let hex = |h: blake3::Hasher| h.finalize().to_hex().to_string();
    let (mut video, mut audio, mut chapters, mut subs) = (
        blake3::Hasher::new(),
        blake3::Hasher::new(),
        blake3::Hasher::new(),
        blake3::Hasher::new(),
    );
    video.update(b"parender-stitch-v2\0");
    subs.update(format!("{mode:?}\0").as_bytes());
    for p in parts {
        for piece in &p.segment.pieces {
            video.update(piece.path.as_os_str().as_encoded_bytes());
            video.update(format!("\0{}\0", piece.frames).as_bytes());
        }
        video.update(format!("{}\0", p.segment.frames).as_bytes());
        audio.update(format!("{:?}\0{}\0", p.segment.audio, p.segment.frames).as_bytes());
        chapters.update(format!("{}\0{}\0", p.title, p.segment.frames).as_bytes());
        let srt = match &p.subtitles {
            Some(f) => hashes.hash(f)?,
            None => None,
        };
        subs.update(format!("{srt:?}\0{}\0", p.segment.frames).as_bytes());
    }
    Ok(Parts {
        video: hex(video),
        audio: hex(audio),
        chapters: hex(chapters),
        subtitles: hex(subs),
    })
}

/// Why the output must be stitched again, or nothing when it is current.
fn why_stitch(prev: Option<&Record>, parts: &Parts, output: &Path) -> Vec<String> {
    let Some(prev) = prev else {
        return vec!["never stitched".into()];
    };
    let mut why = Vec::new();
    if stamp_of(output) != Some((prev.size, prev.modified_ns)) {
        why.push("the video was changed or removed outside parender".into());
    }
    for (what, a, b) in [
        ("scene videos changed", &prev.parts.video, &parts.video),
        ("audio changed", &prev.parts.audio, &parts.audio),
        ("chapters changed", &prev.parts.chapters, &parts.chapters),
        ("subtitles changed", &prev.parts.subtitles, &parts.subtitles),
    ] {
        if a != b {
            why.push(what.to_string());
        }
    }
    why
}

fn key_of(parts: &Parts) -> String {
    let text = serde_json::to_string(parts).unwrap_or_default();
    blake3::hash(text.as_bytes()).to_hex().to_string()
}

/// Muxes and stitches `scenes` (those with a render, in order) into the
/// output, unless it is already current. When `cancel` fires (Ctrl-C,
/// SIGTERM) it stops at once: the ffmpeg runs in flight are killed (their
/// futures are dropped), temp files removed, nothing is published, and it
/// returns [`Error::Interrupted`].
pub async fn publish(
    p: &Publish<'_>,
    scenes: &[(&Scene, Entry)],
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome, Error> {
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(Error::Interrupted),
        done = publish_now(p, scenes, reporter, cancel) => done,
    }
}

/// `2 scenes`, `1 scene`.
fn scenes(n: usize) -> String {
    format!("{n} scene{}", if n == 1 { "" } else { "s" })
}

async fn publish_now(
    p: &Publish<'_>,
    scenes_in: &[(&Scene, Entry)],
    reporter: &Reporter,
    cancel: &CancellationToken,
) -> Result<Outcome, Error> {
    // Temp files a killed build left beside the output.
    stitch::remove_abandoned_partials(p.output);
    let parts = mux_all(p, scenes_in).await?;
    for (part, (scene, _)) in parts.iter().zip(scenes_in) {
        if part.segment.clipped > 0 {
            reporter.warning(&format!(
                "{}: its narration and its own sound together clip at {} samples; lower one of them",
                part.segment.scene, part.segment.clipped
            ));
        }
        for problem in &part.segment.problems {
            let what = match (problem.source, &scene.audio) {
                (AudioSource::Narration, Some(a)) => format!("its narration {}", a.display()),
                (AudioSource::Narration, None) => "its narration".to_string(),
                (AudioSource::Sound, _) => "its own sound (add_sound)".to_string(),
            };
            reporter.warning(&format!(
                "{}: {what} {}; the scene is built without it (silence)",
                part.segment.scene, problem.message
            ));
        }
    }
    let seconds = parts.iter().map(|p| p.segment.seconds()).sum();
    let key_parts = parts_of(&parts, p.subtitles, p.hashes)?;
    let record = record_path(p.state, p.output);
    let prev: Option<Record> = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let why = why_stitch(prev.as_ref(), &key_parts, p.output);
    let rel = p.output.strip_prefix(p.root).unwrap_or(p.output);
    if why.is_empty()
        && let Some(prev) = prev
    {
        reporter.status("Fresh", &format!("{} (nothing changed)", rel.display()));
        return Ok(Outcome {
            seconds,
            chapters: prev.chapters,
            subtitles: prev.subtitles,
            key: prev.key,
            placed: placed(&parts),
        });
    }
    let because = if reporter.explain {
        format!(" ({})", why.join(", "))
    } else {
        String::new()
    };
    let key = key_of(&key_parts);
    let cache = p.mux_cache.parent().unwrap_or(p.state);
    let done = match recent::restore(cache, &key, p.output) {
        Some(r) => {
            reporter.status(
                "Restored",
                &format!("{} as stitched before{because}", rel.display()),
            );
            Done {
                chapters: r.chapters,
                subtitles: r.subtitles,
                side_files: r.side_files,
            }
        }
        None => {
            reporter.status("Stitching", &format!("{}{because}", scenes(parts.len())));
            let stitcher = stitch::Stitcher {
                ffmpeg: p.ffmpeg,
                subtitles: p.subtitles,
                work: p.work,
                aac_chunks: &cache.join("aac"),
                jobs: p.jobs,
            };
            let s = stitch::stitch(&stitcher, &parts, p.output, cancel).await?;
            recent::keep(
                cache,
                &key,
                p.output,
                &s.side_files,
                Some(&s.chapters),
                s.subtitles.as_deref(),
            );
            Done {
                chapters: Some(s.chapters),
                subtitles: s.subtitles,
                side_files: s.side_files,
            }
        }
    };
    for old in prev.iter().flat_map(|r| &r.side_files) {
        if !done.side_files.contains(old) {
            let _ = std::fs::remove_file(old);
        }
    }
    if let Some((size, modified_ns)) = stamp_of(p.output) {
        let rec = Record {
            key: key.clone(),
            size,
            modified_ns,
            parts: key_parts,
            chapters: done.chapters.clone(),
            subtitles: done.subtitles.clone(),
            side_files: done.side_files.clone(),
        };
        if let Ok(bytes) = serde_json::to_vec(&rec) {
            let _ = crate::fsutil::write_atomic(&record, &bytes);
        }
    }
    Ok(Outcome {
        seconds,
        chapters: done.chapters,
        subtitles: done.subtitles,
        key,
        placed: placed(&parts),
    })
}

/// What the published video came with.
struct Done {
    chapters: Option<PathBuf>,
    subtitles: Option<PathBuf>,
    side_files: Vec<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_which_part_changed() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("v.mp4");
        std::fs::write(&out, b"video").unwrap();
        let (size, modified_ns) = stamp_of(&out).unwrap();
        let parts = Parts {
            video: "v".into(),
            audio: "a".into(),
            chapters: "c".into(),
            subtitles: "s".into(),
        };
        let prev = Record {
            key: key_of(&parts),
            size,
            modified_ns,
            parts: parts.clone(),
            ..Record::default()
        };
        assert!(why_stitch(Some(&prev), &parts, &out).is_empty());
        assert_eq!(why_stitch(None, &parts, &out), ["never stitched"]);
        let retitled = Parts {
            chapters: "c2".into(),
            subtitles: "s2".into(),
            ..parts.clone()
        };
        assert_eq!(
            why_stitch(Some(&prev), &retitled, &out),
            ["chapters changed", "subtitles changed"]
        );
        std::fs::remove_file(&out).unwrap();
        assert_eq!(
            why_stitch(Some(&prev), &parts, &out),
            ["the video was changed or removed outside parender"]
        );
    }
}
