//! End to end: A/V sync to the frame.
//!
//! Renders five real Manim scenes (each with its own solid background colour
//! and a known number of frames) with narration made by sox (a 1 kHz beep at
//! sample 0 and a 2 kHz end marker in its last 50 ms), in several formats and
//! sample rates, some longer and some shorter than their video, one scene
//! without audio, and a gap between scenes. Then it decodes the final video
//! and checks, from the decoded pixels and samples (not from metadata), that
//! every scene's first frame is exactly where the timeline says and that every
//! beep and end marker is where it belongs, to well within a frame.
//!
//! Run with `cargo test --test e2e_sync -- --nocapture` to see the measured
//! offsets.

mod common;

use std::time::Instant;

use common::av::{
    Pcm, RATE, assert_audio_length, assert_frames_match, bursts, classify_frames, corner_colours,
    decode_mono, ffprobe_json, first_frames, ms, runs, secs, segments_seq, sox_beep_and_marker,
    soxi, streams_of,
};
use common::{TestProject, text};

/// Manim's `-ql` frame rate (the default dev profile).
const FPS: u64 = 15;
/// Samples per video frame at 15 fps (the final track is at [`RATE`], the
/// rate the test decodes audio at).
const SPF: u64 = RATE / FPS;
/// `gap = 0.4` in parender.toml.
const GAP: f64 = 0.4;
/// The beep at the start of every narration file.
const BEEP_S: f64 = 0.1;
/// The end marker that fills the last 50 ms of every narration file.
const MARK_S: f64 = 0.05;
/// Peak amplitude of both tones (full scale 1.0).
const TONE_VOL: f64 = 0.5;
/// A decoded sample louder than this (|x| / 32768) belongs to a tone.
const LOUD: f64 = 0.1;
/// Tones are separated by at least this much quiet (0.2 s).
const QUIET_SAMPLES: usize = 9_600;
/// How far a tone's measured onset may be from where it belongs: 2 ms, that
/// is 3% of a frame (a 40 ms drift, or one frame, fails by far).
const ONSET_TOL: i64 = 96;
/// How far a tone's measured length may differ from its length in the file.
const LENGTH_TOL: i64 = 96;
/// A decoded background channel may be this far from its scene's colour.
const COLOUR_TOL: i32 = 24;

struct Narration {
    /// File name under `audio/`.
    file: &'static str,
    rate: u32,
    channels: u32,
    seconds: f64,
}

struct SceneSpec {
    file: &'static str,
    class: &'static str,
    hex: &'static str,
    rgb: [u8; 3],
    /// `FadeIn` of a small dot at the centre, run time in seconds.
    fade: f64,
    /// `self.wait(...)` after it.
    wait: f64,
    audio: Option<Narration>,
}

fn specs() -> Vec<SceneSpec> {
    vec![
        // 15 frames of video, 2.5 s of audio: the last frame is held for 23
        // frames, long enough to be made of half-second units (8 frames,
        // joined twice) and the rest (7).
        SceneSpec {
            file: "01_red.py",
            class: "Red",
            hex: "#FF0000",
            rgb: [255, 0, 0],
            fade: 0.4,
            wait: 0.6,
            audio: Some(Narration {
                file: "01_red.wav",
                rate: 48_000,
                channels: 1,
                seconds: 2.5,
            }),
        },
        // 30 frames of video, 1.2 s of audio: silence pads the audio.
        SceneSpec {
            file: "02_green.py",
            class: "Green",
            hex: "#00FF00",
            rgb: [0, 255, 0],
            fade: 0.8,
            wait: 1.2,
            audio: Some(Narration {
                file: "02_green.flac",
                rate: 48_000,
                channels: 2,
                seconds: 1.2,
            }),
        },
        // Two scenes in one file: audio named `<stem>.<Class>.<ext>`.
        // 21 frames of video, 1.9 s of Ogg Vorbis: the last frame is held.
        SceneSpec {
            file: "03_pair.py",
            class: "Blue",
            hex: "#0000FF",
            rgb: [0, 0, 255],
            fade: 0.4,
            wait: 1.0,
            audio: Some(Narration {
                file: "03_pair.Blue.ogg",
                rate: 48_000,
                channels: 2,
                seconds: 1.9,
            }),
        },
        // 15 frames, no audio at all: silence.
        SceneSpec {
            file: "03_pair.py",
            class: "Magenta",
            hex: "#FF00FF",
            rgb: [255, 0, 255],
            fade: 0.6,
            wait: 0.4,
            audio: None,
        },
        // 18 frames of video, 0.7 s of 44.1 kHz mono audio (resampled):
        // silence pads it; the last scene, so no gap after it.
        SceneSpec {
            file: "04_yellow.py",
            class: "Yellow",
            hex: "#FFFF00",
            rgb: [255, 255, 0],
            fade: 0.6,
            wait: 0.6,
            audio: Some(Narration {
                file: "04_yellow.wav",
                rate: 44_100,
                channels: 1,
                seconds: 0.7,
            }),
        },
    ]
}

/// Frames for `seconds` at 15 fps; the test only uses durations that are
/// whole frames, where Manim's rules (ceil for animations, floor for frozen
/// waits) agree.
fn whole_frames(seconds: f64) -> u64 {
    let f = seconds * FPS as f64;
    assert!(
        (f - f.round()).abs() < 1e-9,
        "test bug: {seconds} s is not a whole number of frames"
    );
    f.round() as u64
}

/// Makes `audio/<file>`: a 1 kHz beep from sample 0, silence, and a 2 kHz end
/// marker filling the last 50 ms. Returns its length in samples at its rate
/// (as sox reads the finished file back).
fn make_narration(p: &TestProject, n: &Narration) -> u64 {
    let tmp = p.path().join("sox-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let out = p.path().join("audio").join(n.file);
    let pcm = Pcm {
        rate: n.rate,
        channels: n.channels,
    };
    let pad = n.seconds - BEEP_S - MARK_S;
    sox_beep_and_marker(&out, &tmp, pcm, BEEP_S, pad, MARK_S, TONE_VOL);
    let samples = soxi("-s", &out);
    assert_eq!(soxi("-r", &out), n.rate as u64, "sample rate of {}", n.file);
    let want = (n.seconds * n.rate as f64).round() as u64;
    assert_eq!(
        samples, want,
        "test bug: {} has {samples} samples, not {want}",
        n.file
    );
    samples
}

/// The scene files, one class per scene, grouped by file in `specs` order.
fn write_scenes(p: &TestProject, specs: &[SceneSpec]) {
    let mut files: Vec<(&str, String)> = Vec::new();
    for s in specs {
        let class = format!(
            "\n\nclass {class}(Scene):\n    def construct(self):\n        \
             self.camera.background_color = ManimColor(\"{hex}\")\n        \
             self.play(FadeIn(Dot(ORIGIN, radius=0.2, color=WHITE)), run_time={fade})\n        \
             self.wait({wait})\n",
            class = s.class,
            hex = s.hex,
            fade = s.fade,
            wait = s.wait,
        );
        match files.iter_mut().find(|(f, _)| *f == s.file) {
            Some((_, text)) => text.push_str(&class),
            None => files.push((
                s.file,
                format!("from manim import ORIGIN, WHITE, Dot, FadeIn, ManimColor, Scene\n{class}"),
            )),
        }
    }
    for (file, text) in files {
        p.write(&format!("scenes/{file}"), &text);
    }
}

#[test]
fn av_sync_to_the_frame() {
    let started = Instant::now();
    let specs = specs();
    let p = TestProject::new(&format!("name = \"sync\"\ngap = {GAP}\n"));
    write_scenes(&p, &specs);

    // --- The narration, and a check that the test's own input is what we
    // think: the beep starts at sample 0 and the marker fills the last 50 ms,
    // after decoding exactly the way one would decode the files.
    let mut audio_samples: Vec<Option<u64>> = Vec::new(); // at 48 kHz
    for s in &specs {
        let Some(n) = &s.audio else {
            audio_samples.push(None);
            continue;
        };
        let samples = make_narration(&p, n);
        let at48 = samples * RATE / n.rate as u64;
        assert_eq!(
            at48 * n.rate as u64,
            samples * RATE,
            "test bug: {} is not whole 48 kHz samples",
            n.file
        );
        let pcm = decode_mono(&p.path().join("audio").join(n.file));
        let b = bursts(&pcm, LOUD, QUIET_SAMPLES);
        let mark = at48 as i64 - (MARK_S * RATE as f64) as i64;
        assert!(
            b.len() == 2 && b[0].onset <= 4 && (b[1].onset as i64 - mark).abs() <= 4,
            "test bug: {} decodes to bursts {b:?}, expected a beep at 0 and a marker at {mark}",
            n.file
        );
        assert!(
            (pcm.len() as i64 - at48 as i64).abs() <= 4,
            "test bug: {} decodes to {} samples, not {at48}",
            n.file,
            pcm.len()
        );
        audio_samples.push(Some(at48));
    }

    // --- Build.
    let out = p.parender(&["build", "--message-format", "json"]);
    let build_secs = started.elapsed().as_secs_f64();
    let lines = TestProject::successful_build(&out);
    let started_msg = TestProject::line_with(&lines, "build-started", &out);
    assert_eq!(started_msg["fps"], FPS, "{}", text(&out));
    assert_eq!(started_msg["width"], 854, "{}", text(&out));
    assert_eq!(started_msg["height"], 480, "{}", text(&out));
    let finished_scenes = lines
        .iter()
        .filter(|l| l["reason"] == "scene-finished")
        .count();
    assert_eq!(finished_scenes, specs.len(), "{}", text(&out));
    let last = lines.last().expect("JSON lines");
    let output = std::path::PathBuf::from(last["output"].as_str().expect("output path"));
    assert!(
        output.is_absolute(),
        "output {} is not absolute",
        output.display()
    );
    assert_eq!(
        output.canonicalize().unwrap(),
        p.path().join("out/dev/sync.mp4").canonicalize().unwrap()
    );

    // --- The expected timeline, in frames and in 48 kHz samples.
    let gap_frames = (GAP * FPS as f64).round() as u64;
    let mut start_frame = Vec::new(); // T_k * fps
    let mut seg_frames = Vec::new(); // F_k
    let mut t = 0u64;
    for (k, s) in specs.iter().enumerate() {
        let video = whole_frames(s.fade) + whole_frames(s.wait);
        let audio = audio_samples[k].map(|n| n.div_ceil(SPF)).unwrap_or(0);
        let f = video.max(audio) + if k + 1 < specs.len() { gap_frames } else { 0 };
        start_frame.push(t);
        seg_frames.push(f);
        t += f;
    }
    let total_frames = t;
    let total_secs = total_frames as f64 / FPS as f64;
    let duration = last["duration"].as_f64().expect("build-finished duration");
    assert!(
        (duration - total_secs).abs() < 0.0015,
        "build-finished duration {duration} s, but the timeline is {total_frames} frames = {total_secs:.4} s"
    );

    // --- Streams.
    let probe = ffprobe_json(
        &output,
        &[
            "-count_frames",
            "-show_entries",
            "stream=codec_type,codec_name,sample_rate,channels,width,height,r_frame_rate,nb_read_frames,duration",
        ],
    );
    let streams = probe["streams"].as_array().unwrap();
    let (v, a, d) = (
        streams_of(streams, "video"),
        streams_of(streams, "audio"),
        streams_of(streams, "data"),
    );
    // The third stream is the chapter track MP4 keeps chapters in.
    assert_eq!(
        (streams.len(), d.len()),
        (3, 1),
        "expected exactly one video, one audio and one chapter (data) stream: {probe}"
    );
    assert_eq!((v.len(), a.len()), (1, 1), "streams: {probe}");
    let (v, a) = (v[0], a[0]);
    assert_eq!(v["codec_name"], "h264", "{v}");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(854), Some(480)),
        "{v}"
    );
    assert_eq!(v["r_frame_rate"], "15/1", "{v}");
    assert_eq!(a["codec_name"], "aac", "{a}");
    assert_eq!(a["sample_rate"], "48000", "{a}");
    assert_eq!(a["channels"], 2, "{a}");
    let counted: u64 = v["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        counted, total_frames,
        "decoded video frame count (ffprobe -count_frames)"
    );
    let frame_s = 1.0 / FPS as f64;
    for (what, s) in [("video", v), ("audio", a)] {
        let d: f64 = s["duration"].as_str().unwrap().parse().unwrap();
        assert!(
            (d - total_secs).abs() < frame_s,
            "{what} stream lasts {d} s, expected {total_secs:.4} s within one frame"
        );
    }

    // --- Video: every decoded frame's background, against the timeline.
    let colours = corner_colours(&output);
    assert_eq!(colours.len() as u64, total_frames, "decoded frames");
    let palette: Vec<[u8; 3]> = specs.iter().map(|s| s.rgb).collect();
    let seq = classify_frames(&colours, &palette, COLOUR_TOL);
    let expected_seq = segments_seq(&seg_frames);
    let first_frame = first_frames(&seq, specs.len());

    // --- Audio: every tone burst in the decoded track, against the timeline.
    let pcm = decode_mono(&output);
    let expected_samples = total_frames * SPF;
    let found = bursts(&pcm, LOUD, QUIET_SAMPLES);
    // (scene, what, expected onset, expected length), in time order.
    let mut want: Vec<(usize, &str, i64, i64)> = Vec::new();
    for k in 0..specs.len() {
        if let Some(n) = audio_samples[k] {
            let t0 = (start_frame[k] * SPF) as i64;
            let mark = (MARK_S * RATE as f64) as i64;
            want.push((k, "beep", t0, (BEEP_S * RATE as f64) as i64));
            want.push((k, "end marker", t0 + n as i64 - mark, mark));
        }
    }

    // --- Report.
    eprintln!(
        "\nA/V sync: {total_frames} frames at {FPS} fps = {total_secs:.4} s (gap {gap_frames} frames)"
    );
    eprintln!(
        "{:<9} {:>6} {:>7} {:>9} {:>9}  {:<18} {:<24}",
        "scene", "video", "audio", "segment", "start", "first frame", "colour seen"
    );
    for (k, s) in specs.iter().enumerate() {
        let audio = audio_samples[k]
            .map(|n| format!("{:.3}s", secs(n as i64)))
            .unwrap_or_else(|| "none".into());
        let meas = first_frame[k]
            .map(|f| format!("{f} ({:+})", f as i64 - start_frame[k] as i64))
            .unwrap_or_else(|| "never".into());
        let c = first_frame[k].map(|f| colours[f]).unwrap_or([0; 3]);
        eprintln!(
            "{:<9} {:>5}f {:>7} {:>8}f {:>8}f  {:<18} {:?} for #{}",
            s.class,
            whole_frames(s.fade) + whole_frames(s.wait),
            audio,
            seg_frames[k],
            start_frame[k],
            meas,
            c,
            &s.hex[1..]
        );
    }
    eprintln!("audio bursts (decoded AAC, 48 kHz, threshold {LOUD}):");
    for (i, (k, what, t0, len)) in want.iter().enumerate() {
        match found.get(i) {
            Some(b) => eprintln!(
                "  {:<8} {:<10} expected at {:>6} ({:.4}s), measured {:>6}: offset {:+} samples = {:+.3} ms; length {:.2} ms (file {:.2} ms); peak {:.2}",
                specs[*k].class,
                what,
                t0,
                secs(*t0),
                b.onset,
                b.onset as i64 - t0,
                ms(b.onset as i64 - t0),
                ms(b.last as i64 - b.onset as i64 + 1),
                ms(*len),
                b.peak
            ),
            None => eprintln!(
                "  {:<8} {:<10} expected at {t0}: MISSING",
                specs[*k].class, what
            ),
        }
    }
    eprintln!(
        "decoded audio: {} samples ({:.4}s), timeline {expected_samples} samples",
        pcm.len(),
        secs(pcm.len() as i64)
    );
    eprintln!(
        "build {build_secs:.1}s, whole test {:.1}s\n",
        started.elapsed().as_secs_f64()
    );

    // --- Assertions on the measurements.
    let scene_name = |k: usize| specs[k].class.to_string();
    for (k, s) in specs.iter().enumerate() {
        assert_eq!(
            first_frame[k],
            Some(start_frame[k] as usize),
            "scene {} (background {}): first frame measured {:?}, expected {} (= T_k * fps); sequence: {}",
            s.class,
            s.hex,
            first_frame[k],
            start_frame[k],
            runs(&seq, scene_name)
        );
    }
    assert_frames_match(&seq, &expected_seq, &colours, scene_name);
    assert_audio_length(pcm.len(), total_frames, SPF);
    assert_eq!(
        found.len(),
        want.len(),
        "expected {} tone bursts (a beep and an end marker per scene with audio; none where {} starts), found {:?}",
        want.len(),
        specs[3].class,
        found
    );
    for ((k, what, t0, len), b) in want.iter().zip(&found) {
        let off = b.onset as i64 - t0;
        assert!(
            off.abs() <= ONSET_TOL,
            "{} {what}: onset at sample {}, expected {t0}: off by {off} samples = {:+.3} ms (allowed {:.1} ms; a frame is {:.1} ms)",
            specs[*k].class,
            b.onset,
            ms(off),
            ms(ONSET_TOL),
            1000.0 / FPS as f64
        );
        let got = b.last as i64 - b.onset as i64 + 1;
        assert!(
            (got - len).abs() <= LENGTH_TOL,
            "{} {what}: lasts {got} samples, expected {len} ({:+.3} ms)",
            specs[*k].class,
            ms(got - len)
        );
        assert!(
            b.peak > 0.2,
            "{} {what}: peak {} is too quiet",
            specs[*k].class,
            b.peak
        );
    }
    // No sound at all where the scene without audio plays (its frames only:
    // the next scene's beep starts right after, and AAC smears a little).
    for (k, _) in specs
        .iter()
        .enumerate()
        .filter(|(k, _)| audio_samples[*k].is_none())
    {
        let from = (start_frame[k] * SPF) as usize;
        let to = ((start_frame[k] + seg_frames[k]) * SPF) as usize - 1024;
        let peak = pcm[from..to].iter().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(
            peak < 0.01,
            "{} has no audio, but its samples {from}..{to} peak at {peak}",
            specs[k].class
        );
    }
}
