//! Stitching: all segments into one video, published atomically.
//!
//! Video: every piece has the same codec parameters and time base (checked),
//! so the concat demuxer joins them by stream copy. Audio: one PCM track laid
//! out by sample count, each scene starting at the sample where its first
//! frame starts, then encoded to AAC once. The result is written to a temp
//! file beside the output and renamed into place.
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::media::{BYTES_PER_SAMPLE, Ffmpeg};
use crate::mux::Segment;

#[derive(Debug, Clone)]
pub struct Stitched {
    pub output: PathBuf,
    pub frames: u64,
    pub seconds: f64,
}

fn concat_line(path: &Path) -> String {
    // The concat demuxer's quoting: '...' with ' written as '\''.
    format!(
        "file '{}'\n",
        path.display().to_string().replace('\'', "'\\''")
    )
}

/// Writes the whole audio track: for each segment, its narration then
/// silence up to the sample where the next segment's first frame starts.
fn write_track(segments: &[Segment], out: &Path) -> Result<(), Error> {
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

/// Joins `segments` into `output`. `work` is this build's scratch folder.
pub async fn stitch(
    ff: &Ffmpeg,
    segments: &[Segment],
    work: &Path,
    output: &Path,
) -> Result<Stitched, Error> {
    let first = segments
        .first()
        .ok_or_else(|| Error::Other("no scene rendered, so there is nothing to stitch".into()))?;
    for s in segments {
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
    std::fs::create_dir_all(work).map_err(|e| Error::io(work, e))?;
    let list = work.join("concat.txt");
    let text: String = segments
        .iter()
        .flat_map(|s| s.pieces.iter())
        .map(|p| concat_line(p))
        .collect();
    std::fs::write(&list, text).map_err(|e| Error::io(&list, e))?;
    let track = work.join("track.pcm");
    write_track(segments, &track)?;

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
    let timescale = first.info.tb_den / first.info.tb_num.max(1);
    ff.final_mux(&list, &track, timescale, tmp.path()).await?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(output)
        .map_err(|e| Error::io(output, e.error))?;
    let frames: u64 = segments.iter().map(|s| s.frames).sum();
    Ok(Stitched {
        output: output.to_path_buf(),
        frames,
        seconds: segments.iter().map(Segment::seconds).sum(),
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
        }
    }

    #[test]
    fn track_is_laid_out_by_sample_count() {
        let t = tempfile::tempdir().unwrap();
        let pcm = t.path().join("a.pcm");
        // 1000 samples of 0x01 narration.
        std::fs::write(&pcm, vec![1u8; 1000 * 4]).unwrap();
        let segs = vec![
            seg(15, Some((pcm.clone(), 1000))),
            seg(3, None),
            seg(1, Some((pcm, 1000))),
        ];
        let out = t.path().join("track.pcm");
        write_track(&segs, &out).unwrap();
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
}
