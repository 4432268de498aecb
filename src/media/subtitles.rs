//! Subtitles: the cues Manim writes for `add_subcaption` (`<Class>.srt`
//! beside its video), shifted to each scene's start in the final video and
//! written as one SRT and one WebVTT file.
//!
//! Times are whole milliseconds, as SRT has them; a scene's start is rounded
//! to the nearest millisecond once, so every cue is within 0.5 ms of its
//! exact time.
use std::fmt::Write as _;

/// One cue: from `start` to `end` (milliseconds) with its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cue {
    pub start: u64,
    pub end: u64,
    pub text: String,
}

/// `00:01:02,345` (SRT) or `00:01:02.345` (WebVTT) → milliseconds.
fn parse_time(t: &str) -> Option<u64> {
    let t = t.trim().replace(',', ".");
    let (hms, ms) = t.split_once('.').unwrap_or((&t, "0"));
    let mut parts = hms.split(':').rev();
    let s: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    let h: u64 = parts.next().map_or(Some(0), |p| p.parse().ok())?;
    // `.5` is half a second: scale the fraction to milliseconds.
    let frac = format!("{ms:0<3}");
    let ms: u64 = frac.get(..3)?.parse().ok()?;
    Some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// Parses SRT text. Blocks that are not cues (no `-->` line) are skipped.
pub fn parse_srt(text: &str) -> Vec<Cue> {
    let text = text.trim_start_matches('\u{feff}').replace("\r\n", "\n");
    let mut cues = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines().skip_while(|l| !l.contains("-->"));
        let Some(times) = lines.next() else {
            continue;
        };
        let Some((a, b)) = times.split_once("-->") else {
            continue;
        };
        // WebVTT-style settings may follow the end time.
        let b = b.split_whitespace().next().unwrap_or("");
        let (Some(start), Some(end)) = (parse_time(a), parse_time(b)) else {
            continue;
        };
        let body: Vec<&str> = lines.collect();
        cues.push(Cue {
            start,
            end: end.max(start),
            text: body.join("\n").trim().to_string(),
        });
    }
    cues
}

/// Moves `cues` by `offset` ms and keeps them inside `[offset, until)`:
/// a cue that would run past its scene's end is cut there, one that starts
/// after it is dropped.
pub fn shift(cues: &[Cue], offset: u64, until: u64) -> Vec<Cue> {
    cues.iter()
        .map(|c| Cue {
            start: c.start + offset,
            end: (c.end + offset).min(until),
            text: c.text.clone(),
        })
        .filter(|c| c.start < c.end && !c.text.is_empty())
        .collect()
}

fn clock(ms: u64, sep: char) -> String {
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

pub fn to_srt(cues: &[Cue]) -> String {
    let mut out = String::new();
    for (i, c) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            clock(c.start, ','),
            clock(c.end, ','),
            c.text
        );
    }
    out
}

pub fn to_vtt(cues: &[Cue]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for c in cues {
        // WebVTT treats `<` and `&` as markup; `-->` may not appear in text.
        let text = c
            .text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let _ = write!(
            out,
            "{} --> {}\n{}\n\n",
            clock(c.start, '.'),
            clock(c.end, '.'),
            text
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIM_SRT: &str = "1\n00:00:00,000 --> 00:00:01,000\nHello there\n\n2\n00:00:01,200 --> 00:00:01,900\nSecond cue\non two lines\n\n";

    #[test]
    fn parses_what_manim_writes() {
        let cues = parse_srt(MANIM_SRT);
        assert_eq!(cues.len(), 2);
        assert_eq!((cues[0].start, cues[0].end), (0, 1000));
        assert_eq!(cues[1].text, "Second cue\non two lines");
        assert_eq!((cues[1].start, cues[1].end), (1200, 1900));
        // CRLF, a BOM and hours.
        let crlf = "\u{feff}7\r\n01:02:03,004 --> 01:02:04,500\r\nx\r\n";
        assert_eq!(parse_srt(crlf)[0].start, 3_723_004);
        assert_eq!(parse_time("00:00:01.5"), Some(1500));
        assert_eq!(parse_time("garbage"), None);
        assert!(parse_srt("no cues here\n\n").is_empty());
    }

    #[test]
    fn shifting_cuts_at_the_scene_end() {
        let cues = parse_srt(MANIM_SRT);
        let moved = shift(&cues, 10_000, 11_500);
        assert_eq!((moved[0].start, moved[0].end), (10_000, 11_000));
        assert_eq!((moved[1].start, moved[1].end), (11_200, 11_500));
        // A cue that starts after its scene ends is left out.
        assert_eq!(shift(&cues, 0, 1100).len(), 1);
    }

    #[test]
    fn writes_srt_and_vtt() {
        let cues = vec![Cue {
            start: 3_723_004,
            end: 3_724_500,
            text: "a < b & c".into(),
        }];
        assert_eq!(
            to_srt(&cues),
            "1\n01:02:03,004 --> 01:02:04,500\na < b & c\n\n"
        );
        assert_eq!(
            to_vtt(&cues),
            "WEBVTT\n\n01:02:03.004 --> 01:02:04.500\na &lt; b &amp; c\n\n"
        );
        // What it writes, it reads back.
        assert_eq!(parse_srt(&to_srt(&cues)), cues);
    }
}
