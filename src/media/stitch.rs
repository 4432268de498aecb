//! Stitching: all segments into one video, with chapters and subtitles,
//! published atomically.
//!
//! Video: every piece has the same codec parameters and time base (checked),
//! so the concat demuxer joins them by stream copy; each piece's duration is
//! written into the concat list from the [`Timeline`] (whole frames), so no
//! container's rounded duration can push a frame off the grid. Audio: one
//! PCM track laid out by sample count, each scene starting at the sample
//! where its first frame starts, then encoded to AAC by [`aac`] (only the
//! chunks that changed since an earlier stitch); the segments'
//! FLAC audio is decoded for it by one ffmpeg run (the concat demuxer, whose
//! output is checked against every segment's sample count). Chapters (one
//! per scene) and subtitles (every scene's cues, shifted to its start) come
//! from the same timeline.
//!
//! Publishing: the side files and the video are written to locked temp files
//! beside the output (`.NAME.XXXXXX.partial`, mode 0666 & !umask like any
//! new file), and only when all are whole, and the build was not
//! interrupted, renamed into place: side files first, the video last. Temp
//! files a killed build left beside the output are removed by the next one.
use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use crate::config::SubtitleMode;
use crate::error::Error;
use crate::ffmpeg::{BYTES_PER_SAMPLE, Ffmpeg, FinalMux};
use crate::media::aac;
use crate::media::mux::Segment;
use crate::media::subtitles::{self, Cue};
use crate::media::timeline::{Timeline, concat_line};

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
/// The segments' audio is decoded by one ffmpeg run into a pipe.
async fn write_track(
    ff: &Ffmpeg,
    segments: &[&Segment],
    work: &Path,
    out: &Path,
) -> Result<(), Error> {
    let file = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let mut w = std::io::BufWriter::new(file);
    let flacs: Vec<&Path> = segments
        .iter()
        .filter_map(|s| s.audio.as_ref().map(|(p, _)| p.as_path()))
        .collect();
    if flacs.is_empty() {
        lay_out(segments, &[][..], &mut w)
            .await
            .map_err(|e| Error::io(out, e))?;
    } else {
        let list = work.join("audio.txt");
        let text: String = flacs.iter().map(|p| concat_line(p)).collect();
        std::fs::write(&list, text).map_err(|e| Error::io(&list, e))?;
        let mut cmd = tokio::process::Command::new(&ff.ffmpeg);
        cmd.args([
            "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i",
        ])
        .arg(&list)
        .args(["-vn", "-f", "s16le", "-c:a", "pcm_s16le", "pipe:1"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        // Dies with parender; killed if this future is dropped (cancelled).
        crate::procs::contain(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| Error::Media {
            tool: "ffmpeg",
            what: list.display().to_string(),
            message: format!("cannot run {}: {e}", ff.ffmpeg.display()),
        })?;
        let _group = crate::procs::GroupGuard::new(&child);
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(Error::Other("ffmpeg's output pipes are missing".into()));
        };
        let mut errors = Vec::new();
        let (laid, _) = tokio::join!(
            lay_out(segments, stdout, &mut w),
            stderr.read_to_end(&mut errors)
        );
        let status = child.wait().await.map_err(|e| Error::io(&ff.ffmpeg, e))?;
        if !status.success() || laid.is_err() {
            let mut message = crate::procs::tail_lines(&errors, 8);
            if let Err(e) = laid {
                message = format!("{e}; {message}");
            }
            return Err(Error::Media {
                tool: "ffmpeg",
                what: list.display().to_string(),
                message,
            });
        }
    }
    w.flush().map_err(|e| Error::io(out, e))?;
    Ok(())
}

/// Lays the segments' audio out (read from `audio`: every segment's samples,
/// end to end, exactly as many as each says) into `out`, each segment from
/// the sample where its first frame starts, silence where it has none.
async fn lay_out(
    segments: &[&Segment],
    mut audio: impl AsyncRead + Unpin,
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
                audio.read_exact(&mut buf[..n]).await.map_err(|e| {
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
    if audio.read(&mut buf[..1]).await? != 0 {
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
    let segments: Vec<&Segment> = parts.iter().map(|p| &p.segment).collect();
    write_track(ff, &segments, work, &track).await?;
    let aac = work.join("track.aac");
    let encoder = aac::Encoder {
        ffmpeg: ff,
        kept: st.aac_chunks,
        work,
        jobs: st.jobs,
    };
    let encoded = encoder.encode(&track, &aac).await?;
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
        seconds: segments.iter().map(|s| s.seconds()).sum(),
        chapters: chapter_list,
        subtitles: published_srt,
        side_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffmpeg::VideoInfo;
    use crate::scene::SceneId;

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

    #[tokio::test]
    async fn track_is_laid_out_by_sample_count() {
        let a = Some((PathBuf::from("a.flac"), 1000));
        let segs = [seg(15, a.clone()), seg(3, None), seg(1, a)];
        // The decoded audio: 1000 samples of 0x01, then 1000 of 0x02.
        let audio = [vec![1u8; 1000 * 4], vec![2u8; 1000 * 4]].concat();
        let mut data = Vec::new();
        lay_out(&segs.iter().collect::<Vec<_>>(), &audio[..], &mut data)
            .await
            .unwrap();
        // 15 + 3 + 1 frames at 15 fps = 19 * 3200 samples.
        assert_eq!(data.len(), 19 * 3200 * 4);
        assert!(data[..4000].iter().all(|b| *b == 1));
        assert!(data[4000..48_000 * 4].iter().all(|b| *b == 0));
        // The third segment starts exactly at frame 18 = sample 57600.
        let s3 = 18 * 3200 * 4;
        assert!(data[s3..s3 + 4000].iter().all(|b| *b == 2));
        assert!(data[s3 + 4000..].iter().all(|b| *b == 0));
    }

    #[tokio::test]
    async fn audio_that_does_not_match_the_sample_counts_is_an_error() {
        let segs = [seg(15, Some((PathBuf::from("a.flac"), 1000)))];
        let segs: Vec<&Segment> = segs.iter().collect();
        let short = vec![1u8; 999 * 4];
        let e = lay_out(&segs, &short[..], &mut Vec::new()).await;
        assert!(e.unwrap_err().to_string().contains("ended early"));
        let long = vec![1u8; 1001 * 4];
        let e = lay_out(&segs, &long[..], &mut Vec::new()).await;
        assert!(e.unwrap_err().to_string().contains("longer"));
        // A segment's audio past its last frame is read and dropped.
        let segs = [seg(1, Some((PathBuf::from("a.flac"), 5000)))];
        let mut data = Vec::new();
        let audio = vec![3u8; 5000 * 4];
        lay_out(&segs.iter().collect::<Vec<_>>(), &audio[..], &mut data)
            .await
            .unwrap();
        assert_eq!(data, vec![3u8; 3200 * 4]);
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
