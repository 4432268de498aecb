//! ffmpeg and ffprobe, wrapped: probing videos, decoding audio to PCM,
//! grabbing a last frame and encoding a held frame that joins a Manim video by
//! stream copy. Every call names the file it worked on when it fails.
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// A list of command arguments from strings and paths alike.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        [$(OsString::from(AsRef::<OsStr>::as_ref(&$a))),*]
    };
}

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use crate::error::Error;

/// The one audio format of every segment and of the final video's track
/// before its single AAC encode: 48 kHz, stereo, signed 16-bit.
/// ffmpeg's AAC encoder's priming (one frame, 1024 samples at 48 kHz), as
/// the start offset that gives it back when its ADTS packets are muxed by
/// stream copy (read to the microsecond, which the 48 kHz track rounds back
/// to 1024 samples).
pub const AAC_PRIMING_SECONDS: &str = "-0.021333";
pub const SAMPLE_RATE: u64 = 48_000;
pub const CHANNELS: u64 = 2;
pub const BYTES_PER_SAMPLE: u64 = 2 * CHANNELS;

/// The niceness added to work done in the background of renders: enough
/// that a render on the build's critical path keeps its CPU, not so much
/// that the work starves on a busy desktop.
const BACKGROUND_NICE: i32 = 10;

/// ffmpeg's options for a decoded track: audio only, stereo, 48 kHz.
const AUDIO_48K_STEREO: [&str; 5] = ["-vn", "-ac", "2", "-ar", "48000"];

/// What must agree between videos that are joined by stream copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoInfo {
    pub codec: String,
    pub profile: String,
    pub pix_fmt: String,
    pub width: u32,
    pub height: u32,
    /// Frame rate as a fraction (`15/1`).
    pub fps_num: u64,
    pub fps_den: u64,
    /// Time base of the stream (`1/15360`).
    pub tb_num: u64,
    pub tb_den: u64,
    pub frames: u64,
}

/// One stream as ffprobe reports it.
#[derive(Debug, Deserialize)]
struct Stream {
    codec_type: Option<String>,
    codec_name: Option<String>,
    profile: Option<String>,
    pix_fmt: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    r_frame_rate: Option<String>,
    time_base: Option<String>,
    nb_read_packets: Option<String>,
}

fn probe_error(path: &Path, message: &str) -> Error {
    Error::Media {
        tool: "ffprobe",
        what: path.display().to_string(),
        message: message.to_string(),
    }
}

fn no_video(path: &Path) -> Error {
    probe_error(path, "no video stream")
}

/// A video stream's [`VideoInfo`], or what it lacks.
fn video_info(path: &Path, s: Stream) -> Result<VideoInfo, Error> {
    let bad = |m: &str| probe_error(path, m);
    let (fps_num, fps_den) = s
        .r_frame_rate
        .as_deref()
        .and_then(parse_ratio)
        .ok_or_else(|| bad("no frame rate"))?;
    let (tb_num, tb_den) = s
        .time_base
        .as_deref()
        .and_then(parse_ratio)
        .ok_or_else(|| bad("no time base"))?;
    Ok(VideoInfo {
        codec: s.codec_name.unwrap_or_default(),
        profile: s.profile.unwrap_or_default(),
        pix_fmt: s.pix_fmt.unwrap_or_default(),
        width: s.width.ok_or_else(|| bad("no width"))?,
        height: s.height.ok_or_else(|| bad("no height"))?,
        fps_num,
        fps_den,
        tb_num,
        tb_den,
        frames: s
            .nb_read_packets
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| bad("no frame count"))?,
    })
}

impl VideoInfo {
    /// Whether it describes a video at all: frames, a frame rate, a time
    /// base and a size (a reader that failed gives zeros).
    pub fn is_sane(&self) -> bool {
        self.frames > 0
            && self.fps_num > 0
            && self.fps_den > 0
            && self.tb_num > 0
            && self.tb_den > 0
            && self.width > 0
            && self.height > 0
            && !self.codec.is_empty()
    }

    /// Frames per second.
    pub fn fps(&self) -> f64 {
        self.fps_num as f64 / self.fps_den.max(1) as f64
    }

    pub fn seconds(&self) -> f64 {
        self.frames as f64 * self.fps_den as f64 / self.fps_num as f64
    }

    /// Everything but the length: two videos with the same format can be
    /// concatenated without re-encoding.
    pub fn format(&self) -> (String, String, String, u32, u32, u64, u64, u64, u64) {
        (
            self.codec.clone(),
            self.profile.clone(),
            self.pix_fmt.clone(),
            self.width,
            self.height,
            self.fps_num,
            self.fps_den,
            self.tb_num,
            self.tb_den,
        )
    }

    /// Frames needed to cover `samples` of 48 kHz audio (rounded up).
    pub fn frames_for_samples(&self, samples: u64) -> u64 {
        // samples / 48000 seconds * fps_num / fps_den frames, rounded up.
        let num = samples as u128 * self.fps_num as u128;
        let den = SAMPLE_RATE as u128 * self.fps_den as u128;
        num.div_ceil(den) as u64
    }

    /// The audio sample at which frame `frame` starts (rounded to nearest).
    pub fn sample_at_frame(&self, frame: u64) -> u64 {
        let num = frame as u128 * SAMPLE_RATE as u128 * self.fps_den as u128;
        let den = self.fps_num as u128;
        ((num + den / 2) / den) as u64
    }

    /// Bytes of one decoded yuv420p frame.
    pub(crate) fn frame_bytes(&self) -> usize {
        let (w, h) = (self.width as usize, self.height as usize);
        w * h + 2 * (w.div_ceil(2) * h.div_ceil(2))
    }
}

#[cfg(test)]
impl VideoInfo {
    /// A 480p H.264 stream as Manim 0.22 writes it, for unit tests.
    pub fn fixture(fps: u64, frames: u64) -> VideoInfo {
        VideoInfo {
            codec: "h264".into(),
            profile: "High".into(),
            pix_fmt: "yuv420p".into(),
            width: 854,
            height: 480,
            fps_num: fps,
            fps_den: 1,
            tb_num: 1,
            tb_den: 15360,
            frames,
        }
    }
}

fn parse_ratio(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once('/')?;
    let (a, b) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (b != 0 && a != 0).then_some((a, b))
}

/// Output options that encode like Manim's own files (libx264, High,
/// yuv420p, crf 23, default preset) with the given MP4 timescale, so the
/// result joins Manim's videos by stream copy.
pub fn manim_x264_args(timescale: u64) -> [OsString; 13] {
    args![
        "-c:v",
        "libx264",
        "-preset",
        "medium",
        "-crf",
        "23",
        "-profile:v",
        "high",
        "-pix_fmt",
        "yuv420p",
        "-video_track_timescale",
        timescale.to_string(),
        "-an"
    ]
}

/// x264 without look-ahead for a held frame: the frames do not change, so
/// there is nothing to look ahead for (no adaptive B-frames, scene cuts or
/// macroblock tree). None of these touch the stream's parameter sets, so
/// the tail still joins Manim's video by stream copy (tests/e2e_warm.rs
/// compares them). Measured on 91-frame 1080p60 holds of the example's
/// last frames: 0.8-0.9 CPU-s instead of 1.1-1.2 s with `rc-lookahead=5`
/// (and 1.7 s with the preset's 40), and closer to the frame it holds
/// (58-60 dB PSNR instead of 51-52 dB) for 20% more bytes.
const HOLD_X264: [&str; 2] = [
    "-x264-params",
    "rc-lookahead=0:mbtree=0:b-adapt=0:scenecut=0",
];

/// Where to seek to get only the last frame of a video (half a frame
/// before it), if it has more than one.
fn last_frame_at(info: &VideoInfo) -> Option<String> {
    (info.frames >= 2 && info.fps_num > 0).then(|| {
        let at = (info.frames as f64 - 1.5) * info.fps_den as f64 / info.fps_num as f64;
        format!("{at:.6}")
    })
}

/// The arguments of an ffmpeg run that loops the one frame of `input`
/// (after `pts`, a filter that retimes it, if any) into each of `outs`,
/// `(frames, path)`, encoded with Manim's codec settings and [`HOLD_X264`].
fn hold_args(
    input: &[OsString],
    pts: &str,
    info: &VideoInfo,
    outs: &[(u64, &Path)],
) -> Vec<OsString> {
    let most = outs.iter().map(|o| o.0).max().unwrap_or(1);
    let labels: String = (0..outs.len()).map(|i| format!("[o{i}]")).collect();
    let graph = format!(
        "[0:v]loop=loop={}:size=1:start=0,{pts}split={}{labels}",
        most.saturating_sub(1),
        outs.len()
    );
    let timescale = info.tb_den / info.tb_num.max(1);
    let mut args: Vec<OsString> = args!["-nostdin", "-v", "error", "-y"].into();
    args.extend(input.iter().cloned());
    args.extend(args!["-filter_complex", graph]);
    for (i, (frames, path)) in outs.iter().enumerate() {
        args.extend(args![
            "-map",
            format!("[o{i}]"),
            "-frames:v",
            frames.to_string()
        ]);
        args.extend(manim_x264_args(timescale));
        args.extend(HOLD_X264.map(OsString::from));
        args.push(path.into());
    }
    args
}

#[derive(Debug, Clone)]
pub struct Ffmpeg {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// Added to the niceness of every process this starts (see
    /// [`Ffmpeg::in_background`]).
    nice: i32,
}

impl Ffmpeg {
    pub fn new(ffmpeg: impl Into<PathBuf>, ffprobe: impl Into<PathBuf>) -> Ffmpeg {
        Ffmpeg {
            ffmpeg: ffmpeg.into(),
            ffprobe: ffprobe.into(),
            nice: 0,
        }
    }

    /// The same tools, started at a lower CPU priority: work that renders
    /// running beside it should not wait for (a mux while scenes render).
    pub fn in_background(&self) -> Ffmpeg {
        Ffmpeg {
            nice: BACKGROUND_NICE,
            ..self.clone()
        }
    }

    /// A command for `prog` (`self.ffmpeg` or `self.ffprobe`) at this
    /// priority.
    pub fn command(&self, prog: &Path) -> Command {
        let mut cmd = Command::new(prog);
        if self.nice != 0 {
            let nice = self.nice;
            // SAFETY: nice(2) is a system call; nothing allocates. It fails
            // only when the priority cannot change, which is harmless.
            unsafe {
                cmd.pre_exec(move || {
                    libc::nice(nice);
                    Ok(())
                });
            }
        }
        cmd
    }

    async fn run(
        &self,
        tool: &'static str,
        args: &[OsString],
        what: &Path,
    ) -> Result<Vec<u8>, Error> {
        let prog = if tool == "ffprobe" {
            &self.ffprobe
        } else {
            &self.ffmpeg
        };
        // Its own process group, dying with parender (kill -9 included); a
        // cancelled build drops this future, which kills the whole group.
        let mut cmd = self.command(prog);
        cmd.args(args);
        let out = crate::procs::output(cmd).await.map_err(|e| Error::Media {
            tool,
            what: what.display().to_string(),
            message: format!("cannot run {}: {e}", prog.display()),
        })?;
        if !out.status.success() {
            return Err(Error::Media {
                tool,
                what: what.display().to_string(),
                message: crate::procs::tail_lines(&out.stderr, 8),
            });
        }
        Ok(out.stdout)
    }

    /// Codec parameters and exact frame count (packets counted, not guessed
    /// from the container's duration).
    pub async fn probe_video(&self, path: &Path) -> Result<VideoInfo, Error> {
        let streams = self.probe_streams(path, "v:0").await?;
        let s = streams.into_iter().next().ok_or_else(|| no_video(path))?;
        video_info(path, s)
    }

    /// [`Self::probe_video`] and whether there is an audio stream too (Manim
    /// adds one for `add_sound`), in one ffprobe run.
    pub async fn probe_render(&self, path: &Path) -> Result<(VideoInfo, bool), Error> {
        let streams = self.probe_streams(path, "").await?;
        let audio = streams
            .iter()
            .any(|s| s.codec_type.as_deref() == Some("audio"));
        let video = streams
            .into_iter()
            .find(|s| s.codec_type.as_deref() == Some("video"))
            .ok_or_else(|| no_video(path))?;
        Ok((video_info(path, video)?, audio))
    }

    /// The streams `select` picks (all when empty), packets counted.
    async fn probe_streams(&self, path: &Path, select: &str) -> Result<Vec<Stream>, Error> {
        let entries = "stream=codec_type,codec_name,profile,pix_fmt,width,height,r_frame_rate,time_base,nb_read_packets";
        let options = ["-count_packets", "-show_entries", entries, "-of", "json"];
        let out = if select.is_empty() {
            let mut a = args!["-v", "error"].to_vec();
            a.extend(options.iter().map(OsString::from));
            a.push(path.into());
            self.run("ffprobe", &a, path).await?
        } else {
            self.probe(path, select, &options).await?
        };
        #[derive(Deserialize)]
        struct Probe {
            streams: Vec<Stream>,
        }
        let p: Probe =
            serde_json::from_slice(&out).map_err(|e| probe_error(path, &e.to_string()))?;
        Ok(p.streams)
    }

    /// `ffprobe` of the `streams` of `path` with `options`: its output.
    async fn probe(&self, path: &Path, streams: &str, options: &[&str]) -> Result<Vec<u8>, Error> {
        let mut a = args!["-v", "error", "-select_streams", streams].to_vec();
        a.extend(options.iter().map(OsString::from));
        a.push(path.into());
        self.run("ffprobe", &a, path).await
    }

    /// Whether `path` has an audio stream (Manim adds one for `add_sound`).
    pub async fn has_audio(&self, path: &Path) -> Result<bool, Error> {
        let out = self
            .probe(
                path,
                "a",
                &["-show_entries", "stream=index", "-of", "csv=p=0"],
            )
            .await?;
        Ok(!String::from_utf8_lossy(&out).trim().is_empty())
    }

    /// The video streams of a concat demuxer `list` joined by stream copy
    /// into the MP4 `out`, with the pieces' timescale (`info`'s time base)
    /// and no metadata of theirs.
    pub async fn concat_copy(
        &self,
        list: &Path,
        info: &VideoInfo,
        out: &Path,
    ) -> Result<(), Error> {
        let timescale = (info.tb_den / info.tb_num.max(1)).to_string();
        let a = args![
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            list,
            "-map",
            "0:v:0",
            "-c",
            "copy",
            "-map_metadata",
            "-1",
            "-video_track_timescale",
            timescale,
            "-f",
            "mp4",
            out,
        ];
        self.run("ffmpeg", &a, out).await?;
        Ok(())
    }

    /// `ffmpeg -i input <options> out`: one file converted to another.
    async fn convert(&self, input: &Path, options: &[&str], out: &Path) -> Result<(), Error> {
        let mut a = args!["-nostdin", "-v", "error", "-y", "-i", input].to_vec();
        a.extend(options.iter().map(OsString::from));
        a.push(out.into());
        self.run("ffmpeg", &a, input).await?;
        Ok(())
    }

    /// Copies the video stream of `video` alone into `out` (no re-encode,
    /// the same MP4 timescale), so a piece never carries a stream whose
    /// length differs from its video.
    pub async fn video_only(
        &self,
        video: &Path,
        info: &VideoInfo,
        out: &Path,
    ) -> Result<(), Error> {
        let timescale = (info.tb_den / info.tb_num.max(1)).to_string();
        let opts = ["-map", "0:v:0", "-c", "copy", "-map_metadata", "-1"];
        let ts = ["-video_track_timescale", &timescale, "-f", "mp4"];
        self.convert(video, &[&opts[..], &ts[..]].concat(), out)
            .await
    }

    /// The audio stream of `video`, decoded to a WAV file.
    pub async fn extract_audio(&self, video: &Path, out: &Path) -> Result<(), Error> {
        self.convert(video, &["-vn", "-c:a", "pcm_s16le", "-f", "wav"], out)
            .await
    }

    /// Decodes any audio file to raw 48 kHz stereo s16le PCM; returns the
    /// number of sample frames.
    pub async fn decode_audio(&self, audio: &Path, pcm: &Path) -> Result<u64, Error> {
        let opts = [&AUDIO_48K_STEREO[..], &["-f", "s16le", "-c:a", "pcm_s16le"]].concat();
        self.convert(audio, &opts, pcm).await?;
        let len = std::fs::metadata(pcm).map_err(|e| Error::io(pcm, e))?.len();
        Ok(len / BYTES_PER_SAMPLE)
    }

    /// Decodes any audio file straight to FLAC of 48 kHz stereo s16 (the
    /// samples [`Ffmpeg::decode_audio`] gives, in one ffmpeg run instead of a
    /// decode and an encode); returns the number of sample frames, read from
    /// the FLAC's stream header.
    pub async fn decode_audio_flac(&self, audio: &Path, flac: &Path) -> Result<u64, Error> {
        let flac_s16 = ["-sample_fmt", "s16", "-c:a", "flac", "-f", "flac"];
        let opts = [&AUDIO_48K_STEREO[..], &flac_s16].concat();
        self.convert(audio, &opts, flac).await?;
        let bad = |message: String| Error::Media {
            tool: "flac",
            what: flac.display().to_string(),
            message,
        };
        let reader = claxon::FlacReader::open(flac).map_err(|e| bad(e.to_string()))?;
        let info = reader.streaminfo();
        if info.sample_rate as u64 != SAMPLE_RATE || info.channels as u64 != CHANNELS {
            return Err(bad(format!(
                "ffmpeg wrote {} Hz with {} channels",
                info.sample_rate, info.channels
            )));
        }
        info.samples
            .ok_or_else(|| bad("its length is not in its header".into()))
    }

    /// The decoded last frame of `video`, as raw yuv420p.
    pub async fn last_frame(&self, video: &Path, info: &VideoInfo) -> Result<Vec<u8>, Error> {
        let n = info.frame_bytes();
        // Decoding starts at the keyframe before the seek point either way;
        // only the last frame is written out (a 1080p tail of 1.5 s piped
        // whole was 280 MB and half a second).
        if let Some(at) = last_frame_at(info) {
            let args = args![
                "-nostdin",
                "-v",
                "error",
                "-ss",
                at,
                "-i",
                video,
                "-frames:v",
                "1",
                "-f",
                "rawvideo",
                "-pix_fmt",
                "yuv420p",
                "pipe:1",
            ];
            let out = self.run("ffmpeg", &args, video).await?;
            if out.len() == n {
                return Ok(out);
            }
        }
        // Timestamps off the frame grid: decode the last second and a half
        // (all of a short video) and keep its last whole frame.
        let seek = if info.seconds() > 1.5 { "-1.5" } else { "0" };
        let mut args = args!["-nostdin", "-v", "error"].to_vec();
        if seek != "0" {
            args.extend(args!["-sseof", seek]);
        }
        args.extend(args![
            "-i", video, "-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1",
        ]);
        let out = self.run("ffmpeg", &args, video).await?;
        if out.len() < n {
            return Err(Error::Media {
                tool: "ffmpeg",
                what: video.display().to_string(),
                message: "could not decode the last frame".into(),
            });
        }
        let whole = out.len() / n * n;
        Ok(out[whole - n..whole].to_vec())
    }

    /// Encodes `frames` copies of the last frame of `video` as
    /// [`Ffmpeg::encode_hold`] does, in one ffmpeg run that seeks to that
    /// frame, decodes it and loops it (no raw frame written in between). It
    /// finds no frame when the video's timestamps are off its frame grid:
    /// callers check the result and fall back to [`Ffmpeg::last_frame`].
    pub async fn encode_hold_of(
        &self,
        video: &Path,
        info: &VideoInfo,
        frames: u64,
        out: &Path,
    ) -> Result<(), Error> {
        self.encode_holds_of(video, info, &[(frames, out)]).await
    }

    /// [`Ffmpeg::encode_hold_of`] into several files at once, each `(frames,
    /// path)`: one seek, one decode, one process.
    pub async fn encode_holds_of(
        &self,
        video: &Path,
        info: &VideoInfo,
        outs: &[(u64, &Path)],
    ) -> Result<(), Error> {
        let Some(at) = last_frame_at(info) else {
            return Err(Error::Media {
                tool: "ffmpeg",
                what: video.display().to_string(),
                message: "too short to seek to its last frame".into(),
            });
        };
        let input = args!["-ss", at, "-i", video];
        let args = hold_args(&input, "setpts=N/FRAME_RATE/TB,", info, outs);
        self.run("ffmpeg", &args, video).await?;
        Ok(())
    }

    /// Encodes `frames` copies of one raw frame with the codec settings of
    /// Manim's own files (libx264, High, yuv420p, crf 23, default preset) and
    /// the same frame rate and time base, so it joins them by stream copy.
    pub async fn encode_hold(
        &self,
        frame: &Path,
        info: &VideoInfo,
        frames: u64,
        out: &Path,
    ) -> Result<(), Error> {
        self.encode_holds(frame, info, &[(frames, out)]).await
    }

    /// [`Ffmpeg::encode_hold`] into several files at once, each `(frames,
    /// path)`.
    pub async fn encode_holds(
        &self,
        frame: &Path,
        info: &VideoInfo,
        outs: &[(u64, &Path)],
    ) -> Result<(), Error> {
        let size = format!("{}x{}", info.width, info.height);
        let rate = format!("{}/{}", info.fps_num, info.fps_den);
        let input = args![
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            size,
            "-framerate",
            rate,
            "-i",
            frame
        ];
        let args = hold_args(&input, "", info, outs);
        self.run("ffmpeg", &args, frame).await?;
        Ok(())
    }

    /// The frame of `video` at `seconds` as a JPEG 320 pixels wide.
    pub async fn thumbnail(&self, video: &Path, seconds: f64, out: &Path) -> Result<(), Error> {
        let at = format!("{seconds:.3}");
        let args = args![
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-ss",
            at,
            "-i",
            video,
            "-frames:v",
            "1",
            "-vf",
            "scale=320:-2",
            "-q:v",
            "4",
            "-f",
            "image2",
            "-c:v",
            "mjpeg",
            out,
        ];
        self.run("ffmpeg", &args, video).await?;
        Ok(())
    }

    /// 48 kHz stereo s16le PCM in `pcm`, encoded to AAC in ADTS (returned),
    /// the encoder's priming packet first.
    pub async fn encode_aac(&self, pcm: &Path, bitrate: &str) -> Result<Vec<u8>, Error> {
        let args = args![
            "-nostdin", "-v", "error", "-f", "s16le", "-ar", "48000", "-ac", "2", "-i", pcm,
            "-c:a", "aac", "-b:a", bitrate, "-f", "adts", "pipe:1",
        ];
        self.run("ffmpeg", &args, pcm).await
    }

    /// Joins the pieces of `m.concat_list` (identical formats) and the AAC
    /// track by stream copy, with the chapters of an
    /// FFMETADATA file and, when given, an SRT file as a soft subtitle
    /// track (mov_text).
    pub async fn final_mux(&self, m: &FinalMux<'_>) -> Result<(), Error> {
        let ts = m.timescale.to_string();
        let mut a = args![
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            m.concat_list,
            "-itsoffset",
            AAC_PRIMING_SECONDS,
            "-f",
            "aac",
            "-i",
            m.aac,
            "-f",
            "ffmetadata",
            "-i",
            m.chapters,
        ]
        .to_vec();
        if let Some(srt) = m.subtitles {
            a.extend(args!["-f", "srt", "-i", srt]);
        }
        a.extend(args![
            "-map",
            "0:v:0",
            "-map",
            "1:a:0",
            "-map_chapters",
            "2",
            "-map_metadata",
            "2",
        ]);
        if m.subtitles.is_some() {
            a.extend(args!["-map", "3:s:0", "-c:s", "mov_text"]);
        }
        a.extend(args![
            "-c:v",
            "copy",
            "-c:a",
            "copy",
            "-video_track_timescale",
            ts,
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            m.out,
        ]);
        self.run("ffmpeg", &a, m.out).await?;
        Ok(())
    }
}

/// What [`Ffmpeg::final_mux`] joins into the final video.
pub struct FinalMux<'a> {
    /// The concat demuxer's list, with every piece's exact duration.
    pub concat_list: &'a Path,
    /// The whole audio track: AAC in ADTS, with the encoder's priming
    /// packet first (see [`crate::media::aac`]).
    pub aac: &'a Path,
    /// FFMETADATA with one `[CHAPTER]` per scene.
    pub chapters: &'a Path,
    /// An SRT file to embed as a soft subtitle track.
    pub subtitles: Option<&'a Path>,
    /// The video's MP4 timescale (Manim's time base).
    pub timescale: u64,
    pub out: &'a Path,
}

/// What unit tests that need the real tools share.
#[cfg(test)]
pub mod testing {
    use std::ffi::OsStr;

    /// The ffmpeg and ffprobe on PATH.
    pub fn on_path() -> super::Ffmpeg {
        super::Ffmpeg::new("ffmpeg", "ffprobe")
    }

    /// Runs `ffmpeg -nostdin -v error -y ARGS`; its stdout. Panics if it fails.
    pub fn ffmpeg<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Vec<u8> {
        let out = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y"])
            .args(args)
            .output()
            .expect("ffmpeg runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "ffmpeg failed: {err}");
        out.stdout
    }

    /// Every decoded frame of `video`, yuv420p, end to end.
    pub fn decoded_frames(video: &std::path::Path) -> Vec<u8> {
        let input = [OsStr::new("-i"), video.as_os_str()];
        let raw = ["-f", "rawvideo", "-pix_fmt", "yuv420p", "pipe:1"].map(OsStr::new);
        ffmpeg(input.into_iter().chain(raw))
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[tokio::test]
    async fn work_in_the_background_runs_at_a_lower_priority() {
        // `nice` without arguments prints its own niceness.
        let niceness = |ff: Ffmpeg| async move {
            let out = ff.command(Path::new("nice")).output().await.unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            said.trim().parse::<i32>().unwrap()
        };
        let ff = Ffmpeg::new("ffmpeg", "ffprobe");
        let ours = niceness(ff.clone()).await;
        let background = niceness(ff.in_background()).await;
        assert_eq!(background, (ours + BACKGROUND_NICE).min(19));
    }

    fn info(fps: u64) -> VideoInfo {
        VideoInfo::fixture(fps, 30)
    }

    #[test]
    fn frame_and_sample_arithmetic() {
        let i = info(15);
        assert_eq!(i.seconds(), 2.0);
        // 1 s of audio is exactly 15 frames; one more sample needs a 16th.
        assert_eq!(i.frames_for_samples(48_000), 15);
        assert_eq!(i.frames_for_samples(48_001), 16);
        assert_eq!(i.frames_for_samples(0), 0);
        assert_eq!(i.sample_at_frame(15), 48_000);
        assert_eq!(i.sample_at_frame(1), 3_200);
        let ntsc = VideoInfo {
            fps_num: 30000,
            fps_den: 1001,
            ..i.clone()
        };
        assert_eq!(ntsc.sample_at_frame(30), 48_048);
        assert_eq!(i.frame_bytes(), 854 * 480 * 3 / 2);
    }

    /// Every frame of `video` decoded, as yuv420p.

    #[tokio::test]
    async fn the_last_frame_is_the_last_decoded_one() {
        let t = tempfile::tempdir().unwrap();
        let ff = testing::on_path();
        // Every frame differs (brightness steps with the frame number); time
        // base 1/15360 as Manim's.
        for (name, frames, fps) in [
            ("a.mp4", 47u64, 15u64),
            ("b.mp4", 131, 60),
            ("c.mp4", 1, 30),
        ] {
            let video = t.path().join(name);
            stepping_video(&video, frames, fps);
            let info = ff.probe_video(&video).await.unwrap();
            assert_eq!(info.frames, frames);
            let all = testing::decoded_frames(&video);
            let n = info.frame_bytes();
            assert_eq!(all.len(), n * frames as usize);
            let last = ff.last_frame(&video, &info).await.unwrap();
            assert!(last == all[all.len() - n..], "{name}: not the last frame");
            assert!(frames == 1 || last != all[all.len() - 2 * n..all.len() - n]);
        }
    }

    /// A video of `frames` frames that all differ, time base 1/15360.
    fn stepping_video(path: &Path, frames: u64, fps: u64) {
        let src = format!(
            "color=black:size=64x48:rate={fps},format=yuv420p,geq=lum='mod(N*3+X,256)':cb=128:cr=128"
        );
        let n = frames.to_string();
        let args = [
            "-f",
            "lavfi",
            "-i",
            &src,
            "-frames:v",
            &n,
            "-c:v",
            "libx264",
        ];
        let tb = ["-pix_fmt", "yuv420p", "-video_track_timescale", "15360"];
        testing::ffmpeg(
            args.iter()
                .chain(&tb)
                .map(OsStr::new)
                .chain([path.as_os_str()]),
        );
    }

    #[tokio::test]
    async fn a_hold_in_one_run_equals_one_from_the_decoded_last_frame() {
        let t = tempfile::tempdir().unwrap();
        let ff = testing::on_path();
        let video = t.path().join("v.mp4");
        stepping_video(&video, 40, 15);
        let info = ff.probe_video(&video).await.unwrap();
        let one_run = t.path().join("a.mp4");
        ff.encode_hold_of(&video, &info, 23, &one_run)
            .await
            .unwrap();
        let raw = t.path().join("last.yuv");
        std::fs::write(&raw, ff.last_frame(&video, &info).await.unwrap()).unwrap();
        let two_runs = t.path().join("b.mp4");
        ff.encode_hold(&raw, &info, 23, &two_runs).await.unwrap();
        let a = ff.probe_video(&one_run).await.unwrap();
        assert_eq!((a.frames, a.format()), (23, info.format()));
        assert!(testing::decoded_frames(&one_run) == testing::decoded_frames(&two_runs));
        // Not some other frame of the video.
        let n = info.frame_bytes();
        let first_held = &testing::decoded_frames(&one_run)[..n];
        let before_last = &testing::decoded_frames(&video)[38 * n..39 * n];
        assert!(first_held != before_last);
    }

    #[tokio::test]
    async fn holds_into_several_files_in_one_run_equal_one_file_each() {
        let t = tempfile::tempdir().unwrap();
        let ff = testing::on_path();
        let video = t.path().join("v.mp4");
        stepping_video(&video, 40, 15);
        let info = ff.probe_video(&video).await.unwrap();
        let (a, b) = (t.path().join("a.mp4"), t.path().join("b.mp4"));
        ff.encode_holds_of(&video, &info, &[(8, &a), (3, &b)])
            .await
            .unwrap();
        for (frames, path) in [(8, &a), (3, &b)] {
            let alone = t.path().join(format!("alone-{frames}.mp4"));
            ff.encode_hold_of(&video, &info, frames, &alone)
                .await
                .unwrap();
            let got = ff.probe_video(path).await.unwrap();
            assert_eq!((got.frames, got.format()), (frames, info.format()));
            assert!(
                testing::decoded_frames(path) == testing::decoded_frames(&alone),
                "{frames} frames"
            );
        }
    }

    #[test]
    fn ratios() {
        assert_eq!(parse_ratio("1/15360"), Some((1, 15360)));
        assert_eq!(parse_ratio("0/0"), None);
        assert_eq!(parse_ratio("x"), None);
    }
}
