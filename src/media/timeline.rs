//! The final video's timeline, made explicit: where each scene starts, in
//! whole frames, and everything derived from that — the exact duration of
//! every stitched piece, chapters, and the times subtitles are shifted by.
//!
//! Times are computed from frame counts, never read back from containers:
//! a piece's container duration is rounded (MP4 movie headers count
//! milliseconds) and would push every later frame off the frame grid.
use std::fmt::Write as _;
use std::path::Path;

/// One scene on the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub title: String,
    /// The scene's first frame in the final video.
    pub start: u64,
    /// Its frames, hold and gap included.
    pub frames: u64,
}

/// One `file` line of a concat demuxer list, quoted its way: `'...'`
/// with `'` written as `'\''`.
pub fn concat_line(path: &Path) -> String {
    format!(
        "file '{}'\n",
        path.display().to_string().replace('\'', "'\\''")
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub fps_num: u64,
    pub fps_den: u64,
    pub scenes: Vec<Placed>,
}

impl Timeline {
    /// Lays scenes of `frames` each end to end.
    pub fn new(
        fps_num: u64,
        fps_den: u64,
        scenes: impl IntoIterator<Item = (String, u64)>,
    ) -> Self {
        let mut start = 0;
        let scenes = scenes
            .into_iter()
            .map(|(title, frames)| {
                let p = Placed {
                    title,
                    start,
                    frames,
                };
                start += frames;
                p
            })
            .collect();
        Timeline {
            fps_num,
            fps_den,
            scenes,
        }
    }

    pub fn frames(&self) -> u64 {
        self.scenes.last().map_or(0, |p| p.start + p.frames)
    }

    /// The time at which `frame` starts, in units of 1/`per_second` s,
    /// rounded to nearest.
    fn at(&self, frame: u64, per_second: u64) -> u64 {
        let num = frame as u128 * per_second as u128 * self.fps_den as u128;
        let den = self.fps_num as u128;
        ((num + den / 2) / den) as u64
    }

    pub fn millis_at(&self, frame: u64) -> u64 {
        self.at(frame, 1000)
    }

    /// Microseconds, the concat demuxer's unit. Durations taken as
    /// differences of these never accumulate rounding: the error at any
    /// frame stays under half a microsecond.
    pub fn micros_at(&self, frame: u64) -> u64 {
        self.at(frame, 1_000_000)
    }

    /// The concat demuxer's list for `pieces` (path, frames) laid end to
    /// end from frame 0: each with its exact duration, the difference of its
    /// end and start here, so rounding never accumulates and no piece is
    /// placed at its container's rounded length.
    pub fn concat_list<'a>(&self, pieces: impl IntoIterator<Item = (&'a Path, u64)>) -> String {
        let mut out = String::new();
        let mut frame = 0;
        for (path, frames) in pieces {
            let from = self.micros_at(frame);
            frame += frames;
            let d = self.micros_at(frame) - from;
            out.push_str(&concat_line(path));
            let _ = writeln!(out, "duration {}.{:06}", d / 1_000_000, d % 1_000_000);
        }
        out
    }

    /// Chapters as an FFMETADATA file: one per scene, from its first frame
    /// to the next scene's, in the video's own frame units.
    pub fn ffmetadata(&self) -> String {
        let mut out = String::from(";FFMETADATA1\n");
        for p in &self.scenes {
            let _ = write!(
                out,
                "[CHAPTER]\nTIMEBASE={}/{}\nSTART={}\nEND={}\ntitle={}\n",
                self.fps_den,
                self.fps_num,
                p.start,
                p.start + p.frames,
                escape_ffmetadata(&p.title)
            );
        }
        out
    }

    /// `0:00 Title` lines, ready for a video description (seconds rounded
    /// down, hours shown past the first hour).
    pub fn chapter_list(&self) -> String {
        let long = self.millis_at(self.frames()) >= 3_600_000;
        let mut out = String::new();
        for p in &self.scenes {
            let s = self.millis_at(p.start) / 1000;
            let stamp = if long {
                format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
            } else {
                format!("{}:{:02}", s / 60, s % 60)
            };
            let _ = writeln!(out, "{stamp} {}", one_line(&p.title));
        }
        out
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// FFMETADATA's escaping: `=`, `;`, `#`, `\` and newlines take a backslash.
fn escape_ffmetadata(s: &str) -> String {
    let mut out = String::new();
    for c in one_line(s).chars() {
        if matches!(c, '=' | ';' | '#' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tl() -> Timeline {
        Timeline::new(
            15,
            1,
            [("Intro".to_string(), 16), ("A = b; #1".to_string(), 914)],
        )
    }

    #[test]
    fn places_scenes_end_to_end_in_frames() {
        let t = tl();
        assert_eq!(t.scenes[1].start, 16);
        assert_eq!(t.frames(), 930);
        assert_eq!(t.millis_at(16), 1067);
        assert_eq!(t.micros_at(1), 66_667);
        assert_eq!(t.micros_at(2), 133_333);
        // NTSC rates stay exact too.
        let ntsc = Timeline::new(30000, 1001, [("x".to_string(), 30)]);
        assert_eq!(ntsc.micros_at(30), 1_001_000);
    }

    #[test]
    fn chapters_in_frame_units() {
        let m = tl().ffmetadata();
        assert!(m.starts_with(";FFMETADATA1\n"), "{m}");
        assert!(m.contains("TIMEBASE=1/15\nSTART=16\nEND=930\ntitle=A \\= b\\; \\#1\n"));
        assert_eq!(tl().chapter_list(), "0:00 Intro\n0:01 A = b; #1\n");
        let long = Timeline::new(1, 1, [("a".to_string(), 3599), ("b".to_string(), 2)]);
        assert_eq!(long.chapter_list(), "0:00:00 a\n0:59:59 b\n");
    }
}
