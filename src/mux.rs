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

use crate::error::Error;
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

/// Builds scene `index`'s segment in `work` (a scratch folder of this build).
pub async fn mux(
    ff: &Ffmpeg,
    scene: &SceneId,
    video: &Path,
    info: &VideoInfo,
    audio: Option<&Path>,
    gap_frames: u64,
    work: &Path,
) -> Result<Segment, Error> {
    std::fs::create_dir_all(work).map_err(|e| Error::io(work, e))?;
    let pcm = match audio {
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
    let frames = info.frames.max(audio_frames) + gap_frames;
    let hold = frames - info.frames;
    let mut pieces = vec![video.to_path_buf()];
    if hold > 0 {
        let last = ff.last_frame(video, info).await?;
        let raw = work.join("last.yuv");
        std::fs::write(&raw, &last).map_err(|e| Error::io(&raw, e))?;
        let tail = work.join("hold.mp4");
        ff.encode_hold(&raw, info, hold, &tail).await?;
        let got = ff.probe_video(&tail).await?;
        if got.frames != hold || got.format() != info.format() {
            return Err(Error::Incompatible(format!(
                "the held last frame of {scene} came out as {} frames in another format ({:?}) than the scene ({:?})",
                got.frames,
                got.format(),
                info.format()
            )));
        }
        pieces.push(tail);
    }
    Ok(Segment {
        scene: scene.clone(),
        pieces,
        info: info.clone(),
        frames,
        pcm,
    })
}
