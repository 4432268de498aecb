//! End to end: a scene's own sound (`add_sound`), its subcaptions
//! (`add_subcaption`), and the final video's chapters.
//!
//! Three real Manim scenes, each with its own solid background colour:
//!
//! - `Sounds` (red) calls `add_sound` at its start (a 600 Hz tone) and again
//!   later with a `time_offset` (a 1000 Hz tone followed by silence that
//!   reaches past the end of its video, so its sound lengthens its segment),
//!   and adds two subcaptions (one of two lines, with non-ASCII text);
//! - `Quiet` (blue) has no sound at all and a custom chapter title from
//!   `[scene."Quiet"] title` in parender.toml;
//! - `Narrated` (green) has a narration file (a 1500 Hz tone) and its own
//!   `add_sound` (a 2500 Hz tone overlapping the narration's, so the two are
//!   mixed), plus two subcaptions, the last one running past the end of the
//!   video (it must be clipped to the scene's segment).
//!
//! What Manim 0.22 itself writes for such a scene (measured with
//! `manim render -ql`): the mp4 gets an AAC stream (48 kHz stereo, a mono
//! 0.4 tone comes out at 0.28 per channel) whose `start_time` is 0 with no
//! edit list, so its 1024 priming samples are decoded: a sound added at 0 s
//! decodes at 21.3 ms; the stream lasts as long as the last sound ends (here
//! 1.792 s: 1.75 s of content plus priming, rounded up to whole AAC frames),
//! not as long as the video (1.0 s). The cues are in `<Class>.srt` beside
//! `<Class>.mp4` in the media folder (numbered from 1, `HH:MM:SS,mmm`).
//!
//! The test decodes the final video and checks, from decoded samples and
//! pixels, that every tone is where the timeline says (onset and end within
//! 2 ms) and nowhere else, every scene's first frame, every video packet's
//! timestamp on the frame grid; then the `.srt`/`.vtt` beside the video, the
//! chapters (ffprobe and `.chapters.txt`), the streams, `scene_sound` in
//! `parender scenes`, and that switching to embedded subtitles and changing a
//! title only re-stitches (every scene cached).
//!
//! Run with `cargo test --test e2e_scene_sound -- --nocapture` to see the
//! measured offsets.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use common::av::{
    MONO_48K, RATE, assert_audio_length, assert_frames_match, classify_frames,
    corner_colours_passthrough, decode_mono, ffmpeg_stdout, ffprobe_json, first_frames, frame_grid,
    ms, runs, segments_seq, sox_tone, soxi, video_packets,
};
use common::{TestProject, text};
use serde_json::Value;

/// Manim's `-ql` frame rate (the default dev profile).
const FPS: u64 = 15;
/// Samples per video frame at 15 fps (audio is decoded at [`RATE`]).
const SPF: u64 = RATE / FPS;
/// `gap = 0.2` in parender.toml: 3 frames.
const GAP: &str = "0.2";
const GAP_FRAMES: u64 = 3;
/// Every tone lasts 0.2 s (a whole number of cycles at every frequency used,
/// starting at phase 0, so it starts and ends without a click).
const TONE_S: f64 = 0.2;
const TONE_SAMPLES: i64 = 9_600;
/// Peak amplitude of every tone in its file.
const TONE_VOL: f64 = 0.4;
/// How far a tone's measured onset or end may be from where it belongs:
/// 2 ms, 3% of a frame (Manim's own AAC priming alone is 21 ms).
const EDGE_TOL: i64 = 96;
/// Window for onset/end measurements: 5 ms (Hann), slid sample by sample;
/// the edge is where the tone's amplitude in it crosses half its full value.
const EDGE_WIN: usize = 240;
/// How far around an expected edge the measurement looks: 25 ms.
const EDGE_SEARCH: i64 = 1_200;
/// Window for the "absent elsewhere" scan: 20 ms (Hann), hop 10 ms.
const SCAN_WIN: usize = 960;
/// Stay this far from every tone's edges in the absence checks (AAC smears
/// a transient over its block): 30 ms.
const GUARD: i64 = 1_440;
/// A tone is present when its amplitude in the decoded track is above this
/// (Manim's own track has a 0.4 tone at 0.28) and absent below `ABSENT`.
const PRESENT: f64 = 0.12;
const ABSENT: f64 = 0.03;
/// Outside every tone (and its guard) the decoded track peaks below this.
const SILENT: f64 = 0.01;
/// A decoded background channel may be this far from its scene's colour.
const COLOUR_TOL: i32 = 24;

struct SceneSpec {
    file: &'static str,
    class: &'static str,
    /// The chapter title parender should use.
    title: &'static str,
    rgb: [u8; 3],
    /// Frames of video Manim renders (FadeIn + wait, whole frames).
    video_frames: u64,
    /// Where the scene's own sound track ends (last `add_sound` offset plus
    /// its file's length), seconds; 0 without sound.
    sound_end: f64,
    /// Narration file under `audio/` and its length in seconds.
    narration: Option<(&'static str, f64)>,
    /// Tones heard in this scene: frequency and onset from the scene's start.
    tones: Vec<(u32, f64, &'static str)>,
    /// Subcaptions: start and end from the scene's start (as Manim writes
    /// them, before clipping), text.
    cues: Vec<(f64, f64, &'static str)>,
    /// The scene file.
    source: &'static str,
}

const SOUNDS_PY: &str = r##"from manim import ORIGIN, WHITE, Dot, FadeIn, ManimColor, Scene


class Sounds(Scene):
    def construct(self):
        self.camera.background_color = ManimColor("#FF0000")
        self.add_sound("assets/tone_a.wav")
        self.add_subcaption("First cue: red", duration=0.5, offset=0.1)
        self.play(FadeIn(Dot(ORIGIN, radius=0.2, color=WHITE)), run_time=0.4)
        # At 0.4 s: the 1000 Hz tone at 0.95 s, then 0.6 s of silence, so the
        # scene's sound ends at 1.75 s, after its 1.0 s of video.
        self.add_sound("assets/tone_b.wav", time_offset=0.55)
        self.add_subcaption("Second cue, ünïcode\nand a second line", duration=0.5, offset=0.3)
        self.wait(0.6)
"##;

const QUIET_PY: &str = r##"from manim import ORIGIN, WHITE, Dot, FadeIn, ManimColor, Scene


class Quiet(Scene):
    def construct(self):
        self.camera.background_color = ManimColor("#0000FF")
        self.play(FadeIn(Dot(ORIGIN, radius=0.2, color=WHITE)), run_time=0.4)
        self.wait(0.4)
"##;

const NARRATED_PY: &str = r##"from manim import ORIGIN, WHITE, Dot, FadeIn, ManimColor, Scene


class Narrated(Scene):
    def construct(self):
        self.camera.background_color = ManimColor("#00FF00")
        self.add_sound("assets/tone_d.wav", time_offset=0.1)
        self.add_subcaption("Narrated, first cue", duration=0.4, offset=0.05)
        self.play(FadeIn(Dot(ORIGIN, radius=0.2, color=WHITE)), run_time=0.4)
        self.add_subcaption("This cue runs past the end", duration=5, offset=0.1)
        self.wait(0.8)
"##;

fn specs() -> Vec<SceneSpec> {
    vec![
        // 15 frames of video; its sound ends at 1.75 s: 27 frames (+ gap).
        SceneSpec {
            file: "01_sounds.py",
            class: "Sounds",
            title: "Sounds",
            rgb: [255, 0, 0],
            video_frames: 15,
            sound_end: 1.75,
            narration: None,
            tones: vec![
                (600, 0.0, "add_sound at the start"),
                (1000, 0.95, "add_sound(time_offset=0.55) at 0.4 s"),
            ],
            cues: vec![
                (0.1, 0.6, "First cue: red"),
                (0.7, 1.2, "Second cue, ünïcode\nand a second line"),
            ],
            source: SOUNDS_PY,
        },
        // 12 frames, no sound of any kind (+ gap); a custom chapter title.
        SceneSpec {
            file: "02_quiet.py",
            class: "Quiet",
            title: "Custom title",
            rgb: [0, 0, 255],
            video_frames: 12,
            sound_end: 0.0,
            narration: None,
            tones: vec![],
            cues: vec![],
            source: QUIET_PY,
        },
        // 18 frames of video, sound ends at 0.3 s, narration 1.35 s: 21
        // frames; the last scene, so no gap.
        SceneSpec {
            file: "03_narrated.py",
            class: "Narrated",
            title: "Narrated",
            rgb: [0, 255, 0],
            video_frames: 18,
            sound_end: 0.3,
            narration: Some(("03_narrated.wav", 1.35)),
            tones: vec![
                (1500, 0.0, "narration"),
                (2500, 0.1, "add_sound(time_offset=0.1), over the narration"),
            ],
            cues: vec![
                (0.05, 0.45, "Narrated, first cue"),
                (0.5, 5.5, "This cue runs past the end"),
            ],
            source: NARRATED_PY,
        },
    ]
}

/// `ceil(seconds * fps)`, for lengths chosen well away from a frame boundary
/// (so AAC padding of up to ~40 ms cannot change the answer).
fn ceil_frames(seconds: f64) -> u64 {
    let f = seconds * FPS as f64;
    let frac = f - f.floor();
    assert!(
        seconds == 0.0 || (0.2..=0.8).contains(&frac),
        "test bug: {seconds} s is too close to a frame boundary"
    );
    f.ceil() as u64
}

/// A 0.2 s sine tone at `freq` Hz (48 kHz mono, 16 bit), then `pad` seconds of
/// silence, at `rel` in the project.
fn make_tone(p: &TestProject, rel: &str, freq: u32, pad: f64) {
    let path = p.path().join(rel);
    let cycles = freq as f64 * TONE_S;
    assert!(
        (cycles - cycles.round()).abs() < 1e-9,
        "test bug: {freq} Hz is not whole cycles in {TONE_S} s"
    );
    sox_tone(&path, MONO_48K, TONE_S, freq, TONE_VOL, pad);
    let samples = soxi("-s", &path);
    let want = ((TONE_S + pad) * RATE as f64).round() as u64;
    assert_eq!(samples, want, "test bug: {rel} has {samples} samples");
}

/// Amplitude of the `freq` component of `pcm` in a Hann window of `n`
/// samples centred on sample `centre` (samples outside the track are
/// silence). A steady sine of amplitude A gives A.
fn tone_amp(pcm: &[f64], centre: i64, freq: f64, n: usize) -> f64 {
    let start = centre - n as i64 / 2;
    let (mut re, mut im, mut wsum) = (0.0, 0.0, 0.0);
    let step = 2.0 * std::f64::consts::PI * freq / RATE as f64;
    for j in 0..n {
        let w = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * j as f64 / (n - 1) as f64).cos();
        wsum += w;
        let i = start + j as i64;
        if i < 0 || i >= pcm.len() as i64 {
            continue;
        }
        let x = pcm[i as usize] * w;
        let ph = step * i as f64;
        re += x * ph.cos();
        im -= x * ph.sin();
    }
    2.0 * (re * re + im * im).sqrt() / wsum
}

/// A tone as measured in the decoded track.
#[derive(Debug)]
struct Measured {
    /// Amplitude in the middle of the tone.
    full: f64,
    /// Where its amplitude first reaches half of `full` near the expected
    /// onset, and last does near the expected end (exclusive), if it does.
    onset: Option<i64>,
    end: Option<i64>,
}

fn measure_tone(pcm: &[f64], freq: u32, onset: i64) -> Measured {
    let f = freq as f64;
    let full = tone_amp(pcm, onset + TONE_SAMPLES / 2, f, EDGE_WIN);
    let half = full / 2.0;
    let on =
        (onset - EDGE_SEARCH..onset + EDGE_SEARCH).find(|&c| tone_amp(pcm, c, f, EDGE_WIN) >= half);
    let end0 = onset + TONE_SAMPLES;
    let end = (end0 - EDGE_SEARCH..end0 + EDGE_SEARCH)
        .rev()
        .find(|&c| tone_amp(pcm, c, f, EDGE_WIN) >= half);
    Measured {
        full,
        onset: on,
        end,
    }
}

/// Every stream's (codec_type, codec_name).
fn streams(file: &Path) -> Vec<(String, String)> {
    let v = ffprobe_json(file, &["-show_entries", "stream=codec_type,codec_name"]);
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["codec_type"].as_str().unwrap_or("").to_string(),
                s["codec_name"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Exactly one h264 video and one AAC audio stream, at most one `data`
/// stream (the chapter text track, bin_data), and `subtitle` mov_text streams
/// only when `embedded` (then exactly one); nothing else.
fn check_streams(file: &Path, embedded: bool) {
    let s = streams(file);
    let count = |t: &str| s.iter().filter(|(ty, _)| ty == t).count();
    assert_eq!(count("video"), 1, "streams of {}: {s:?}", file.display());
    assert_eq!(count("audio"), 1, "streams of {}: {s:?}", file.display());
    assert!(
        count("data") <= 1,
        "more than the one chapter data stream: {s:?}"
    );
    assert_eq!(
        count("subtitle"),
        usize::from(embedded),
        "subtitle streams (embedded: {embedded}): {s:?}"
    );
    for (ty, codec) in &s {
        match ty.as_str() {
            "video" => assert_eq!(codec, "h264", "{s:?}"),
            "audio" => assert_eq!(codec, "aac", "{s:?}"),
            "data" => assert_eq!(codec, "bin_data", "{s:?}"),
            "subtitle" => assert_eq!(codec, "mov_text", "{s:?}"),
            other => panic!("unexpected {other} stream in {}: {s:?}", file.display()),
        }
    }
}

/// `ffprobe -show_chapters`: (start seconds, title) per chapter.
fn chapters(file: &Path) -> Vec<(f64, String)> {
    let v = ffprobe_json(file, &["-show_chapters"]);
    v["chapters"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["start_time"].as_str().unwrap().parse::<f64>().unwrap(),
                        c["tags"]["title"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `M:SS` (`H:MM:SS` past an hour), seconds floored.
fn chapter_stamp(seconds: f64) -> String {
    let s = seconds.floor() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// A cue: start and end in milliseconds, text (lines joined by '\n').
#[derive(Debug, Clone, PartialEq)]
struct Cue {
    start: i64,
    end: i64,
    text: String,
}

/// `HH:MM:SS<sep>mmm` (and `MM:SS.mmm` for WebVTT) in milliseconds.
fn parse_stamp(s: &str, sep: char) -> Result<i64, String> {
    let (hms, millis) = s
        .split_once(sep)
        .ok_or_else(|| format!("timestamp {s:?} has no '{sep}' before the milliseconds"))?;
    if millis.len() != 3 || !millis.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("timestamp {s:?}: milliseconds are not 3 digits"));
    }
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len()) || (sep == ',' && parts.len() != 3) {
        return Err(format!("timestamp {s:?}: not HH:MM:SS"));
    }
    let mut secs = 0i64;
    for p in &parts {
        let n: i64 = p
            .parse()
            .map_err(|_| format!("timestamp {s:?}: {p:?} is not a number"))?;
        secs = secs * 60 + n;
    }
    Ok(secs * 1000 + millis.parse::<i64>().unwrap())
}

/// Cue blocks of an SRT or WebVTT file (after its header for WebVTT).
fn parse_cues(body: &str, vtt: bool) -> Result<Vec<Cue>, String> {
    let body = body.replace("\r\n", "\n");
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in body.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                blocks.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(line);
        }
    }
    if !cur.is_empty() {
        blocks.push(cur);
    }
    if vtt {
        let header = blocks.first().ok_or("empty WebVTT file")?;
        if !header[0].starts_with("WEBVTT") {
            return Err(format!("WebVTT file starts with {:?}", header[0]));
        }
        blocks.remove(0);
    }
    let sep = if vtt { '.' } else { ',' };
    let mut cues = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        // SRT: index, timing, text. WebVTT: optional identifier, timing, text
        // (NOTE/STYLE blocks skipped).
        if vtt && (b[0].starts_with("NOTE") || b[0].starts_with("STYLE")) {
            continue;
        }
        let t = b
            .iter()
            .position(|l| l.contains("-->"))
            .ok_or_else(|| format!("block {b:?} has no timing line"))?;
        if vtt {
            if t > 1 {
                return Err(format!("block {b:?}: timing is not on line 1 or 2"));
            }
        } else {
            if t != 1 {
                return Err(format!("block {b:?}: timing is not on line 2"));
            }
            if b[0].trim() != (i + 1).to_string() {
                return Err(format!("block {b:?}: index {:?}, expected {}", b[0], i + 1));
            }
        }
        let (a, z) = b[t].split_once("-->").unwrap();
        let start = parse_stamp(a.trim(), sep)?;
        let end = parse_stamp(
            z.split_whitespace()
                .next()
                .ok_or("timing line without an end")?,
            sep,
        )?;
        let text = b[t + 1..]
            .iter()
            .map(|l| l.trim_end())
            .collect::<Vec<_>>()
            .join("\n");
        if text.is_empty() {
            return Err(format!("block {b:?} has no text"));
        }
        cues.push(Cue { start, end, text });
    }
    Ok(cues)
}

fn check_cues(what: &str, got: &[Cue], want: &[Cue], tol: i64) {
    let show = |c: &[Cue]| {
        c.iter()
            .map(|c| format!("  {} --> {} {:?}", c.start, c.end, c.text))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ok = got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            (g.start - w.start).abs() <= tol && (g.end - w.end).abs() <= tol && g.text == w.text
        });
    assert!(
        ok,
        "{what}: cues (ms) differ beyond {tol} ms or in text\nfound:\n{}\nexpected:\n{}",
        show(got),
        show(want)
    );
}

fn build_json(p: &TestProject) -> (Output, Vec<Value>) {
    let out = p.parender(&["build", "--message-format", "json"]);
    let lines = TestProject::successful_build(&out);
    (out, lines)
}

/// `parender scenes --message-format json`: class -> the `scene_sound` value
/// (`None` when the field is missing).
fn scene_sound(p: &TestProject) -> Vec<(String, Option<Value>)> {
    let out = p.parender(&["scenes", "--message-format", "json"]);
    assert!(out.status.success(), "scenes failed:\n{}", text(&out));
    TestProject::json_lines(&out)
        .iter()
        .filter(|v| v.get("class").is_some())
        .map(|v| {
            (
                v["class"].as_str().unwrap().to_string(),
                v.get("scene_sound").cloned(),
            )
        })
        .collect()
}

fn config(title: &str, subtitles: Option<&str>) -> String {
    let mut c = format!("name = \"sound\"\ngap = {GAP}\n\n[scene.\"Quiet\"]\ntitle = {title:?}\n");
    if let Some(s) = subtitles {
        c.push_str(&format!("\n[output]\nsubtitles = {s:?}\n"));
    }
    c
}

fn rewrite_config(p: &TestProject, extra: &str) {
    p.write(
        "parender.toml",
        &format!(
            "python = {:?}\n{extra}",
            common::python().display().to_string()
        ),
    );
}

#[test]
fn scene_sound_subtitles_and_chapters() {
    let started = Instant::now();
    let specs = specs();
    let p = TestProject::new(&config("Custom title", None));
    for s in &specs {
        p.write(&format!("scenes/{}", s.file), s.source);
    }
    make_tone(&p, "assets/tone_a.wav", 600, 0.0);
    make_tone(&p, "assets/tone_b.wav", 1000, 0.6);
    make_tone(&p, "assets/tone_d.wav", 2500, 0.0);
    make_tone(&p, "audio/03_narrated.wav", 1500, 1.35 - TONE_S);

    // --- Before any render, whether a scene has its own sound is unknown.
    let before = scene_sound(&p);
    assert_eq!(
        before.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        specs.iter().map(|s| s.class).collect::<Vec<_>>(),
        "scenes listed"
    );
    for (class, v) in &before {
        assert_eq!(
            v.as_ref(),
            Some(&Value::Null),
            "`scene_sound` of {class} before any render: expected null (unknown)"
        );
    }

    // --- Build.
    let (out, lines) = build_json(&p);
    let build_secs = started.elapsed().as_secs_f64();
    let last = lines.last().unwrap();
    assert_eq!(last["rendered"], specs.len(), "{}", text(&out));
    let output = PathBuf::from(last["output"].as_str().expect("output path"));
    let dev = p.path().join("out/dev");
    assert_eq!(
        output.canonicalize().unwrap(),
        dev.join("sound.mp4").canonicalize().unwrap()
    );
    let srt_path = dev.join("sound.srt");
    let vtt_path = dev.join("sound.vtt");
    let chapters_path = dev.join("sound.chapters.txt");
    for (field, path) in [("subtitles", &srt_path), ("chapters", &chapters_path)] {
        let got = last[field]
            .as_str()
            .unwrap_or_else(|| panic!("build-finished has no `{field}` path:\n{}", text(&out)));
        assert!(
            Path::new(got).is_absolute(),
            "`{field}` {got} is not absolute"
        );
        assert_eq!(
            Path::new(got).canonicalize().ok(),
            path.canonicalize().ok(),
            "build-finished `{field}`"
        );
    }

    // --- The expected timeline.
    let mut start_frame = Vec::new();
    let mut seg_frames = Vec::new();
    let mut t = 0u64;
    for (k, s) in specs.iter().enumerate() {
        let narration = s.narration.map(|(_, secs)| ceil_frames(secs)).unwrap_or(0);
        let f = s.video_frames.max(ceil_frames(s.sound_end)).max(narration)
            + if k + 1 < specs.len() { GAP_FRAMES } else { 0 };
        start_frame.push(t);
        seg_frames.push(f);
        t += f;
    }
    let total_frames = t;
    let total_secs = total_frames as f64 / FPS as f64;
    let start_secs = |k: usize| start_frame[k] as f64 / FPS as f64;
    let duration = last["duration"].as_f64().expect("build-finished duration");
    assert!(
        (duration - total_secs).abs() < 0.0015,
        "build-finished duration {duration} s, but the timeline is {total_frames} frames = {total_secs:.4} s ({seg_frames:?} frames per segment)"
    );

    // --- Streams.
    check_streams(&output, false);

    // --- Video packets on the frame grid.
    let packets = video_packets(&output);
    let (tb_num, tb_den) = packets.time_base;
    let start_pts = packets.start_pts;
    let mut frame_idx: Vec<i128> = Vec::new();
    for &pts in &packets.pts {
        let (frame, off) = frame_grid(pts, start_pts, packets.time_base, FPS);
        assert_eq!(
            off,
            0,
            "video packet pts {pts} (start {start_pts}, time base {tb_num}/{tb_den}) is off the {FPS} fps grid: {:.3} ms after frame {frame}",
            off as f64 * 1000.0 / (tb_den as f64 * FPS as f64),
        );
        frame_idx.push(frame);
    }
    frame_idx.sort();
    assert_eq!(
        frame_idx,
        (0..total_frames as i128).collect::<Vec<_>>(),
        "video packets, as frame numbers"
    );

    // --- Pixels: every decoded frame's background.
    let colours = corner_colours_passthrough(&output);
    let palette: Vec<[u8; 3]> = specs.iter().map(|s| s.rgb).collect();
    let seq = classify_frames(&colours, &palette, COLOUR_TOL);
    let expected_seq = segments_seq(&seg_frames);
    let first_frame = first_frames(&seq, specs.len());

    // --- Audio: every tone, where it belongs.
    let pcm = decode_mono(&output);
    // (scene, frequency, expected onset sample in the final track, what).
    let want: Vec<(usize, u32, i64, &str)> = specs
        .iter()
        .enumerate()
        .flat_map(|(k, s)| {
            let t0 = (start_frame[k] * SPF) as i64;
            s.tones
                .iter()
                .map(move |(f, off, what)| (k, *f, t0 + (off * RATE as f64).round() as i64, *what))
        })
        .collect();
    let measured: Vec<Measured> = want
        .iter()
        .map(|(_, f, on, _)| measure_tone(&pcm, *f, *on))
        .collect();
    let freqs: Vec<u32> = {
        let mut f: Vec<u32> = want.iter().map(|w| w.1).collect();
        f.sort();
        f.dedup();
        f
    };
    // Absence: for each frequency, every 20 ms window away from that
    // frequency's own tones and from every tone's edges.
    let near_edge = |a: i64, b: i64| {
        want.iter().any(|(_, _, on, _)| {
            [*on, on + TONE_SAMPLES]
                .iter()
                .any(|e| a < e + GUARD && b > e - GUARD)
        })
    };
    let mut stray: Vec<String> = Vec::new();
    for &f in &freqs {
        let mut worst: Option<(i64, f64)> = None;
        let mut c = 0i64;
        while c < pcm.len() as i64 {
            let (a, b) = (c - SCAN_WIN as i64 / 2, c + SCAN_WIN as i64 / 2);
            let own = want
                .iter()
                .any(|(_, wf, on, _)| *wf == f && a < on + TONE_SAMPLES && b > *on);
            if !own && !near_edge(a, b) {
                let amp = tone_amp(&pcm, c, f as f64, SCAN_WIN);
                if worst.is_none_or(|(_, w)| amp > w) {
                    worst = Some((c, amp));
                }
            }
            c += SCAN_WIN as i64 / 2;
        }
        if let Some((c, amp)) = worst
            && amp >= ABSENT
        {
            stray.push(format!(
                "{f} Hz at {:.4} s (frame {}): amplitude {amp:.3}",
                c as f64 / RATE as f64,
                c / SPF as i64
            ));
        }
    }
    // Silence: outside every tone (with its guard) nothing is heard at all.
    let mut loud: Option<(usize, f64)> = None;
    for (i, x) in pcm.iter().enumerate() {
        let i64_ = i as i64;
        let in_tone = want
            .iter()
            .any(|(_, _, on, _)| i64_ >= on - GUARD && i64_ < on + TONE_SAMPLES + GUARD);
        if !in_tone && x.abs() >= SILENT && loud.is_none_or(|(_, m)| x.abs() > m) {
            loud = Some((i, x.abs()));
        }
    }

    // --- Report.
    eprintln!(
        "\nscene sound: {total_frames} frames at {FPS} fps = {total_secs:.4} s (gap {GAP_FRAMES} frames)"
    );
    for (k, s) in specs.iter().enumerate() {
        let meas = first_frame[k]
            .map(|f| format!("{f} ({:+})", f as i64 - start_frame[k] as i64))
            .unwrap_or_else(|| "never".into());
        eprintln!(
            "{:<9} video {:>3}f sound to {:.2}s narration {:>5} segment {:>3}f start {:>3}f first frame {meas}",
            s.class,
            s.video_frames,
            s.sound_end,
            s.narration
                .map(|(_, x)| format!("{x:.2}s"))
                .unwrap_or_else(|| "none".into()),
            seg_frames[k],
            start_frame[k],
        );
    }
    eprintln!("tones (decoded AAC, 48 kHz mono; edge = half amplitude in a 5 ms window):");
    for ((k, f, on, what), m) in want.iter().zip(&measured) {
        let show = |x: Option<i64>, e: i64| {
            x.map(|x| format!("{:+.3} ms", ms(x - e)))
                .unwrap_or_else(|| "not found".into())
        };
        eprintln!(
            "  {:<9} {:>5} Hz {:<48} at {:.4}s: onset {}, end {}, amplitude {:.3}",
            specs[*k].class,
            f,
            what,
            *on as f64 / RATE as f64,
            show(m.onset, *on),
            show(m.end, on + TONE_SAMPLES),
            m.full
        );
    }
    eprintln!(
        "decoded audio: {} samples, timeline {} samples; loudest outside tones: {loud:?}",
        pcm.len(),
        total_frames * SPF
    );
    eprintln!("build {build_secs:.1}s\n");

    // --- Assertions on the measurements.
    let scene_name = |k: usize| specs[k].class.to_string();
    for (k, s) in specs.iter().enumerate() {
        assert_eq!(
            first_frame[k],
            Some(start_frame[k] as usize),
            "scene {}: first frame measured {:?}, expected {}; sequence: {}",
            s.class,
            first_frame[k],
            start_frame[k],
            runs(&seq, scene_name)
        );
    }
    assert_eq!(
        seq.len(),
        expected_seq.len(),
        "decoded frames: {}",
        runs(&seq, scene_name)
    );
    assert_frames_match(&seq, &expected_seq, &colours, scene_name);
    assert_audio_length(pcm.len(), total_frames, SPF);
    for ((k, f, on, what), m) in want.iter().zip(&measured) {
        let name = format!("{} {f} Hz ({what})", specs[*k].class);
        assert!(
            m.full > PRESENT && m.full < 0.6,
            "{name}: amplitude {:.3} at {:.4} s, expected a tone (the file's {TONE_VOL} tone decodes at ~0.28 from Manim's track)",
            m.full,
            *on as f64 / RATE as f64
        );
        for (edge, got, exp) in [("onset", m.onset, *on), ("end", m.end, on + TONE_SAMPLES)] {
            let got =
                got.unwrap_or_else(|| panic!("{name}: no {edge} within 25 ms of {exp} ({m:?})"));
            assert!(
                (got - exp).abs() <= EDGE_TOL,
                "{name}: {edge} at sample {got}, expected {exp}: off by {:+.3} ms (allowed {:.1} ms)",
                ms(got - exp),
                ms(EDGE_TOL)
            );
        }
    }
    assert!(
        stray.is_empty(),
        "tones where none belongs: {}",
        stray.join("; ")
    );
    if let Some((i, x)) = loud {
        panic!(
            "sound at {:.4} s (frame {}, amplitude {x:.3}) where no tone belongs",
            i as f64 / RATE as f64,
            i as u64 / SPF
        );
    }

    // --- Subtitles beside the video: every cue shifted to its scene's start,
    // clipped to its segment's end.
    let want_cues: Vec<Cue> = specs
        .iter()
        .enumerate()
        .flat_map(|(k, s)| {
            let t0 = start_frame[k] as f64 / FPS as f64;
            let seg_end = (start_frame[k] + seg_frames[k]) as f64 / FPS as f64;
            s.cues.iter().map(move |(a, z, text)| Cue {
                start: ((t0 + a) * 1000.0).round() as i64,
                end: ((t0 + z).min(seg_end) * 1000.0).round() as i64,
                text: text.to_string(),
            })
        })
        .collect();
    let srt = std::fs::read_to_string(&srt_path)
        .unwrap_or_else(|e| panic!("{}: {e}", srt_path.display()));
    let vtt = std::fs::read_to_string(&vtt_path)
        .unwrap_or_else(|e| panic!("{}: {e}", vtt_path.display()));
    assert!(
        vtt.starts_with("WEBVTT"),
        "{} does not start with WEBVTT:\n{vtt}",
        vtt_path.display()
    );
    let srt_cues = parse_cues(&srt, false)
        .unwrap_or_else(|e| panic!("{} is not valid SRT: {e}\n{srt}", srt_path.display()));
    let vtt_cues = parse_cues(&vtt, true)
        .unwrap_or_else(|e| panic!("{} is not valid WebVTT: {e}\n{vtt}", vtt_path.display()));
    check_cues("sound.srt", &srt_cues, &want_cues, 1);
    check_cues("sound.vtt", &vtt_cues, &want_cues, 1);

    // --- Chapters: one per scene at its first frame, class name or title.
    let want_chapters: Vec<(f64, String)> = (0..specs.len())
        .map(|k| (start_secs(k), specs[k].title.to_string()))
        .collect();
    let check_chapters = |want: &[(f64, String)], when: &str| {
        let got = chapters(&output);
        assert_eq!(got.len(), want.len(), "chapters {when}: {got:?}");
        for ((gs, gt), (ws, wt)) in got.iter().zip(want) {
            assert!(
                (gs - ws).abs() <= 0.001 + 1e-9 && gt == wt,
                "chapters {when}: found {got:?}, expected {want:?} (start within 1 ms)"
            );
        }
        let txt = std::fs::read_to_string(&chapters_path)
            .unwrap_or_else(|e| panic!("{}: {e}", chapters_path.display()));
        let want_txt: Vec<String> = want
            .iter()
            .map(|(s, t)| format!("{} {t}", chapter_stamp(*s)))
            .collect();
        assert_eq!(
            txt.lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>(),
            want_txt,
            "{} {when}",
            chapters_path.display()
        );
    };
    check_chapters(&want_chapters, "after the first build");

    // --- `scene_sound` is known now: true for the scenes with add_sound.
    let after = scene_sound(&p);
    for (s, (class, v)) in specs.iter().zip(&after) {
        assert_eq!(class, s.class);
        let expect = Value::Bool(s.sound_end > 0.0);
        assert_eq!(
            v.as_ref(),
            Some(&expect),
            "`scene_sound` of {class} after the build"
        );
    }

    // --- Embedded subtitles: only a re-stitch, every scene from the cache.
    rewrite_config(&p, &config("Custom title", Some("embed")));
    let (out, lines) = build_json(&p);
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["reason"] == "scene-finished")
        .collect();
    assert_eq!(finished.len(), specs.len(), "{}", text(&out));
    assert!(
        finished.iter().all(|l| l["status"] == "cached"),
        "switching to embedded subtitles re-rendered:\n{}",
        text(&out)
    );
    assert_eq!(lines.last().unwrap()["rendered"], 0, "{}", text(&out));
    check_streams(&output, true);
    let embedded = ffmpeg_stdout(&output, &["-map", "0:s:0", "-f", "srt", "-"]);
    let embedded = String::from_utf8_lossy(&embedded);
    let embedded_cues = parse_cues(&embedded, false)
        .unwrap_or_else(|e| panic!("embedded subtitles as SRT: {e}\n{embedded}"));
    check_cues("embedded mov_text track", &embedded_cues, &want_cues, 2);
    assert!(
        srt_path.exists() && vtt_path.exists(),
        "embed also keeps the files"
    );
    check_chapters(&want_chapters, "with embedded subtitles");

    // --- A new title: re-stitched with the new chapter, nothing rendered.
    rewrite_config(&p, &config("Renamed title", Some("embed")));
    let (out, lines) = build_json(&p);
    assert!(
        lines
            .iter()
            .filter(|l| l["reason"] == "scene-finished")
            .all(|l| l["status"] == "cached"),
        "a title change re-rendered:\n{}",
        text(&out)
    );
    assert_eq!(lines.last().unwrap()["rendered"], 0, "{}", text(&out));
    let mut renamed = want_chapters.clone();
    renamed[1].1 = "Renamed title".into();
    check_chapters(&renamed, "after renaming Quiet's title");

    // --- No subtitles: the files an earlier build wrote are gone, the track
    // too, and `--explain` says why it stitched; still nothing rendered.
    rewrite_config(&p, &config("Renamed title", Some("none")));
    let out = p.parender(&["build", "--explain"]);
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.contains("Stitching 3 scenes (subtitles changed)"),
        "{log}"
    );
    assert!(!log.contains("Rendered"), "{log}");
    assert!(
        !srt_path.exists() && !vtt_path.exists(),
        "subtitles = \"none\" left {} or {} behind",
        srt_path.display(),
        vtt_path.display()
    );
    check_streams(&output, false);
    check_chapters(&renamed, "without subtitles");

    eprintln!("whole test {:.1}s", started.elapsed().as_secs_f64());
}
