//! Combining a scene with its narration, to whole frames.
//!
//! A segment lasts max(video, audio), rounded up to a whole frame, plus the
//! gap that follows it. When the narration (or the gap) is longer than the
//! video, the last frame is held: only the held tail is encoded, with the
//! codec settings, frame rate and time base of Manim's own file, and joined to
//! it by stream copy, so the scene's own frames stay bit-identical. The audio
//! is decoded to PCM here and laid out by sample count in [`crate::stitch`],
//! then encoded once: no AAC priming or frame rounding at scene boundaries.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::hashcache::HashCache;
use crate::media::{Ffmpeg, VideoInfo};
use crate::scene::SceneId;

#[derive(Debug, Clone)]
pub struct Segment {
    pub scene: SceneId,
    /// Video files to join by stream copy, in order (the render, then the hold).
    pub pieces: Vec<PathBuf>,
    pub info: VideoInfo,
    /// Frames of the whole segment, hold and gap included.
    pub frames: u64,
    /// Decoded narration (48 kHz stereo s16le) and its length in samples.
    pub pcm: Option<(PathBuf, u64)>,
}

impl Segment {
    pub fn seconds(&self) -> f64 {
        self.frames as f64 * self.info.fps_den as f64 / self.info.fps_num as f64
    }
}

/// Bumped whenever what a cached mux holds changes meaning.
pub const MUX_FORMAT: &str = "parender-mux-v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MuxMeta {
    frames: u64,
    /// blake3 of `hold.mp4`, when the last frame is held.
    hold: Option<String>,
    /// blake3 of `audio.pcm` and its length in samples, with narration.
    pcm: Option<(String, u64)>,
}

/// Inputs of one scene's mux: the rendered video, its narration, the gap.
pub struct MuxInput<'a> {
    pub scene: &'a SceneId,
    pub video: &'a Path,
    pub video_hash: &'a str,
    pub info: &'a VideoInfo,
    pub audio: Option<&'a Path>,
    pub gap_frames: u64,
}

/// Muxes are cached under `cache` by (video hash, audio content hash, gap,
/// format): a changed narration re-muxes its scene without re-rendering
/// it, and an unchanged one is not decoded or encoded again.
pub async fn mux(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    cache: &Path,
    hashes: &HashCache,
) -> Result<Segment, Error> {
    let audio_hash = match input.audio {
        Some(a) => Some(
            hashes
                .hash(a)?
                .ok_or_else(|| Error::Other(format!("audio file {} is gone", a.display())))?,
        ),
        None => None,
    };
    let key = blake3::hash(
        serde_json::json!([
            MUX_FORMAT,
            input.video_hash,
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
    if let Some(seg) = cached(&dir, input, hashes)? {
        return Ok(seg);
    }
    std::fs::create_dir_all(cache).map_err(|e| Error::io(cache, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(cache)
        .map_err(|e| Error::io(cache, e))?;
    let meta = build(ff, input, tmp.path(), hashes).await?;
    let json = serde_json::to_vec(&meta).map_err(|e| Error::Other(e.to_string()))?;
    crate::store::write_atomic(&tmp.path().join("meta.json"), &json)?;
    let built = tmp.keep();
    if std::fs::rename(&built, &dir).is_err() {
        // Another process cached the same mux meanwhile: use theirs.
        let _ = std::fs::remove_dir_all(&built);
    }
    cached(&dir, input, hashes)?.ok_or_else(|| {
        Error::Other(format!(
            "the mux of {} did not persist in {}",
            input.scene,
            dir.display()
        ))
    })
}

/// The cached segment in `dir`, if it is whole.
fn cached(dir: &Path, input: &MuxInput<'_>, hashes: &HashCache) -> Result<Option<Segment>, Error> {
    let Ok(bytes) = std::fs::read(dir.join("meta.json")) else {
        return Ok(None);
    };
    let Ok(meta) = serde_json::from_slice::<MuxMeta>(&bytes) else {
        let _ = std::fs::remove_dir_all(dir);
        return Ok(None);
    };
    let mut pieces = vec![input.video.to_path_buf()];
    let intact = |name: &str, want: &str| -> Result<bool, Error> {
        Ok(hashes.hash(&dir.join(name))?.as_deref() == Some(want))
    };
    if let Some(h) = &meta.hold {
        if !intact("hold.mp4", h)? {
            let _ = std::fs::remove_dir_all(dir);
            return Ok(None);
        }
        pieces.push(dir.join("hold.mp4"));
    }
    let pcm = match &meta.pcm {
        Some((h, n)) => {
            if !intact("audio.pcm", h)? {
                let _ = std::fs::remove_dir_all(dir);
                return Ok(None);
            }
            Some((dir.join("audio.pcm"), *n))
        }
        None => None,
    };
    Ok(Some(Segment {
        scene: input.scene.clone(),
        pieces,
        info: input.info.clone(),
        frames: meta.frames,
        pcm,
    }))
}

/// Decodes the narration and encodes the held tail into `work`.
async fn build(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    work: &Path,
    hashes: &HashCache,
) -> Result<MuxMeta, Error> {
    let info = input.info;
    let pcm = match input.audio {
        Some(a) => {
            let pcm = work.join("audio.pcm");
            let samples = ff.decode_audio(a, &pcm).await?;
            Some((pcm, samples))
        }
        None => None,
    };
    let audio_frames = pcm
        .as_ref()
        .map(|(_, n)| info.frames_for_samples(*n))
        .unwrap_or(0);
    let frames = info.frames.max(audio_frames) + input.gap_frames;
    let hold = frames - info.frames;
    let mut hold_hash = None;
    if hold > 0 {
        let last = ff.last_frame(input.video, info).await?;
        let raw = work.join("last.yuv");
        std::fs::write(&raw, &last).map_err(|e| Error::io(&raw, e))?;
        let tail = work.join("hold.mp4");
        ff.encode_hold(&raw, info, hold, &tail).await?;
        let _ = std::fs::remove_file(&raw);
        let got = ff.probe_video(&tail).await?;
        if got.frames != hold || got.format() != info.format() {
            return Err(Error::Incompatible(format!(
                "the held last frame of {} came out as {} frames in another format ({:?}) than the scene ({:?})",
                input.scene,
                got.frames,
                got.format(),
                info.format()
            )));
        }
        hold_hash = hashes.hash(&tail)?;
    }
    let pcm = match pcm {
        Some((p, n)) => Some((hashes.hash(&p)?.unwrap_or_default(), n)),
        None => None,
    };
    Ok(MuxMeta {
        frames,
        hold: hold_hash,
        pcm,
    })
}
