//! Combining a scene with its narration and its own sound, to whole frames.
//!
//! A segment lasts max(video, narration, the scene's own sound), rounded up
//! to a whole frame, plus the gap that follows it. When the audio (or the
//! gap) is longer than the video, the last frame is held: only the held tail
//! is encoded, with the codec settings, frame rate and time base of Manim's
//! own file, and joined to it by stream copy, so the scene's own frames stay
//! bit-identical. The narration and the scene's sound (`add_sound`,
//! manim-voiceover) are decoded to PCM here and mixed sample-exact from the
//! scene's first frame, at their own levels (summed, saturating; clipping is
//! counted and reported, not hidden by a limiter). The track is laid out by
//! sample count in [`crate::stitch`], then encoded once: no AAC priming or
//! frame rounding at scene boundaries.
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::hashcache::HashCache;
use crate::media::{BYTES_PER_SAMPLE, Ffmpeg, VideoInfo};
use crate::scene::SceneId;

/// One video file of a segment and its frame count.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub path: PathBuf,
    pub frames: u64,
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
    /// 48 kHz stereo s16le) and its length in samples.
    pub pcm: Option<(PathBuf, u64)>,
    /// Samples where narration and the scene's sound together clipped.
    pub clipped: u64,
}

impl Segment {
    pub fn seconds(&self) -> f64 {
        self.frames as f64 * self.info.fps_den as f64 / self.info.fps_num as f64
    }
}

/// Bumped whenever what a cached mux holds changes meaning.
pub const MUX_FORMAT: &str = "parender-mux-v3";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MuxMeta {
    frames: u64,
    /// blake3 of `hold.mp4`, when the last frame is held.
    hold: Option<String>,
    /// blake3 of `audio.pcm` and its length in samples, with any audio.
    pcm: Option<(String, u64)>,
    #[serde(default)]
    clipped: u64,
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
    let mut pieces = vec![Piece {
        path: input.video.to_path_buf(),
        frames: input.info.frames,
    }];
    let intact = |name: &str, want: &str| -> Result<bool, Error> {
        Ok(hashes.hash(&dir.join(name))?.as_deref() == Some(want))
    };
    if let Some(h) = &meta.hold {
        if !intact("hold.mp4", h)? {
            let _ = std::fs::remove_dir_all(dir);
            return Ok(None);
        }
        pieces.push(Piece {
            path: dir.join("hold.mp4"),
            frames: meta.frames - input.info.frames,
        });
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
        clipped: meta.clipped,
    }))
}

/// Decodes (and mixes) the audio and encodes the held tail into `work`.
async fn build(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    work: &Path,
    hashes: &HashCache,
) -> Result<MuxMeta, Error> {
    let info = input.info;
    let (pcm, clipped) = decode_and_mix(ff, input, work).await?;
    let audio_frames = pcm
        .as_ref()
        .map(|(_, n)| info.frames_for_samples(*n))
        .unwrap_or(0);
    let frames = info.frames.max(audio_frames) + input.gap_frames;
    let hold = frames - info.frames;
    let mut hold_hash = None;
    if hold > 0 {
        let tail = work.join("hold.mp4");
        encode_hold(ff, input, hold, work, &tail).await?;
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
        clipped,
    })
}

/// The segment's audio in `work/audio.pcm`: the narration, the scene's
/// own sound, or both mixed. Returns it with its length in samples, and
/// how many samples clipped.
async fn decode_and_mix(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    work: &Path,
) -> Result<(Option<(PathBuf, u64)>, u64), Error> {
    let out = work.join("audio.pcm");
    let narration = work.join("narration.pcm");
    let sound = work.join("sound.pcm");
    let n = match input.audio {
        Some(a) => Some(ff.decode_audio(a, &narration).await?),
        None => None,
    };
    let s = match input.sound {
        Some((wav, _)) => {
            ff.decode_audio(wav, &sound).await?;
            Some(trim_silent_tail(&sound)?)
        }
        None => None,
    };
    let rename = |from: &Path| std::fs::rename(from, &out).map_err(|e| Error::io(&out, e));
    match (n, s) {
        (None, None) => Ok((None, 0)),
        (Some(n), None) => rename(&narration).map(|_| (Some((out.clone(), n)), 0)),
        (None, Some(s)) => rename(&sound).map(|_| (Some((out.clone(), s)), 0)),
        (Some(_), Some(_)) => {
            let (samples, clipped) = mix_files(&narration, &sound, &out)?;
            let _ = std::fs::remove_file(&narration);
            let _ = std::fs::remove_file(&sound);
            Ok((Some((out, samples)), clipped))
        }
    }
}

/// Encodes `hold` frames of the video's last frame to `tail`, checked to
/// join the video by stream copy.
async fn encode_hold(
    ff: &Ffmpeg,
    input: &MuxInput<'_>,
    hold: u64,
    work: &Path,
    tail: &Path,
) -> Result<(), Error> {
    let info = input.info;
    let last = ff.last_frame(input.video, info).await?;
    let raw = work.join("last.yuv");
    std::fs::write(&raw, &last).map_err(|e| Error::io(&raw, e))?;
    ff.encode_hold(&raw, info, hold, tail).await?;
    let _ = std::fs::remove_file(&raw);
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
/// last frame for longer than its video or its real sound lasts.
fn trim_silent_tail(pcm: &Path) -> Result<u64, Error> {
    let data = std::fs::read(pcm).map_err(|e| Error::io(pcm, e))?;
    let keep = data
        .chunks_exact(BYTES_PER_SAMPLE as usize)
        .rposition(|s| s.iter().any(|b| *b != 0))
        .map_or(0, |i| i + 1);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(pcm)
        .map_err(|e| Error::io(pcm, e))?;
    f.set_len(keep as u64 * BYTES_PER_SAMPLE)
        .map_err(|e| Error::io(pcm, e))?;
    Ok(keep as u64)
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

    fn pcm(values: &[i16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
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
