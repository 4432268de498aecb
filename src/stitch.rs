//! Stitching: all segments into one video, with chapters and subtitles,
//! published atomically.
//!
//! Video: every piece has the same codec parameters and time base (checked),
//! so the concat demuxer joins them by stream copy; each piece's duration is
//! written into the concat list from the [`Timeline`] (whole frames), so no
//! container's rounded duration can push a frame off the grid. Audio: one
//! PCM track laid out by sample count, each scene starting at the sample
//! where its first frame starts, then encoded to AAC once. Chapters (one per
//! scene) and subtitles (every scene's cues, shifted to its start) come from
//! the same timeline. Side files are written first, then the video goes to
//! a temp file beside the output and is renamed into place.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::media::{BYTES_PER_SAMPLE, Ffmpeg, FinalMux};
use crate::mux::Segment;
use crate::subtitles::{self, Cue};
use crate::timeline::Timeline;

/// `[output] subtitles`: where the scenes' subtitles go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubtitleMode {
    /// `<name>.srt` and `<name>.vtt` beside the video.
    #[default]
    File,
    /// Those files, and a soft subtitle track in the video.
    Embed,
    None,
}

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

fn concat_line(path: &Path) -> String {
    // The concat demuxer's quoting: '...' with ' written as '\''.
    format!(
        "file '{}'\n",
        path.display().to_string().replace('\'', "'\\''")
    )
}

/// The concat list: every piece with its exact duration, as the difference
/// of its end and start on the timeline (so rounding never accumulates).
fn concat_list(parts: &[Part], timeline: &Timeline) -> String {
    let mut out = String::new();
    let mut frame = 0;
    for piece in parts.iter().flat_map(|p| &p.segment.pieces) {
        let from = timeline.micros_at(frame);
        frame += piece.frames;
        let to = timeline.micros_at(frame);
        out.push_str(&concat_line(&piece.path));
        out.push_str(&format!(
            "duration {}.{:06}\n",
            (to - from) / 1_000_000,
            (to - from) % 1_000_000
        ));
    }
    out
}

/// Writes the whole audio track: for each segment, its audio then silence
/// up to the sample where the next segment's first frame starts.
fn write_track(segments: &[&Segment], out: &Path) -> Result<(), Error> {
    let file = std::fs::File::create(out).map_err(|e| Error::io(out, e))?;
    let mut w = std::io::BufWriter::new(file);
    let zeros = vec![0u8; 64 * 1024];
    let mut frame = 0u64;
    for seg in segments {
        let start = seg.info.sample_at_frame(frame);
        frame += seg.frames;
        let end = seg.info.sample_at_frame(frame);
        let mut left = (end - start) * BYTES_PER_SAMPLE;
        if let Some((pcm, samples)) = &seg.pcm {
            let take = (*samples).min(end - start) * BYTES_PER_SAMPLE;
            let f = std::fs::File::open(pcm).map_err(|e| Error::io(pcm, e))?;
            let copied = std::io::copy(&mut f.take(take), &mut w).map_err(|e| Error::io(out, e))?;
            left -= copied;
        }
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            w.write_all(&zeros[..n]).map_err(|e| Error::io(out, e))?;
            left -= n as u64;
        }
    }
    w.flush().map_err(|e| Error::io(out, e))?;
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

/// Joins `parts` into `output`. `work` is this build's scratch folder.
pub async fn stitch(
    ff: &Ffmpeg,
    parts: &[Part],
    mode: SubtitleMode,
    work: &Path,
    output: &Path,
) -> Result<Stitched, Error> {
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
    write_track(&segments, &track)?;

    let cues = match mode {
        SubtitleMode::None => Vec::new(),
        _ => cues(parts, &timeline)?,
    };
    let srt = (!cues.is_empty())
        .then(|| write("subtitles.srt", subtitles::to_srt(&cues)))
        .transpose()?;

    // Side files first: when the new video appears, they already match it.
    let mut side_files = Vec::new();
    let chapter_list = side_file(output, "chapters.txt");
    crate::store::write_atomic(&chapter_list, timeline.chapter_list().as_bytes())?;
    side_files.push(chapter_list.clone());
    let mut published_srt = None;
    if srt.is_some() {
        let (s, v) = (side_file(output, "srt"), side_file(output, "vtt"));
        crate::store::write_atomic(&s, subtitles::to_srt(&cues).as_bytes())?;
        crate::store::write_atomic(&v, subtitles::to_vtt(&cues).as_bytes())?;
        side_files.extend([s.clone(), v]);
        published_srt = Some(s);
    }

    let dir = output.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "video.mp4".into());
    // A hidden temp file beside the output: renamed into place only when whole.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    let first = &parts[0].segment.info;
    ff.final_mux(&FinalMux {
        concat_list: &list,
        pcm: &track,
        chapters: &chapters,
        subtitles: srt.as_deref().filter(|_| mode == SubtitleMode::Embed),
        timescale: first.tb_den / first.tb_num.max(1),
        out: tmp.path(),
    })
    .await?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(output)
        .map_err(|e| Error::io(output, e.error))?;
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
    use crate::media::VideoInfo;
    use crate::scene::SceneId;

    fn seg(frames: u64, pcm: Option<(PathBuf, u64)>) -> Segment {
        Segment {
            scene: SceneId("s.py:S".into()),
            pieces: vec![],
            info: VideoInfo::fixture(15, frames),
            frames,
            pcm,
            clipped: 0,
        }
    }

    #[test]
    fn track_is_laid_out_by_sample_count() {
        let t = tempfile::tempdir().unwrap();
        let pcm = t.path().join("a.pcm");
        // 1000 samples of 0x01 narration.
        std::fs::write(&pcm, vec![1u8; 1000 * 4]).unwrap();
        let segs = [
            seg(15, Some((pcm.clone(), 1000))),
            seg(3, None),
            seg(1, Some((pcm, 1000))),
        ];
        let out = t.path().join("track.pcm");
        write_track(&segs.iter().collect::<Vec<_>>(), &out).unwrap();
        let data = std::fs::read(&out).unwrap();
        // 15 + 3 + 1 frames at 15 fps = 19 * 3200 samples.
        assert_eq!(data.len(), 19 * 3200 * 4);
        assert!(data[..4000].iter().all(|b| *b == 1));
        assert!(data[4000..48_000 * 4].iter().all(|b| *b == 0));
        // Third segment starts exactly at frame 18 = sample 57600 and is cut
        // at its end (1 frame = 3200 samples < 1000? no: 1000 fits).
        let s3 = 18 * 3200 * 4;
        assert!(data[s3..s3 + 4000].iter().all(|b| *b == 1));
        assert!(data[s3 + 4000..].iter().all(|b| *b == 0));
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
                    .map(|f| crate::mux::Piece {
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
