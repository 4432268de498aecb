//! Stitching: all segments into one video, with chapters and subtitles,
//! published atomically.
//!
//! Video: every piece has the same codec parameters and time base (checked),
//! so the concat demuxer joins them by stream copy; each piece's duration is
//! written into the concat list from the [`Timeline`] (whole frames), so no
//! container's rounded duration can push a frame off the grid. Audio: one
//! PCM track laid out by sample count, each scene starting at the sample
//! where its first frame starts, then encoded to AAC by [`aac`] (only the
//! chunks that changed since an earlier stitch); the segments' FLAC audio
//! is decoded for it in process (checked against every segment's sample
//! count). Chapters (one
//! per scene) and subtitles (every scene's cues, shifted to its start) come
//! from the same timeline.
//!
//! Publishing: the side files and the video are written to locked temp files
//! beside the output (`.NAME.XXXXXX.partial`, mode 0666 & !umask like any
//! new file), and only when all are whole, and the build was not
//! interrupted, renamed into place: side files first, the video last. Temp
//! files a killed build left beside the output are removed by the next one.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::config::SubtitleMode;
use crate::error::Error;
use crate::ffmpeg::{BYTES_PER_SAMPLE, Ffmpeg, FinalMux, SAMPLE_RATE};
use crate::media::aac;
use crate::media::mux::Segment;
use crate::media::subtitles::{self, Cue};
use crate::media::timeline::Timeline;

/// One scene of the final video: its segment, chapter title and subtitles.
#[derive(Debug, Clone)]
pub struct Part {
    pub segment: Segment,
    pub title: String,
    /// The SRT its render wrote (`add_subcaption`), if any.
    pub subtitles: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Stitched {
    pub output: PathBuf,
    pub frames: u64,
    pub seconds: f64,
    /// Files written beside the video: the chapter list, subtitles.
    pub chapters: PathBuf,
    pub subtitles: Option<PathBuf>,
    pub side_files: Vec<PathBuf>,
}

/// The concat list of every part's pieces, each with its exact duration.
fn concat_list(parts: &[Part], timeline: &Timeline) -> String {
    let pieces = parts.iter().flat_map(|p| &p.segment.pieces);
    timeline.concat_list(pieces.map(|p| (p.path.as_path(), p.frames)))
}

/// Writes the whole audio track to `out`: for each segment, its audio then
/// silence up to the sample where the next segment's first frame starts.
/// The segments' FLAC is decoded here, in process, on a blocking thread
/// that stops at its next write once `cancel` fires (an hour of audio takes
/// seconds; Ctrl-C must not wait for it).
async fn write_track(
    segments: Vec<Segment>,
    out: &Path,
    cancel: &CancellationToken,
) -> Result<(), Error> {
    let (path, stop) = (out.to_path_buf(), cancel.clone());
    let work = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = std::io::BufWriter::new(Stoppable(file, stop));
        let flacs = segments
            .iter()
            .filter_map(|s| s.audio.as_ref().map(|(p, _)| p.clone()));
        let audio = FlacChain::new(flacs.collect());
        let segments: Vec<&Segment> = segments.iter().collect();
        lay_out(&segments, audio, &mut w).map_err(|e| Error::Media {
            tool: "flac",
            what: path.display().to_string(),
            message: e.to_string(),
        })?;
        w.flush().map_err(|e| Error::io(&path, e))
    });
    tokio::select! {
        _ = cancel.cancelled() => Err(Error::Interrupted),
        done = work => done.map_err(|e| Error::Other(format!("writing the audio track: {e}")))?,
    }
}

/// A writer that fails once its token is cancelled.
struct Stoppable<W>(W, CancellationToken);

impl<W: Write> Write for Stoppable<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.1.is_cancelled() {
            return Err(std::io::Error::other("interrupted"));
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The samples of FLAC files (48 kHz stereo 16-bit, as the mux writes
/// them), one after the other, as s16le bytes.
struct FlacChain {
    files: std::collections::VecDeque<PathBuf>,
    reader: Option<(PathBuf, claxon::FlacReader<std::fs::File>)>,
    block: Vec<i32>,
    bytes: Vec<u8>,
    at: usize,
}

impl FlacChain {
    fn new(files: Vec<PathBuf>) -> FlacChain {
        FlacChain {
            files: files.into(),
            reader: None,
            block: Vec::new(),
            bytes: Vec::new(),
            at: 0,
        }
    }

    fn open(path: &Path) -> std::io::Result<claxon::FlacReader<std::fs::File>> {
        let bad = |e: String| std::io::Error::other(format!("{}: {e}", path.display()));
        let r = claxon::FlacReader::open(path).map_err(|e| bad(e.to_string()))?;
        let i = r.streaminfo();
        if (i.sample_rate, i.channels, i.bits_per_sample) != (SAMPLE_RATE as u32, 2, 16) {
            return Err(bad(format!(
                "{} Hz, {} channels, {} bits, not 48000 Hz stereo 16-bit",
                i.sample_rate, i.channels, i.bits_per_sample
            )));
        }
        Ok(r)
    }

    /// Decodes the next block into `bytes`; false at the end of every file.
    fn refill(&mut self) -> std::io::Result<bool> {
        loop {
            if self.reader.is_none() {
                let Some(path) = self.files.pop_front() else {
                    return Ok(false);
                };
                self.reader = Some((path.clone(), Self::open(&path)?));
            }
            let Some((path, reader)) = self.reader.as_mut() else {
                continue;
            };
            let buffer = std::mem::take(&mut self.block);
            let block = reader
                .blocks()
                .read_next_or_eof(buffer)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
            let Some(block) = block else {
                self.reader = None;
                continue;
            };
            self.bytes.clear();
            self.at = 0;
            for i in 0..block.duration() {
                for ch in 0..2 {
                    let v = block.sample(ch, i) as i16;
                    self.bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            self.block = block.into_buffer();
            return Ok(true);
        }
    }
}

impl std::io::Read for FlacChain {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.bytes.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// Lays the segments' audio out (read from `audio`: every segment's samples,
/// end to end, exactly as many as each says) into `out`, each segment from
/// the sample where its first frame starts, silence where it has none.
fn lay_out(
    segments: &[&Segment],
    mut audio: impl Read,
    out: &mut impl Write,
) -> std::io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    let zeros = vec![0u8; CHUNK];
    let mut buf = vec![0u8; CHUNK];
    let mut frame = 0u64;
    for seg in segments {
        let start = seg.info.sample_at_frame(frame);
        frame += seg.frames;
        let end = seg.info.sample_at_frame(frame);
        let mut left = (end - start) * BYTES_PER_SAMPLE;
        if let Some((_, samples)) = &seg.audio {
            // All of its samples are read; those past its end (none, as
            // its frames cover its audio) are dropped.
            let mut unread = samples * BYTES_PER_SAMPLE;
            while unread > 0 {
                let n = unread.min(CHUNK as u64) as usize;
                audio.read_exact(&mut buf[..n]).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("the audio of {} ended early ({e})", seg.scene),
                    )
                })?;
                let keep = (n as u64).min(left) as usize;
                out.write_all(&buf[..keep])?;
                left -= keep as u64;
                unread -= n as u64;
            }
        }
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            out.write_all(&zeros[..n])?;
            left -= n as u64;
        }
    }
    if audio.read(&mut buf[..1])? != 0 {
        return Err(std::io::Error::other(
            "the decoded audio is longer than the segments' sample counts",
        ));
    }
    Ok(())
}

/// The timeline of `parts`: each scene's title and frames, end to end.
pub fn timeline(parts: &[Part]) -> Option<Timeline> {
    let first = &parts.first()?.segment.info;
    Some(Timeline::new(
        first.fps_num,
        first.fps_den,
        parts.iter().map(|p| (p.title.clone(), p.segment.frames)),
    ))
}

/// Every scene's subtitle cues, shifted to its start in the final video.
pub fn cues(parts: &[Part], timeline: &Timeline) -> Result<Vec<Cue>, Error> {
    let mut all = Vec::new();
    for (part, placed) in parts.iter().zip(&timeline.scenes) {
        let Some(srt) = &part.subtitles else {
            continue;
        };
        let text = std::fs::read_to_string(srt).map_err(|e| Error::io(srt, e))?;
        let from = timeline.millis_at(placed.start);
        let until = timeline.millis_at(placed.start + placed.frames);
        all.extend(subtitles::shift(&subtitles::parse_srt(&text), from, until));
    }
    Ok(all)
}

/// `out/dev/talk.mp4` → `out/dev/talk.<ext>`.
pub fn side_file(output: &Path, ext: &str) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video".into());
    output.with_file_name(format!("{stem}.{ext}"))
}

fn check_formats(parts: &[Part]) -> Result<(), Error> {
    let Some(first) = parts.first().map(|p| &p.segment) else {
        return Err(Error::Other(
            "no scene rendered, so there is nothing to stitch".into(),
        ));
    };
    for s in parts.iter().map(|p| &p.segment) {
        if s.info.format() != first.info.format() {
            return Err(Error::Incompatible(format!(
                "{} is {}x{} {}/{} fps (time base {}/{}), but {} is {}x{} {}/{} fps (time base {}/{}); render every scene with one Manim version and one quality",
                s.scene,
                s.info.width,
                s.info.height,
                s.info.fps_num,
                s.info.fps_den,
                s.info.tb_num,
                s.info.tb_den,
                first.scene,
                first.info.width,
                first.info.height,
                first.info.fps_num,
                first.info.fps_den,
                first.info.tb_num,
                first.info.tb_den,
            )));
        }
    }
    Ok(())
}

/// A file staged beside its destination: a locked temp file, renamed into
/// place by [`Staged::publish`], removed if dropped before.
struct Staged {
    tmp: tempfile::NamedTempFile,
    to: PathBuf,
}

impl Staged {
    /// An empty temp file `.NAME.XXXXXX.partial` beside `to`.
    fn new(to: &Path) -> Result<Staged, Error> {
        let dir = to.parent().unwrap_or(Path::new("."));
        let name = to
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video.mp4".into());
        let tmp = crate::fsutil::locked_tempfile(dir, &format!(".{name}."), PARTIAL)?;
        Ok(Staged {
            tmp,
            to: to.to_path_buf(),
        })
    }

    fn with(to: &Path, bytes: &[u8]) -> Result<Staged, Error> {
        let mut s = Staged::new(to)?;
        s.tmp
            .write_all(bytes)
            .map_err(|e| Error::io(s.tmp.path(), e))?;
        s.sync()?;
        Ok(s)
    }

    fn sync(&self) -> Result<(), Error> {
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io(self.tmp.path(), e))
    }

    fn publish(self) -> Result<(), Error> {
        self.tmp
            .persist(&self.to)
            .map(drop)
            .map_err(|e| Error::io(&self.to, e.error))
    }
}

const PARTIAL: &str = ".partial";

/// Removes the temp files of `output` and its side files that a killed
/// build left beside it (`.NAME.XXXXXX.partial` whose lock is free).
pub fn remove_abandoned_partials(output: &Path) -> crate::fsutil::Swept {
    let dir = output.parent().unwrap_or(Path::new("."));
    let Some(stem) = output.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
        return crate::fsutil::Swept::default();
    };
    let prefix = format!(".{stem}.");
    crate::fsutil::remove_abandoned(dir, |n| n.starts_with(&prefix) && n.ends_with(PARTIAL))
}

/// How to stitch: the tools, the folders, the subtitle mode.
pub struct Stitcher<'a> {
    pub ffmpeg: &'a Ffmpeg,
    pub subtitles: SubtitleMode,
    /// This build's scratch folder.
    pub work: &'a Path,
    /// Where the audio track's encoded chunks are kept between stitches.
    pub aac_chunks: &'a Path,
    /// Processes run at once.
    pub jobs: usize,
}

/// Encodes ahead the audio chunks that lie wholly in the scenes that begin
/// the video (`start`, in order), while later scenes still render: a
/// stitch of the whole video then encodes only the rest (see
/// [`aac::Encoder::encode_start`]). Returns how many were encoded.
pub async fn encode_start(
    st: &Stitcher<'_>,
    start: Vec<Segment>,
    cancel: &CancellationToken,
) -> Result<usize, Error> {
    let track = crate::fsutil::locked_tempfile(st.work, ".start-", ".pcm")?;
    write_track(start, track.path(), cancel).await?;
    aac_encoder(st).encode_start(track.path()).await
}

fn aac_encoder<'a>(st: &Stitcher<'a>) -> aac::Encoder<'a> {
    aac::Encoder {
        ffmpeg: st.ffmpeg,
        kept: st.aac_chunks,
        work: st.work,
        jobs: st.jobs,
    }
}

/// Joins `parts` into `output`. Nothing is published once `cancel` fires.
pub async fn stitch(
    st: &Stitcher<'_>,
    parts: &[Part],
    output: &Path,
    cancel: &CancellationToken,
) -> Result<Stitched, Error> {
    let (ff, mode, work) = (st.ffmpeg, st.subtitles, st.work);
    check_formats(parts)?;
    let timeline = timeline(parts).ok_or_else(|| Error::Other("nothing to stitch".into()))?;
    std::fs::create_dir_all(work).map_err(|e| Error::io(work, e))?;
    let write = |name: &str, text: String| -> Result<PathBuf, Error> {
        let path = work.join(name);
        std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    };
    let list = write("concat.txt", concat_list(parts, &timeline))?;
    let chapters = write("chapters.ffmeta", timeline.ffmetadata())?;
    let track = work.join("track.pcm");
    let segments: Vec<Segment> = parts.iter().map(|p| p.segment.clone()).collect();
    write_track(segments, &track, cancel).await?;
    let aac = work.join("track.aac");
    let encoded = aac_encoder(st).encode(&track, &aac).await?;
    tracing::debug!(?encoded, "audio track");

    let cues = match mode {
        SubtitleMode::None => Vec::new(),
        _ => cues(parts, &timeline)?,
    };
    let srt = (!cues.is_empty())
        .then(|| write("subtitles.srt", subtitles::to_srt(&cues)))
        .transpose()?;

    // Everything is staged beside the output, then published together.
    let mut staged = Vec::new();
    let chapter_list = side_file(output, "chapters.txt");
    staged.push(Staged::with(
        &chapter_list,
        timeline.chapter_list().as_bytes(),
    )?);
    let mut side_files = vec![chapter_list.clone()];
    let mut published_srt = None;
    if srt.is_some() {
        let (s, v) = (side_file(output, "srt"), side_file(output, "vtt"));
        staged.push(Staged::with(&s, subtitles::to_srt(&cues).as_bytes())?);
        staged.push(Staged::with(&v, subtitles::to_vtt(&cues).as_bytes())?);
        side_files.extend([s.clone(), v]);
        published_srt = Some(s);
    }
    let video = Staged::new(output)?;
    let first = &parts[0].segment.info;
    ff.final_mux(&FinalMux {
        concat_list: &list,
        aac: &aac,
        chapters: &chapters,
        subtitles: srt.as_deref().filter(|_| mode == SubtitleMode::Embed),
        timescale: first.tb_den / first.tb_num.max(1),
        out: video.tmp.path(),
    })
    .await?;
    video.sync()?;
    if cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    // Side files first: when the new video appears, they already match it.
    for s in staged {
        s.publish()?;
    }
    video.publish()?;
    Ok(Stitched {
        output: output.to_path_buf(),
        frames: timeline.frames(),
        seconds: parts.iter().map(|p| p.segment.seconds()).sum(),
        chapters: chapter_list,
        subtitles: published_srt,
        side_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffmpeg::VideoInfo;
    use crate::ffmpeg::testing::ffmpeg;
    use crate::media::timeline::concat_line;
    use crate::scene::SceneId;
    use std::ffi::OsStr;

    fn seg(frames: u64, audio: Option<(PathBuf, u64)>) -> Segment {
        Segment {
            scene: SceneId("s.py:S".into()),
            pieces: vec![],
            info: VideoInfo::fixture(15, frames),
            frames,
            audio,
            clipped: 0,
            problems: vec![],
        }
    }

    #[test]
    fn track_is_laid_out_by_sample_count() {
        let a = Some((PathBuf::from("a.flac"), 1000));
        let segs = [seg(15, a.clone()), seg(3, None), seg(1, a)];
        // The decoded audio: 1000 samples of 0x01, then 1000 of 0x02.
        let audio = [vec![1u8; 1000 * 4], vec![2u8; 1000 * 4]].concat();
        let mut data = Vec::new();
        lay_out(&segs.iter().collect::<Vec<_>>(), &audio[..], &mut data).unwrap();
        // 15 + 3 + 1 frames at 15 fps = 19 * 3200 samples.
        assert_eq!(data.len(), 19 * 3200 * 4);
        assert!(data[..4000].iter().all(|b| *b == 1));
        assert!(data[4000..48_000 * 4].iter().all(|b| *b == 0));
        // The third segment starts exactly at frame 18 = sample 57600.
        let s3 = 18 * 3200 * 4;
        assert!(data[s3..s3 + 4000].iter().all(|b| *b == 2));
        assert!(data[s3 + 4000..].iter().all(|b| *b == 0));
    }

    #[test]
    fn audio_that_does_not_match_the_sample_counts_is_an_error() {
        let segs = [seg(15, Some((PathBuf::from("a.flac"), 1000)))];
        let segs: Vec<&Segment> = segs.iter().collect();
        let short = vec![1u8; 999 * 4];
        let e = lay_out(&segs, &short[..], &mut Vec::new());
        assert!(e.unwrap_err().to_string().contains("ended early"));
        let long = vec![1u8; 1001 * 4];
        let e = lay_out(&segs, &long[..], &mut Vec::new());
        assert!(e.unwrap_err().to_string().contains("longer"));
        // A segment's audio past its last frame is read and dropped.
        let segs = [seg(1, Some((PathBuf::from("a.flac"), 5000)))];
        let mut data = Vec::new();
        let audio = vec![3u8; 5000 * 4];
        lay_out(&segs.iter().collect::<Vec<_>>(), &audio[..], &mut data).unwrap();
        assert_eq!(data, vec![3u8; 3200 * 4]);
    }

    #[test]
    fn flac_chain_gives_back_every_sample_of_every_file() {
        let t = tempfile::tempdir().unwrap();
        let flac = |name: &str, samples: usize, seed: i32| {
            let pcm: Vec<u8> = (0..samples as i32 * 2)
                .flat_map(|i| ((i * 7919 + seed) % 65536 - 32768).to_le_bytes()[..2].to_vec())
                .collect();
            let (raw, out) = (t.path().join(format!("{name}.pcm")), t.path().join(name));
            std::fs::write(&raw, &pcm).unwrap();
            let pcm_in = ["-f", "s16le", "-ar", "48000", "-ac", "2", "-i"].map(OsStr::new);
            let to_flac = ["-c:a", "flac", "-f", "flac"].map(OsStr::new);
            ffmpeg(
                [
                    &pcm_in[..],
                    &[raw.as_os_str()],
                    &to_flac,
                    &[out.as_os_str()],
                ]
                .concat(),
            );
            (out, pcm)
        };
        let (a, pa) = flac("a.flac", 10_000, 1);
        let (b, pb) = flac("b.flac", 4_321, 2);
        let mut got = Vec::new();
        FlacChain::new(vec![a, b.clone()])
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, [pa, pb].concat());
        // Not what the mux writes: said so, with the file.
        let mono = t.path().join("m.flac");
        let lavfi = ["-f", "lavfi", "-i", "sine=d=0.1", "-ac", "1"];
        ffmpeg(lavfi.iter().map(OsStr::new).chain([mono.as_os_str()]));
        let e = FlacChain::new(vec![b, mono]).read_to_end(&mut Vec::new());
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("m.flac") && e.contains("not 48000 Hz stereo"),
            "{e}"
        );
    }

    #[test]
    fn concat_quoting() {
        assert_eq!(
            concat_line(Path::new("/a/it's.mp4")),
            "file '/a/it'\\''s.mp4'\n"
        );
    }

    #[test]
    fn every_piece_gets_its_exact_duration() {
        let part = |frames: &[u64]| Part {
            segment: Segment {
                pieces: frames
                    .iter()
                    .map(|f| crate::media::mux::Piece {
                        path: PathBuf::from(format!("/p{f}.mp4")),
                        frames: *f,
                    })
                    .collect(),
                ..seg(frames.iter().sum(), None)
            },
            title: "T".into(),
            subtitles: None,
        };
        let parts = vec![part(&[1, 2]), part(&[1])];
        let list = concat_list(&parts, &timeline(&parts).unwrap());
        // 1, 2 and 1 frames at 15 fps: ends at 66667, 200000, 266667 µs.
        assert_eq!(
            list,
            "file '/p1.mp4'\nduration 0.066667\nfile '/p2.mp4'\nduration 0.133333\nfile '/p1.mp4'\nduration 0.066667\n"
        );
    }
}
