//! End to end: A/V sync over many scenes (no drift), with scenes' own sounds.
//!
//! Generates a project of [`SCENES`] tiny real Manim scenes, several classes
//! per file, each with its own solid background colour (base-5 digits of its
//! number mapped to levels for R, G and B, so neighbours always differ).
//! About two of three scenes are narrated (sox: a 1 kHz beep at sample 0 and a
//! 2 kHz end marker filling the last 50 ms) with lengths that are not whole
//! frames, some longer and some shorter than their video; about one in four
//! plays a sound of its own at its start (`self.add_sound("assets/beep.wav")`,
//! a 1370 Hz tone of 160 ms), some of those also narrated. No gap.
//!
//! Everything is checked from the decoded output (ffmpeg / ffprobe):
//! - the colour runs: scenes in order, contiguous, each segment exactly
//!   `ceil(max(video, narration, scene's own audio) * fps)` frames;
//! - every narration beep, end marker and own sound starts within 1 ms of
//!   where it belongs, measured from the scene's first frame *as decoded*;
//!   a narrated scene with its own sound carries both, summed;
//! - every video packet's pts is on the frame grid and consecutive frames are
//!   exactly one frame apart;
//! - one video and one audio stream (plus at most the chapters' data stream).
//!
//! All failures are collected and listed together. Run with
//! `cargo test --test e2e_many -- --nocapture` to see the report.

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::av::{
    Burst, MONO_48K, Pcm, RATE, bursts, corner_colours, decode_mono, ffprobe_json, first_frames,
    frame_grid, ms, run_lengths, secs, sox_beep_and_marker, sox_tone, soxi, streams_of,
    video_packets,
};
use common::{TestProject, text};

/// Scenes in the generated project (at most 124: the colour code's range).
const SCENES: usize = 104;
/// Manim's `-ql` frame rate (the default dev profile).
const FPS: u64 = 15;
/// Samples per video frame at 15 fps (the final track is at [`RATE`], the
/// rate the test decodes audio at).
const SPF: u64 = RATE / FPS;
/// The narration's beep at sample 0 (1 kHz), and its end marker (2 kHz).
const BEEP_SAMPLES: u64 = 4_800;
const MARK_SAMPLES: u64 = 2_400;
const NARRATION_VOL: f64 = 0.5;
/// The scenes' own sound: `assets/beep.wav`, 160 ms of 1370 Hz at 0.4 (Manim
/// turns it into stereo AAC, about 0.3 each channel).
const OWN_SAMPLES: u64 = 7_680;
const OWN_FREQ: u32 = 1_370;
const OWN_VOL: f64 = 0.4;
/// Manim pads a scene's sound with silence to at least 1 s (pydub's
/// `silent()`); parender counts the sound only to its last audible sample,
/// so the beep alone decides: ceil(160 ms) = 3 frames at 15 fps.
const OWN_FRAMES: u64 = OWN_SAMPLES.div_ceil(RATE / FPS);
/// A decoded sample louder than this (|x| / 32768) belongs to a tone.
const LOUD: f64 = 0.1;
/// Loud samples less than this far apart belong to one burst (10 ms). Every
/// narration's length is chosen to end at least 0.4 frames (26.7 ms) before
/// the next frame boundary, so its end marker never merges with the next
/// scene's beep.
const QUIET_SAMPLES: usize = 480;
/// A tone's measured onset may be this far from where it belongs: 1 ms.
const ONSET_TOL: i64 = 48;
/// A burst's measured end may be this far from where it belongs: 2 ms.
const END_TOL: i64 = 96;
/// A burst with more zero crossings per ms than this is an end marker.
const MARKER_ZCR: f64 = 3.3;
/// The peak of a narration beep mixed with a scene's own sound (0.5 + ~0.3).
const MIXED_PEAK: f64 = 0.65;
/// A narration-only beep must stay below this (so a mix is recognisable).
const SINGLE_PEAK: f64 = 0.6;
/// Background colour levels: base-5 digits of the colour code.
const LEVELS: [u8; 5] = [0, 64, 128, 192, 255];
const COLOUR_TOL: i32 = 24;

/// A small deterministic generator (splitmix64) for the scene parameters.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

struct Narration {
    /// Path under the project root (`audio/...`).
    rel: String,
    channels: u32,
    /// Length in ms (whole 48 kHz samples, never whole frames).
    ms: u64,
}

impl Narration {
    fn samples(&self) -> u64 {
        self.ms * RATE / 1000
    }
    fn frames(&self) -> u64 {
        self.samples().div_ceil(SPF)
    }
}

struct SceneSpec {
    /// Scene file under `scenes/`.
    file: String,
    class: String,
    rgb: [u8; 3],
    /// `FadeIn` of a dot, in frames (0: the dot is just added).
    fade: u64,
    /// `self.wait(...)` after it, in frames.
    wait: u64,
    audio: Option<Narration>,
    /// `self.add_sound("assets/beep.wav")` at the scene's start.
    own: bool,
}

impl SceneSpec {
    fn video_frames(&self) -> u64 {
        self.fade + self.wait
    }

    /// Frames the segment may have: ceil(max(video, narration, own audio)).
    fn allowed_frames(&self) -> Vec<u64> {
        let base = self
            .video_frames()
            .max(self.audio.as_ref().map(Narration::frames).unwrap_or(0));
        if self.own {
            vec![base.max(OWN_FRAMES)]
        } else {
            vec![base]
        }
    }
}

/// The colour of colour code `c` (1..125): base-5 digits as R, G, B levels.
fn colour(c: usize) -> [u8; 3] {
    [LEVELS[c / 25 % 5], LEVELS[c / 5 % 5], LEVELS[c % 5]]
}

/// Frames Manim makes for `k/15` seconds as written in the scene file, both
/// for an animation (`np.arange(0, t, 1/15)`: ceil) and a frozen wait
/// (`int(t / (1/15))`: floor); the test only uses `k` where they agree.
fn manim_frames(k: u64) -> u64 {
    let t = k as f64 / 15.0;
    let step = 1.0 / 15.0;
    let anim = (t / step).ceil() as u64;
    let frozen = (t / step) as u64;
    assert!(
        anim == k && frozen == k,
        "test bug: {k}/15 s gives {anim} (animation) / {frozen} (wait) frames in Manim"
    );
    k
}

fn specs() -> Vec<SceneSpec> {
    let mut rng = Rng(0x5EED_0007);
    // Classes per file, cycling: single-class files pair `audio/<stem>.wav`,
    // the others `audio/<stem>.<Class>.wav`.
    let sizes = [4usize, 1, 3, 2, 5];
    let mut out = Vec::new();
    let mut file_no = 0;
    while out.len() < SCENES {
        let n = sizes[file_no % sizes.len()].min(SCENES - out.len());
        let stem = format!("{:03}_part", file_no + 1);
        for _ in 0..n {
            let i = out.len();
            let class = format!("S{i:03}");
            let fade = if rng.next().is_multiple_of(2) {
                0
            } else {
                manim_frames(rng.range(2, 6))
            };
            let wait = manim_frames(rng.range(4, 14));
            let video = fade + wait;
            let audio = (i % 3 != 2).then(|| {
                // Longer than the video, or (when the video is long enough)
                // shorter; at least 7 frames; the fraction of a frame past
                // whole frames in 0.1..0.55.
                let longer = video <= 8 || rng.next().is_multiple_of(2);
                let whole = if longer {
                    rng.range(video, video + 8)
                } else {
                    rng.range(7, video - 1)
                };
                let frac = [0.12, 0.2, 0.31, 0.38, 0.45, 0.53][rng.range(0, 5) as usize];
                let ms = ((whole as f64 + frac) * 1000.0 / FPS as f64).round() as u64;
                let rel = if n == 1 {
                    format!("audio/{stem}.wav")
                } else {
                    format!("audio/{stem}.{class}.wav")
                };
                let a = Narration {
                    rel,
                    channels: 1 + (i % 2) as u32,
                    ms,
                };
                let f = a.samples() as f64 / SPF as f64;
                let fr = f - f.floor();
                assert!(
                    (0.05..=0.6).contains(&fr),
                    "test bug: {ms} ms is {f} frames"
                );
                assert!(
                    (a.samples() > video * SPF) == longer,
                    "test bug: longer {longer}"
                );
                a
            });
            out.push(SceneSpec {
                file: format!("{stem}.py"),
                class,
                rgb: colour(i + 1),
                fade,
                wait,
                audio,
                own: i % 4 == 1,
            });
        }
        file_no += 1;
    }
    out
}

/// Makes the narration: a 1 kHz beep from sample 0, silence, and a 2 kHz end
/// marker filling the last 50 ms; checks its length with soxi.
fn make_narration(p: &TestProject, tmp: &Path, n: &Narration) {
    let beep = BEEP_SAMPLES as f64 / RATE as f64;
    let mark = MARK_SAMPLES as f64 / RATE as f64;
    let pad = (n.samples() - BEEP_SAMPLES - MARK_SAMPLES) as f64 / RATE as f64;
    let out = p.path().join(&n.rel);
    let pcm = Pcm {
        rate: RATE as u32,
        channels: n.channels,
    };
    sox_beep_and_marker(&out, tmp, pcm, beep, pad, mark, NARRATION_VOL);
    assert_eq!(
        soxi("-s", &out),
        n.samples(),
        "test bug: length of {}",
        n.rel
    );
}

/// A narration end marker (2 kHz: 4 zero crossings per ms), not a beep
/// (1 kHz: 2) or a scene's own sound (1370 Hz: 2.7).
fn is_marker(b: &Burst) -> bool {
    b.zcr > MARKER_ZCR
}

/// Tones in `pcm`: loud samples less than [`QUIET_SAMPLES`] apart are one.
fn find_bursts(pcm: &[f64]) -> Vec<Burst> {
    bursts(pcm, LOUD, QUIET_SAMPLES)
}

/// The scene whose background `c` is (each channel within [`COLOUR_TOL`] of
/// a level), and the largest channel error.
fn classify(c: [u8; 3]) -> (Option<usize>, i32) {
    let mut code = 0;
    let mut worst = 0;
    for v in c {
        let (d, err) = LEVELS
            .iter()
            .enumerate()
            .map(|(d, l)| (d, (*l as i32 - v as i32).abs()))
            .min_by_key(|(_, e)| *e)
            .unwrap();
        if err > COLOUR_TOL {
            return (None, err);
        }
        worst = worst.max(err);
        code = code * 5 + d;
    }
    let scene = (1..=SCENES).contains(&code).then(|| code - 1);
    (scene, worst)
}

fn scene_files(p: &TestProject, specs: &[SceneSpec]) {
    let mut files: Vec<(&str, String)> = Vec::new();
    for s in specs {
        let hex = format!("#{:02X}{:02X}{:02X}", s.rgb[0], s.rgb[1], s.rgb[2]);
        let mut body = format!("        self.camera.background_color = ManimColor(\"{hex}\")\n");
        if s.own {
            body.push_str("        self.add_sound(\"assets/beep.wav\")\n");
        }
        if s.fade > 0 {
            body.push_str(&format!(
                "        self.play(FadeIn(Dot(ORIGIN, radius=0.2, color=WHITE)), run_time={}/15)\n",
                s.fade
            ));
        } else {
            body.push_str("        self.add(Dot(ORIGIN, radius=0.2, color=WHITE))\n");
        }
        body.push_str(&format!("        self.wait({}/15)\n", s.wait));
        let class = format!(
            "\n\nclass {}(Scene):\n    def construct(self):\n{body}",
            s.class
        );
        match files.iter_mut().find(|(f, _)| *f == s.file) {
            Some((_, t)) => t.push_str(&class),
            None => files.push((
                &s.file,
                format!("from manim import ORIGIN, WHITE, Dot, FadeIn, ManimColor, Scene\n{class}"),
            )),
        }
    }
    for (file, t) in files {
        p.write(&format!("scenes/{file}"), &t);
    }
}

/// User + system CPU seconds of all waited-for child processes so far.
fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// The cheapest order-preserving matching of `want` to `got` (both sorted):
/// a pair costs the distance between them, leaving one out costs 10 s.
/// Returns matched (want index, got index) pairs.
fn align(want: &[i64], got: &[i64]) -> Vec<(usize, usize)> {
    const SKIP: i64 = 10 * RATE as i64;
    let (n, m) = (want.len(), got.len());
    let mut cost = vec![vec![0i64; m + 1]; n + 1];
    for i in 0..=n {
        for j in 0..=m {
            cost[i][j] = match (i, j) {
                (0, _) | (_, 0) => (i + j) as i64 * SKIP,
                _ => (cost[i - 1][j - 1] + (want[i - 1] - got[j - 1]).abs())
                    .min(cost[i - 1][j] + SKIP)
                    .min(cost[i][j - 1] + SKIP),
            };
        }
    }
    let mut pairs = Vec::new();
    let (mut i, mut j) = (n, m);
    while i > 0 && j > 0 {
        if cost[i][j] == cost[i - 1][j - 1] + (want[i - 1] - got[j - 1]).abs() {
            pairs.push((i - 1, j - 1));
            i -= 1;
            j -= 1;
        } else if cost[i][j] == cost[i - 1][j] + SKIP {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    pairs.reverse();
    pairs
}

/// What the decoded audio should hold, per scene.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The scene's start: its narration beep, its own sound, or both mixed.
    Start { narr: bool, own: bool },
    /// The narration's end marker.
    Marker,
}

struct Expect {
    scene: usize,
    kind: Kind,
    /// Expected first sample, and expected end (exclusive).
    onset: i64,
    end: i64,
}

#[test]
fn many_scenes_stay_in_sync() {
    let started = Instant::now();
    let specs = specs();
    assert!(specs.len() >= 100);
    let narrated = specs.iter().filter(|s| s.audio.is_some()).count();
    let longer = specs
        .iter()
        .filter(|s| {
            s.audio
                .as_ref()
                .is_some_and(|a| a.samples() > s.video_frames() * SPF)
        })
        .count();
    let own = specs.iter().filter(|s| s.own).count();
    let own_narrated = specs.iter().filter(|s| s.own && s.audio.is_some()).count();
    assert!(
        longer > 5 && narrated - longer > 5 && own_narrated > 3 && own - own_narrated > 3,
        "test bug: too few of some kind of scene"
    );

    // --- The project.
    let p = TestProject::new("name = \"many\"\n");
    scene_files(&p, &specs);
    let tmp = tempfile::tempdir().unwrap();
    let beep = p.path().join("assets/beep.wav");
    std::fs::create_dir_all(beep.parent().unwrap()).unwrap();
    sox_tone(
        &beep,
        MONO_48K,
        OWN_SAMPLES as f64 / RATE as f64,
        OWN_FREQ,
        OWN_VOL,
        0.0,
    );
    assert_eq!(soxi("-s", &beep), OWN_SAMPLES, "test bug: assets/beep.wav");
    for s in &specs {
        if let Some(n) = &s.audio {
            make_narration(&p, tmp.path(), n);
        }
    }
    // The test's own input, decoded the way the output will be: one mono and
    // one stereo narration start with the beep at 0 and end with the marker.
    for s in specs.iter().filter(|s| s.audio.is_some()).take(2) {
        let n = s.audio.as_ref().unwrap();
        let b = find_bursts(&decode_mono(&p.path().join(&n.rel)));
        let mark = (n.samples() - MARK_SAMPLES) as i64;
        assert!(
            b.len() == 2
                && b[0].onset <= 4
                && !is_marker(&b[0])
                && is_marker(&b[1])
                && (b[1].onset as i64 - mark).abs() <= 4,
            "test bug: {} decodes to bursts {b:?}, expected a beep at 0 and a marker at {mark}",
            n.rel
        );
    }
    let setup_secs = started.elapsed().as_secs_f64();

    // --- Build.
    let t = Instant::now();
    let cpu0 = children_cpu_secs();
    let out = p.parender(&["build", "--jobs", "2", "--message-format", "json"]);
    let build_secs = t.elapsed().as_secs_f64();
    let build_cpu = children_cpu_secs() - cpu0;
    let lines = TestProject::successful_build(&out);
    let started_msg = TestProject::line_with(&lines, "build-started", &out);
    assert_eq!(started_msg["fps"], FPS, "{}", text(&out));
    let rendered = TestProject::scenes_with(&out, "rendered");
    assert_eq!(rendered.len(), specs.len(), "{}", text(&out));
    let last = lines.last().expect("JSON lines");
    let output = PathBuf::from(last["output"].as_str().expect("output path"));
    let render_secs: Vec<f64> = lines
        .iter()
        .filter(|l| l["reason"] == "scene-finished")
        .filter_map(|l| l["seconds"].as_f64())
        .collect();
    let warnings: Vec<&str> = lines
        .iter()
        .filter(|l| l["reason"] == "warning")
        .filter_map(|l| l["message"].as_str())
        .collect();

    // --- Measure.
    let t = Instant::now();
    let mut failures: Vec<String> = Vec::new();
    let mut fail = |what: &str, msg: String| failures.push(format!("[{what}] {msg}"));

    // Streams.
    let probe = ffprobe_json(
        &output,
        &[
            "-show_entries",
            "stream=index,codec_type,codec_name,time_base,r_frame_rate,sample_rate,channels,start_time",
        ],
    );
    let streams = probe["streams"].as_array().unwrap();
    let (vs, as_, ds) = (
        streams_of(streams, "video"),
        streams_of(streams, "audio"),
        streams_of(streams, "data"),
    );
    let extra = streams.len() - vs.len() - as_.len() - ds.len();
    if vs.len() != 1
        || as_.len() != 1
        || extra != 0
        || ds.len() > 1
        || ds.iter().any(|d| d["codec_name"] != "bin_data")
    {
        fail(
            "streams",
            format!(
                "expected one video, one audio and at most a bin_data (chapters) stream: {probe}"
            ),
        );
    }
    let v = vs.first().copied().unwrap_or(&serde_json::Value::Null);
    if v["r_frame_rate"] != "15/1" {
        fail(
            "streams",
            format!("video r_frame_rate {}", v["r_frame_rate"]),
        );
    }

    // Video packets: on the frame grid, one frame apart.
    let packets = video_packets(&output);
    let (tb_num, tb_den) = packets.time_base;
    let mut pts = packets.pts;
    pts.sort_unstable();
    let p0 = pts.first().copied().unwrap_or(0);
    // A frame lasts tb_den / (tb_num * fps) ticks: off-grid by `(pts - p0) *
    // tb_num * fps mod tb_den`, in units of 1/(tb_num*fps) ticks.
    let grid = tb_num * FPS as i64;
    let tick_frame = tb_den as f64 / grid as f64;
    let mut off_grid = Vec::new();
    let mut max_off_ticks = 0.0f64;
    for (i, q) in pts.iter().enumerate() {
        let (_, r) = frame_grid(*q, p0, packets.time_base, FPS);
        let off = r.min(tb_den as i128 - r) as f64 / grid as f64;
        max_off_ticks = max_off_ticks.max(off);
        if r != 0 {
            off_grid.push((i, *q));
        }
    }
    let mut bad_steps = Vec::new();
    for (i, w) in pts.windows(2).enumerate() {
        if (w[1] - w[0]) * grid != tb_den {
            bad_steps.push((i + 1, w[1] - w[0]));
        }
    }
    // Where the last frame ends up by pts vs. by count.
    let pts_drift_frames = pts
        .last()
        .map(|q| (q - p0) as f64 / tick_frame - (pts.len() as f64 - 1.0))
        .unwrap_or(0.0);
    if tb_den % grid != 0 {
        fail(
            "pts",
            format!("time base {tb_num}/{tb_den} cannot hold 15 fps frames exactly"),
        );
    }
    if !off_grid.is_empty() {
        fail(
            "pts",
            format!(
                "{} of {} video packets are off the frame grid (time base {tb_num}/{tb_den}, a frame = {tick_frame} ticks), first at sorted index {} (pts {}), max {max_off_ticks:.1} ticks off",
                off_grid.len(),
                pts.len(),
                off_grid[0].0,
                off_grid[0].1
            ),
        );
    }
    if !bad_steps.is_empty() {
        let first: Vec<String> = bad_steps
            .iter()
            .take(8)
            .map(|(i, d)| format!("#{i}: {d}"))
            .collect();
        fail(
            "pts",
            format!(
                "{} consecutive frames are not exactly {tick_frame} ticks apart: {} ...",
                bad_steps.len(),
                first.join(", ")
            ),
        );
    }

    // Video: every decoded frame's background.
    let colours = corner_colours(&output);
    let classified: Vec<(Option<usize>, i32)> = colours.iter().map(|c| classify(*c)).collect();
    let seq: Vec<Option<usize>> = classified.iter().map(|c| c.0).collect();
    let worst_colour = classified
        .iter()
        .filter(|c| c.0.is_some())
        .map(|c| c.1)
        .max()
        .unwrap_or(0);
    let total = seq.len();
    let first_frame = first_frames(&seq, specs.len());
    let measured_runs = run_lengths(&seq);
    let in_order = measured_runs.len() == specs.len()
        && measured_runs
            .iter()
            .enumerate()
            .all(|(k, r)| r.0 == Some(k));
    if !in_order {
        let shown: Vec<String> = measured_runs
            .iter()
            .take(40)
            .map(|(s, i, n)| {
                format!(
                    "{}@{i}x{n}",
                    s.map(|k| specs[k].class.clone()).unwrap_or("?".into())
                )
            })
            .collect();
        fail(
            "video",
            format!(
                "the decoded frames are not one contiguous run per scene in order ({} runs for {} scenes): {} ...",
                measured_runs.len(),
                specs.len(),
                shown.join(", ")
            ),
        );
    }
    if pts.len() != total {
        fail(
            "video",
            format!(
                "{} video packets but {total} decoded frames (ffmpeg duplicated or dropped frames: timestamps are off)",
                pts.len()
            ),
        );
    }
    // Segment lengths from the runs (first frame to next scene's first frame).
    let seg_len: Vec<Option<u64>> = (0..specs.len())
        .map(|k| {
            let a = first_frame[k]?;
            let b = if k + 1 < specs.len() {
                first_frame[k + 1]?
            } else {
                total
            };
            (b >= a).then(|| (b - a) as u64)
        })
        .collect();
    // The model's start frames, for the drift report.
    let mut model_start = Vec::new();
    let mut acc = 0u64;
    for (k, s) in specs.iter().enumerate() {
        model_start.push(acc);
        acc += seg_len[k]
            .filter(|l| s.allowed_frames().contains(l))
            .unwrap_or(s.allowed_frames()[0]);
    }
    for (k, s) in specs.iter().enumerate() {
        let allowed = s.allowed_frames();
        match seg_len[k] {
            Some(l) if allowed.contains(&l) => {}
            got => {
                let why = match &s.audio {
                    Some(a) if a.samples() > s.video_frames() * SPF => format!(
                        "narration {} ms = {:.3} frames longer than the video's {}: must hold it with less than a frame to spare",
                        a.ms,
                        a.samples() as f64 / SPF as f64,
                        s.video_frames()
                    ),
                    Some(a) => format!(
                        "narration {} ms shorter than the video's {} frames",
                        a.ms,
                        s.video_frames()
                    ),
                    None => format!("no narration, video {} frames", s.video_frames()),
                };
                fail(
                    "segment",
                    format!(
                        "{} ({}{}) lasts {got:?} frames, expected one of {allowed:?}",
                        s.class,
                        why,
                        if s.own { ", own sound" } else { "" }
                    ),
                );
            }
        }
    }

    // Audio: bursts against each scene's first frame as decoded.
    let pcm = decode_mono(&output);
    let found = find_bursts(&pcm);
    let mut want: Vec<Expect> = Vec::new();
    for (k, s) in specs.iter().enumerate() {
        let Some(f0) = first_frame[k] else { continue };
        let t0 = f0 as i64 * SPF as i64;
        let narr = s.audio.is_some();
        if narr || s.own {
            let len = if s.own { OWN_SAMPLES } else { BEEP_SAMPLES };
            want.push(Expect {
                scene: k,
                kind: Kind::Start { narr, own: s.own },
                onset: t0,
                end: t0 + len as i64,
            });
        }
        if let Some(a) = &s.audio {
            want.push(Expect {
                scene: k,
                kind: Kind::Marker,
                onset: t0 + (a.samples() - MARK_SAMPLES) as i64,
                end: t0 + a.samples() as i64,
            });
        }
    }
    // Match expected tones to bursts of their kind (start or end marker) in
    // time order, the way that costs least (sum of onset errors, 10 s per
    // tone or burst left unmatched): robust to a missing tone and to drift
    // of seconds, so a drifting build reports its offsets, not just misses.
    let mut used = vec![false; found.len()];
    let mut matched: Vec<Option<usize>> = vec![None; want.len()];
    for marker in [false, true] {
        let es: Vec<usize> = (0..want.len())
            .filter(|&i| (want[i].kind == Kind::Marker) == marker)
            .collect();
        let bs: Vec<usize> = (0..found.len())
            .filter(|&i| is_marker(&found[i]) == marker)
            .collect();
        for (e, b) in align(
            &es.iter().map(|&i| want[i].onset).collect::<Vec<_>>(),
            &bs.iter()
                .map(|&i| found[i].onset as i64)
                .collect::<Vec<_>>(),
        ) {
            matched[es[e]] = Some(bs[b]);
            used[bs[b]] = true;
        }
    }
    let mut worst = [(0i64, usize::MAX); 4]; // beep, own, mixed, marker: (|err|, scene)
    let mut worst_end = (0i64, usize::MAX);
    let mut peaks = [(f64::MAX, 0.0f64); 3]; // narr-only, own-only, mixed: (min, max)
    for (e, m) in want.iter().zip(&matched) {
        let s = &specs[e.scene];
        let what = match e.kind {
            Kind::Start {
                narr: true,
                own: false,
            } => "narration beep",
            Kind::Start {
                narr: false,
                own: true,
            } => "own sound",
            Kind::Start { .. } => "narration beep + own sound",
            Kind::Marker => "narration end marker",
        };
        let Some(i) = m else {
            fail(
                "audio",
                format!(
                    "{} {what}: expected at sample {} ({:.4} s, its first frame {}), MISSING",
                    s.class,
                    e.onset,
                    secs(e.onset),
                    first_frame[e.scene].unwrap()
                ),
            );
            continue;
        };
        let b = found[*i];
        let err = b.onset as i64 - e.onset;
        let slot = match e.kind {
            Kind::Start {
                narr: true,
                own: false,
            } => 0,
            Kind::Start {
                narr: false,
                own: true,
            } => 1,
            Kind::Start { .. } => 2,
            Kind::Marker => 3,
        };
        if err.abs() > worst[slot].0.abs() || worst[slot].1 == usize::MAX {
            worst[slot] = (err, e.scene);
        }
        if err.abs() > ONSET_TOL {
            fail(
                "audio",
                format!(
                    "{} {what}: onset at sample {}, expected {} (its first frame {} / {FPS} s): off by {err:+} samples = {:+.3} ms (allowed {:.1} ms)",
                    s.class,
                    b.onset,
                    e.onset,
                    first_frame[e.scene].unwrap(),
                    ms(err),
                    ms(ONSET_TOL)
                ),
            );
        }
        let end_err = b.last as i64 + 1 - e.end;
        if end_err.abs() > worst_end.0.abs() || worst_end.1 == usize::MAX {
            worst_end = (end_err, e.scene);
        }
        if end_err.abs() > END_TOL {
            fail(
                "audio",
                format!(
                    "{} {what}: ends at sample {}, expected {}: {end_err:+} samples = {:+.3} ms{}",
                    s.class,
                    b.last + 1,
                    e.end,
                    ms(end_err),
                    if s.own {
                        format!(
                            " (the own sound lasts {} ms; a narration beep {} ms)",
                            ms(OWN_SAMPLES as i64),
                            ms(BEEP_SAMPLES as i64)
                        )
                    } else {
                        String::new()
                    }
                ),
            );
        }
        if slot < 3 {
            peaks[slot].0 = peaks[slot].0.min(b.peak);
            peaks[slot].1 = peaks[slot].1.max(b.peak);
        }
        match e.kind {
            Kind::Start {
                narr: true,
                own: true,
            } if b.peak < MIXED_PEAK => fail(
                "audio",
                format!(
                    "{} narration beep + own sound: peak {:.3}, expected about 0.8 (0.5 + 0.3, summed) and at least {MIXED_PEAK}: not both are there",
                    s.class, b.peak
                ),
            ),
            Kind::Start {
                narr: true,
                own: false,
            } if b.peak > SINGLE_PEAK => fail(
                "audio",
                format!(
                    "{} narration beep alone peaks at {:.3}, expected about {NARRATION_VOL}",
                    s.class, b.peak
                ),
            ),
            _ => {}
        }
    }
    let stray: Vec<String> = found
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .take(12)
        .map(|(b, _)| {
            let f = b.onset / SPF as usize;
            let in_scene = seq
                .get(f)
                .copied()
                .flatten()
                .map(|k| specs[k].class.clone())
                .unwrap_or("?".into());
            format!(
                "{} at sample {} (frame {f}, in {in_scene}), {:.1} ms, peak {:.2}, {:.1} crossings/ms",
                if is_marker(b) { "marker-like" } else { "beep-like" },
                b.onset,
                ms((b.last - b.onset + 1) as i64),
                b.peak,
                b.zcr
            )
        })
        .collect();
    let n_stray = used.iter().filter(|u| !**u).count();
    if n_stray > 0 {
        fail(
            "audio",
            format!(
                "{n_stray} tone bursts belong to nothing: {}",
                stray.join("; ")
            ),
        );
    }
    let expected_samples = total as i64 * SPF as i64;
    if (pcm.len() as i64 - expected_samples).abs() >= SPF as i64 {
        fail(
            "audio",
            format!(
                "decoded audio has {} samples, the video {total} frames = {expected_samples} samples (allowed: less than a frame apart)",
                pcm.len()
            ),
        );
    }
    let duration = last["duration"].as_f64().unwrap_or(-1.0);
    if (duration - total as f64 / FPS as f64).abs() > 0.0015 {
        fail(
            "duration",
            format!(
                "build-finished duration {duration} s, but {total} frames decoded = {:.4} s",
                total as f64 / FPS as f64
            ),
        );
    }
    let measure_secs = t.elapsed().as_secs_f64();

    // --- Report.
    eprintln!(
        "\nMany scenes: {} scenes ({narrated} narrated, {longer} of them longer than their video; {own} with their own sound, {own_narrated} of those narrated), {} files",
        specs.len(),
        {
            let mut f: Vec<&str> = specs.iter().map(|s| s.file.as_str()).collect();
            f.dedup();
            f.len()
        }
    );
    eprintln!(
        "{:<5} {:>5} {:>9} {:>4} {:>9} {:>9} {:>8} {:>8}  onset errors (samples)",
        "scene", "video", "narr", "own", "segment", "allowed", "first", "model"
    );
    for (k, s) in specs.iter().enumerate() {
        let errs: Vec<String> = want
            .iter()
            .zip(&matched)
            .filter(|(e, _)| e.scene == k)
            .map(|(e, m)| {
                let tag = if e.kind == Kind::Marker {
                    "end"
                } else {
                    "start"
                };
                match m {
                    Some(i) => format!("{tag} {:+}", found[*i].onset as i64 - e.onset),
                    None => format!("{tag} MISSING"),
                }
            })
            .collect();
        eprintln!(
            "{:<5} {:>4}f {:>9} {:>4} {:>8} {:>9} {:>8} {:>7}  {}",
            s.class,
            s.video_frames(),
            s.audio
                .as_ref()
                .map(|a| format!("{}ms/{}f", a.ms, a.frames()))
                .unwrap_or("-".into()),
            if s.own { "yes" } else { "" },
            seg_len[k].map(|l| format!("{l}f")).unwrap_or("?".into()),
            format!("{:?}", s.allowed_frames()),
            first_frame[k]
                .map(|f| f.to_string())
                .unwrap_or("never".into()),
            first_frame[k]
                .map(|f| format!("{:+}", f as i64 - model_start[k] as i64))
                .unwrap_or_default(),
            errs.join(", ")
        );
    }
    let names = [
        "narration beep",
        "own sound",
        "beep + own sound",
        "end marker",
    ];
    for (i, n) in names.iter().enumerate() {
        let (e, k) = worst[i];
        if k != usize::MAX {
            eprintln!(
                "max onset error, {n:<16}: {e:+} samples = {:+.3} ms ({})",
                ms(e),
                specs[k].class
            );
        }
    }
    if worst_end.1 != usize::MAX {
        eprintln!(
            "max end error: {:+} samples = {:+.3} ms ({})",
            worst_end.0,
            ms(worst_end.0),
            specs[worst_end.1].class
        );
    }
    for (i, n) in ["narration beep", "own sound", "beep + own"]
        .iter()
        .enumerate()
    {
        if peaks[i].1 > 0.0 {
            eprintln!("peaks, {n:<14}: {:.3}..{:.3}", peaks[i].0, peaks[i].1);
        }
    }
    let max_model_drift = (0..specs.len())
        .filter_map(|k| first_frame[k].map(|f| f as i64 - model_start[k] as i64))
        .max_by_key(|d| d.abs())
        .unwrap_or(0);
    eprintln!(
        "video: {total} decoded frames, {} packets, time base {tb_num}/{tb_den}, first pts {p0}; {} off the frame grid (max {max_off_ticks:.1} ticks), {} uneven steps; last pts is {pts_drift_frames:+.3} frames from its index; first frames vs. the segment model: max {max_model_drift:+} frames; worst colour error {worst_colour}",
        pts.len(),
        off_grid.len(),
        bad_steps.len()
    );
    if !bad_steps.is_empty() {
        let mut hist: Vec<(i64, usize)> = Vec::new();
        for (_, d) in &bad_steps {
            match hist.iter_mut().find(|(x, _)| x == d) {
                Some((_, n)) => *n += 1,
                None => hist.push((*d, 1)),
            }
        }
        hist.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        let shown: Vec<String> = hist
            .iter()
            .take(8)
            .map(|(d, n)| format!("{d} ticks x{n}"))
            .collect();
        eprintln!(
            "uneven pts steps (a frame is {tick_frame} ticks): {}",
            shown.join(", ")
        );
    }
    eprintln!(
        "audio: {} samples decoded ({:.4} s), video {:.4} s; {} bursts found, {} expected",
        pcm.len(),
        secs(pcm.len() as i64),
        total as f64 / FPS as f64,
        found.len(),
        want.len()
    );
    eprintln!(
        "streams: {}",
        streams
            .iter()
            .map(|s| format!("{}:{}", s["codec_type"], s["codec_name"]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !warnings.is_empty() {
        eprintln!("warnings from the build: {warnings:?}");
    }
    eprintln!(
        "build: {build_secs:.1}s wall, {build_cpu:.1}s CPU (parender and everything it ran); renders {:.1}s in all (max {:.1}s); build-finished says {}s",
        render_secs.iter().sum::<f64>(),
        render_secs.iter().cloned().fold(0.0, f64::max),
        last["seconds"]
    );
    eprintln!(
        "time: setup {setup_secs:.1}s, build {build_secs:.1}s, measuring {measure_secs:.1}s, whole test {:.1}s\n",
        started.elapsed().as_secs_f64()
    );

    if !failures.is_empty() {
        let mut by_kind: Vec<(String, usize)> = Vec::new();
        for f in &failures {
            let k = f[..f.find(']').unwrap() + 1].to_string();
            match by_kind.iter_mut().find(|(x, _)| *x == k) {
                Some((_, n)) => *n += 1,
                None => by_kind.push((k, 1)),
            }
        }
        let summary: Vec<String> = by_kind.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        let shown: Vec<&String> = failures.iter().take(60).collect();
        panic!(
            "{} failures ({}):\n{}{}",
            failures.len(),
            summary.join(", "),
            shown.iter().map(|f| format!("  {f}\n")).collect::<String>(),
            if failures.len() > 60 { "  ...\n" } else { "" }
        );
    }
}
