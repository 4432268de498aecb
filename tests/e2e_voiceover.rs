//! End to end: manim-voiceover scenes keep their voice, sample-exact.
//!
//! A scene's own sound (`add_sound`, which manim-voiceover calls for every
//! voice-over) belongs to its segment. This test renders, with real Manim and
//! manim-voiceover from a separate environment (`.venv-voiceover`, made by
//! scripts/setup-voiceover-env.sh; the project's parender.toml points
//! `python` at it, as a user's would), three scenes:
//!
//! - `Intro`: a plain scene (red) with a paired narration file that is longer
//!   than its video, so the next scene starts at a non-trivial frame;
//! - `Voice`: a `VoiceoverScene` (blue) with two voice-overs, the second one
//!   starting well after the scene's start, each timing an animation with
//!   `run_time=tracker.duration`;
//! - `Outro`: a `VoiceoverScene` (green) whose voice-over outlasts its video
//!   (`add_voiceover_text` without waiting), so its last frame must be held.
//!
//! The voices come from an offline speech service kept beside the scenes
//! (`scenes/espeak_service.py`: espeak-ng speaks to WAV, ffmpeg makes the MP3
//! manim-voiceover expects), so the test needs no network and no API keys.
//!
//! Then it renders `Voice` and `Outro` again with plain Manim from the same
//! environment and compares the audio of the final video over each scene's
//! span with the sound Manim itself made for the scene: both decoded to 48 kHz
//! mono, the RMS envelope (10 ms windows) located in the final track by
//! cross-correlation, refined to the sample by cross-correlating the
//! waveforms. The voice must start within 1 ms of the scene's first frame,
//! with the same envelope (correlation > 0.95) and level (within 1 dB).
//!
//! The reference is the WAV Manim writes beside its video (the mix of every
//! `add_sound`, positioned by Manim), not the AAC track of Manim's mp4: Manim
//! encodes that track as raw ADTS AAC and muxes it without priming
//! information, so it plays 1024 samples (21.3 ms at 48 kHz) late. The test
//! measures and prints that offset too, for information.
//!
//! It also checks every scene's frames in the final video (by background
//! colour) against a timeline of max(video, narration, scene sound) rounded up
//! to whole frames, plus the gap, and that `parender scenes --message-format
//! json` reports `"scene_sound": true` for the voice-over scenes and `false`
//! for the plain one.
//!
//! Skipped (with a message, not a failure) when setup found the package index
//! unreachable and left `.venv-voiceover.unavailable`; a missing environment
//! without that marker is a failure: run scripts/setup.sh.
//!
//! Run with `cargo test --test e2e_voiceover -- --nocapture` to see the
//! measurements.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::av::{
    MONO_48K, RATE, assert_audio_length, assert_frames_match, classify_frames, corner_colours,
    count_frames, decode_mono, first_frames, ms, runs, segments_seq, sox_tone,
};
use common::{TestProject, text};

/// Manim's `-ql` frame rate (the default dev profile).
const FPS: u64 = 15;
/// Samples per video frame (audio is decoded at [`RATE`], the final
/// track's rate).
const SPF: u64 = RATE / FPS;
/// `gap = 0.2` in parender.toml: 3 frames.
const GAP: f64 = 0.2;
/// Envelope window: 10 ms.
const WIN: usize = 480;
/// How far the voice may start from the scene's first frame: 1 ms.
const MAX_OFFSET: i64 = 48;
/// Lowest acceptable correlation of the RMS envelopes.
const MIN_ENVELOPE_CORR: f64 = 0.95;
/// Level of the voice in the final video against Manim's own, in dB.
const MAX_LEVEL_DB: f64 = 1.0;
/// The narration of `Intro`: a 1 kHz beep, then silence; 1.3 s (19.5 frames).
const NARRATION_S: f64 = 1.3;
/// `Intro`'s video: FadeIn 0.4 s + wait 0.6 s.
const INTRO_FRAMES: u64 = 15;
/// A decoded background channel may be this far from its scene's colour.
const COLOUR_TOL: i32 = 24;

struct SceneSpec {
    file: &'static str,
    class: &'static str,
    rgb: [u8; 3],
    /// Has its own sound (manim-voiceover).
    voice: bool,
}

const SCENES: [SceneSpec; 3] = [
    SceneSpec {
        file: "scenes/01_intro.py",
        class: "Intro",
        rgb: [255, 0, 0],
        voice: false,
    },
    SceneSpec {
        file: "scenes/02_voice.py",
        class: "Voice",
        rgb: [0, 0, 255],
        voice: true,
    },
    SceneSpec {
        file: "scenes/03_outro.py",
        class: "Outro",
        rgb: [0, 255, 0],
        voice: true,
    },
];

/// An offline speech service for manim-voiceover: espeak-ng writes a WAV,
/// ffmpeg encodes the MP3 next to manim-voiceover's cache.json, and the
/// returned dict is what `SpeechService._wrap_generate_from_text` expects
/// (`original_audio` relative to the cache folder; it adds `final_audio`).
const ESPEAK_SERVICE: &str = r##""""An offline manim-voiceover speech service: espeak-ng speaks, ffmpeg encodes."""
import subprocess
from pathlib import Path

from manim_voiceover.services.base import SpeechService


class EspeakService(SpeechService):
    def __init__(self, voice="en-us", speed=175, **kwargs):
        self.voice = voice
        self.speed = speed
        super().__init__(**kwargs)

    def generate_from_text(self, text, cache_dir=None, path=None, **kwargs):
        if cache_dir is None:
            cache_dir = self.cache_dir
        input_data = {
            "input_text": text,
            "service": "espeak-ng",
            "config": {"voice": self.voice, "speed": self.speed},
        }
        cached = self.get_cached_result(input_data, cache_dir)
        if cached is not None:
            return cached
        audio_path = str(path) if path is not None else self.get_audio_basename(input_data) + ".mp3"
        mp3 = Path(cache_dir) / audio_path
        wav = mp3.with_suffix(".espeak.wav")
        subprocess.run(
            ["espeak-ng", "-v", self.voice, "-s", str(self.speed), "-w", str(wav), text],
            check=True,
        )
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(wav),
             "-c:a", "libmp3lame", "-q:a", "2", str(mp3)],
            check=True,
        )
        wav.unlink()
        return {"input_text": text, "input_data": input_data, "original_audio": audio_path}
"##;

const INTRO: &str = r##"from manim import ORIGIN, WHITE, Dot, FadeIn, ManimColor, Scene


class Intro(Scene):
    def construct(self):
        self.camera.background_color = ManimColor("#FF0000")
        self.play(FadeIn(Dot(ORIGIN, radius=0.2, color=WHITE)), run_time=0.4)
        self.wait(0.6)
"##;

const VOICE: &str = r##"from manim import Circle, Create, ManimColor, Square, Transform
from manim_voiceover import VoiceoverScene

from espeak_service import EspeakService


class Voice(VoiceoverScene):
    def construct(self):
        self.camera.background_color = ManimColor("#0000FF")
        self.set_speech_service(EspeakService())
        circle = Circle()
        with self.voiceover(text="This circle is drawn as I speak.") as tracker:
            self.play(Create(circle), run_time=tracker.duration)
        self.wait(0.4)
        with self.voiceover(text="And now it becomes a square.") as tracker:
            self.play(Transform(circle, Square()), run_time=tracker.duration)
"##;

const OUTRO: &str = r##"from manim import ORIGIN, WHITE, Dot, FadeIn, ManimColor
from manim_voiceover import VoiceoverScene

from espeak_service import EspeakService


class Outro(VoiceoverScene):
    def construct(self):
        self.camera.background_color = ManimColor("#00FF00")
        self.set_speech_service(EspeakService())
        # No `with`: the voice goes on after the last animation.
        self.add_voiceover_text("That is all. Thank you for watching.")
        self.play(FadeIn(Dot(ORIGIN, radius=0.2, color=WHITE)), run_time=0.5)
"##;

/// The voice-over environment's Python, or `None` (after saying why) when
/// setup could not install it because the package index was unreachable.
/// `PARENDER_VOICEOVER_PYTHON` overrides the default `.venv-voiceover`.
fn voiceover_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PARENDER_VOICEOVER_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv-voiceover/bin/python");
    if python.exists() {
        return Some(python);
    }
    let marker = root.join(".venv-voiceover.unavailable");
    if let Ok(why) = std::fs::read_to_string(&marker) {
        let lines: Vec<&str> = why.lines().filter(|l| !l.trim().is_empty()).collect();
        let shown = if lines.len() > 12 {
            let mut v = lines[..4].to_vec();
            v.push("...");
            v.extend_from_slice(&lines[lines.len() - 6..]);
            v
        } else {
            lines
        };
        eprintln!(
            "e2e_voiceover skipped: package index unreachable: {} is missing and {} says:\n  {}\n\
             (run scripts/setup.sh again once the index is reachable)",
            python.display(),
            marker.display(),
            shown.join("\n  ")
        );
        return None;
    }
    panic!(
        "{} is missing: run scripts/setup.sh (it makes the voice-over test environment with scripts/setup-voiceover-env.sh)",
        python.display()
    );
}

fn rms(x: &[f64]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64).sqrt()
}

/// RMS per [`WIN`]-sample window (whole windows only).
fn envelope(x: &[f64]) -> Vec<f64> {
    x.chunks_exact(WIN).map(rms).collect()
}

/// Pearson correlation; 0 when either side is constant (e.g. silent).
fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let (a, b) = (&a[..n], &b[..n]);
    let ma = a.iter().sum::<f64>() / n as f64;
    let mb = b.iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 1e-18 || sbb <= 1e-18 {
        0.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}

/// Normalised cross-correlation of `reference` placed at sample `lag` of
/// `track` (the overlap only).
fn ncc_at(track: &[f64], reference: &[f64], lag: i64) -> f64 {
    let lo = lag.max(0) as usize;
    let hi = ((lag + reference.len() as i64).max(0) as usize).min(track.len());
    if hi <= lo {
        return 0.0;
    }
    let t = &track[lo..hi];
    let r = &reference[(lo as i64 - lag) as usize..(hi as i64 - lag) as usize];
    let (mut tr, mut tt, mut rr) = (0.0, 0.0, 0.0);
    for (x, y) in t.iter().zip(r) {
        tr += x * y;
        tt += x * x;
        rr += y * y;
    }
    if tt <= 1e-18 || rr <= 1e-18 {
        0.0
    } else {
        tr / (tt * rr).sqrt()
    }
}

/// Where `reference` is in `track`: its sample offset, the envelope
/// correlation there and the waveform correlation there.
#[derive(Debug, Clone, Copy)]
struct Located {
    lag: i64,
    envelope_corr: f64,
    wave_corr: f64,
}

/// Locates `reference` in `track`: the best envelope correlation over every
/// whole-window lag where it fits, then the best waveform correlation within
/// one window either side, then the envelope correlation again at that exact
/// sample lag.
fn locate(track: &[f64], reference: &[f64]) -> Located {
    let re = envelope(reference);
    let te = envelope(track);
    let mut best = (f64::MIN, 0i64);
    let last = te.len().saturating_sub(re.len());
    for w in 0..=last {
        let c = pearson(&te[w..], &re);
        if c > best.0 {
            best = (c, w as i64);
        }
    }
    let coarse = best.1 * WIN as i64;
    let mut fine = (f64::MIN, coarse);
    for lag in (coarse - WIN as i64).max(0)..=coarse + WIN as i64 {
        let c = ncc_at(track, reference, lag);
        if c > fine.0 {
            fine = (c, lag);
        }
    }
    let lag = fine.1;
    let at = &track[(lag as usize).min(track.len())..];
    Located {
        lag,
        envelope_corr: pearson(&envelope(at), &re),
        wave_corr: fine.0,
    }
}

fn db(ratio: f64) -> f64 {
    20.0 * ratio.max(1e-12).log10()
}

/// A scene rendered by plain Manim from the voice-over environment.
struct ManimRender {
    frames: u64,
    /// The sound Manim made for the scene (its WAV), decoded, without its
    /// digital-silence tail.
    sound: Vec<f64>,
    /// The audio track of Manim's own mp4, decoded.
    mp4_audio: Vec<f64>,
}

fn manim_render(p: &TestProject, python: &Path, spec: &SceneSpec) -> ManimRender {
    let media = p.path().join("manim-media");
    let out = Command::new(python)
        .args([
            "-m",
            "manim",
            "render",
            "-ql",
            spec.file,
            spec.class,
            "--media_dir",
            media.to_str().unwrap(),
        ])
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("run manim");
    assert!(
        out.status.success(),
        "plain Manim failed to render {}:\n{}",
        spec.class,
        text(&out)
    );
    let stem = Path::new(spec.file).file_stem().unwrap().to_str().unwrap();
    let dir = media.join("videos").join(stem).join("480p15");
    let video = dir.join(format!("{}.mp4", spec.class));
    let wav = dir.join(format!("{}.wav", spec.class));
    assert!(
        wav.exists(),
        "Manim wrote no sound file {} for {} (does it still keep the WAV beside the video?)",
        wav.display(),
        spec.class
    );
    // Up to its last audible sample: Manim pads a scene's sound with digital
    // silence, which holds no frame (see the README's Narration section).
    let mut sound = decode_mono(&wav);
    sound.truncate(sound.iter().rposition(|x| *x != 0.0).map_or(0, |i| i + 1));
    ManimRender {
        frames: count_frames(&video),
        sound,
        mp4_audio: decode_mono(&video),
    }
}

/// Makes `audio/01_intro.wav`: a 0.1 s 1 kHz beep, then silence, 1.3 s at
/// 48 kHz mono.
fn make_narration(p: &TestProject) -> u64 {
    let out = p.path().join("audio/01_intro.wav");
    sox_tone(&out, MONO_48K, 0.1, 1000, 0.5, NARRATION_S - 0.1);
    let n = decode_mono(&out).len() as u64;
    let want = (NARRATION_S * RATE as f64).round() as u64;
    assert!(
        n.abs_diff(want) <= 2,
        "test bug: narration has {n} samples, not {want}"
    );
    want
}

#[test]
fn voiceover_scenes_keep_their_voice() {
    let started = Instant::now();
    let Some(python) = voiceover_python() else {
        return;
    };
    let probe = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m, manim_voiceover; print(m.version('manim'), m.version('manim-voiceover'))",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}: run scripts/setup.sh",
                python.display()
            )
        });
    assert!(
        probe.status.success(),
        "{} cannot import manim_voiceover: run scripts/setup.sh\n{}",
        python.display(),
        text(&probe)
    );
    let versions = String::from_utf8_lossy(&probe.stdout).trim().to_string();

    let p = TestProject::new("");
    p.write(
        "parender.toml",
        &format!(
            "python = {:?}\nname = \"voiceover\"\ngap = {GAP}\n",
            python.display().to_string()
        ),
    );
    p.write("scenes/espeak_service.py", ESPEAK_SERVICE);
    p.write("scenes/01_intro.py", INTRO);
    p.write("scenes/02_voice.py", VOICE);
    p.write("scenes/03_outro.py", OUTRO);
    let narration = make_narration(&p);

    // --- Build.
    let out = p.parender(&["build", "--message-format", "json"]);
    let build_secs = started.elapsed().as_secs_f64();
    let lines = TestProject::successful_build(&out);
    let last = lines.last().expect("JSON lines");
    let finished: Vec<String> = lines
        .iter()
        .filter(|l| l["reason"] == "scene-finished")
        .map(|l| l["scene"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        finished.len(),
        SCENES.len(),
        "expected every scene and no helper module to be built: {finished:?}\n{}",
        text(&out)
    );
    let output = PathBuf::from(last["output"].as_str().expect("output path"));
    assert_eq!(
        output.canonicalize().unwrap(),
        p.path()
            .join("out/dev/voiceover.mp4")
            .canonicalize()
            .unwrap()
    );

    // --- The same scenes, rendered by plain Manim.
    let manim_started = Instant::now();
    let renders: Vec<Option<ManimRender>> = SCENES
        .iter()
        .map(|s| s.voice.then(|| manim_render(&p, &python, s)))
        .collect();
    let manim_secs = manim_started.elapsed().as_secs_f64();

    // --- The expected timeline.
    let gap_frames = (GAP * FPS as f64).round() as u64;
    let mut start = Vec::new();
    let mut seg = Vec::new();
    let mut t = 0u64;
    for (k, render) in renders.iter().enumerate() {
        // Video and the scene's own sound (Manim's WAV, audible part), or
        // the narration.
        let content = match render {
            Some(r) => r.frames.max((r.sound.len() as u64).div_ceil(SPF)),
            None => INTRO_FRAMES.max(narration.div_ceil(SPF)),
        };
        let f = content + if k + 1 < SCENES.len() { gap_frames } else { 0 };
        start.push(t);
        seg.push(f);
        t += f;
    }
    let total_frames = t;

    // --- Measurements on the final video.
    let colours = corner_colours(&output);
    let palette: Vec<[u8; 3]> = SCENES.iter().map(|s| s.rgb).collect();
    let seq = classify_frames(&colours, &palette, COLOUR_TOL);
    let expected_seq = segments_seq(&seg);
    let first_frame = first_frames(&seq, SCENES.len());
    let frames_of: Vec<usize> = (0..SCENES.len())
        .map(|k| seq.iter().filter(|s| **s == Some(k)).count())
        .collect();
    let pcm = decode_mono(&output);

    struct VoiceCheck {
        k: usize,
        expected: i64,
        span_end: usize,
        span_rms: f64,
        ref_rms: f64,
        found: Located,
        mp4_found: Located,
    }
    let mut checks = Vec::new();
    for (k, r) in renders.iter().enumerate() {
        let Some(r) = r else { continue };
        let expected = (start[k] * SPF) as i64;
        let from = (expected as usize).min(pcm.len());
        let to = (from + r.sound.len()).min(pcm.len());
        checks.push(VoiceCheck {
            k,
            expected,
            span_end: to,
            span_rms: rms(&pcm[from..to]),
            ref_rms: rms(&r.sound),
            found: locate(&pcm, &r.sound),
            mp4_found: locate(&r.mp4_audio, &r.sound),
        });
    }

    // --- `parender scenes` knows which scenes have their own sound.
    let scenes_out = p.parender(&["scenes", "--message-format", "json"]);
    assert!(
        scenes_out.status.success(),
        "parender scenes failed:\n{}",
        text(&scenes_out)
    );
    let listed = TestProject::json_lines(&scenes_out);
    let scene_sound: Vec<serde_json::Value> = SCENES
        .iter()
        .map(|s| {
            listed
                .iter()
                .find(|l| l["class"] == s.class && l.get("scene").is_some())
                .map(|l| l["scene_sound"].clone())
                .unwrap_or(serde_json::Value::String("(scene not listed)".into()))
        })
        .collect();

    // --- Report.
    eprintln!(
        "\nvoice-over: {versions} ({}); {total_frames} frames expected, {} decoded; gap {gap_frames} frames",
        python.display(),
        colours.len()
    );
    eprintln!(
        "{:<6} {:>7} {:>9} {:>8} {:>8}  {:<12} {:<11} scene_sound",
        "scene", "manim", "sound", "segment", "start", "first frame", "frames seen"
    );
    for (k, s) in SCENES.iter().enumerate() {
        let (video, sound) = match &renders[k] {
            Some(r) => (
                r.frames,
                format!("{:.3}s", r.sound.len() as f64 / RATE as f64),
            ),
            None => (INTRO_FRAMES, format!("narr {NARRATION_S:.3}s")),
        };
        eprintln!(
            "{:<6} {:>6}f {:>9} {:>7}f {:>7}f  {:<12} {:<11} {}",
            s.class,
            video,
            sound,
            seg[k],
            start[k],
            first_frame[k]
                .map(|f| format!("{f} ({:+})", f as i64 - start[k] as i64))
                .unwrap_or_else(|| "never".into()),
            frames_of[k],
            scene_sound[k]
        );
    }
    for c in &checks {
        let name = SCENES[c.k].class;
        eprintln!(
            "{name}: voice expected at sample {} ({:.4}s); found at {} (offset {:+} samples = {:+.3} ms), \
             envelope corr {:.4}, waveform corr {:.4}; level {:.4} RMS vs Manim's {:.4} ({:+.2} dB)",
            c.expected,
            c.expected as f64 / RATE as f64,
            c.found.lag,
            c.found.lag - c.expected,
            ms(c.found.lag - c.expected),
            c.found.envelope_corr,
            c.found.wave_corr,
            c.span_rms,
            c.ref_rms,
            db(c.span_rms / c.ref_rms)
        );
        eprintln!(
            "{name}: (for information) Manim's own mp4 audio against its WAV: {:+} samples = {:+.3} ms, waveform corr {:.4}",
            c.mp4_found.lag,
            ms(c.mp4_found.lag),
            c.mp4_found.wave_corr
        );
    }
    eprintln!(
        "decoded audio: {} samples ({:.4}s), timeline {} samples",
        pcm.len(),
        pcm.len() as f64 / RATE as f64,
        total_frames * SPF
    );
    eprintln!(
        "build {build_secs:.1}s, plain Manim renders {manim_secs:.1}s, whole test {:.1}s\n",
        started.elapsed().as_secs_f64()
    );

    // --- Assertions: the voice first (the point of the test), then timing.
    let scene_name = |k: usize| SCENES[k].class.to_string();
    for c in &checks {
        let name = SCENES[c.k].class;
        assert!(
            c.ref_rms > 0.005,
            "test bug: Manim's own sound for {name} is nearly silent (RMS {})",
            c.ref_rms
        );
        assert!(
            c.span_rms > c.ref_rms * 0.25,
            "{name}: the voice-over is missing from parender's output: the final audio over the scene's \
             span (samples {}..{}) has RMS {:.5}, Manim's own sound for the scene {:.5} ({:+.1} dB); \
             the best match anywhere in the track is at sample {} with envelope correlation {:.3}",
            c.expected,
            c.span_end,
            c.span_rms,
            c.ref_rms,
            db(c.span_rms / c.ref_rms),
            c.found.lag,
            c.found.envelope_corr
        );
        let off = c.found.lag - c.expected;
        assert!(
            off.abs() <= MAX_OFFSET,
            "{name}: the voice starts at sample {}, the scene's first frame is at sample {} \
             (frame {} at {FPS} fps): off by {off} samples = {:+.3} ms (allowed {:.1} ms)",
            c.found.lag,
            c.expected,
            start[c.k],
            ms(off),
            ms(MAX_OFFSET)
        );
        assert!(
            c.found.envelope_corr > MIN_ENVELOPE_CORR,
            "{name}: the final audio's envelope correlates {:.4} with Manim's own (at sample {}), need > {MIN_ENVELOPE_CORR}",
            c.found.envelope_corr,
            c.found.lag
        );
        assert!(
            db(c.span_rms / c.ref_rms).abs() <= MAX_LEVEL_DB,
            "{name}: the voice's level in the final video differs from Manim's own by {:+.2} dB (allowed ±{MAX_LEVEL_DB} dB; no normalisation)",
            db(c.span_rms / c.ref_rms)
        );
    }
    for (k, s) in SCENES.iter().enumerate() {
        assert_eq!(
            first_frame[k],
            Some(start[k] as usize),
            "{}: first frame measured {:?}, expected {}; sequence: {}",
            s.class,
            first_frame[k],
            start[k],
            runs(&seq, scene_name)
        );
    }
    assert_eq!(
        colours.len() as u64,
        total_frames,
        "decoded frames of the final video; sequence: {}, expected: {}",
        runs(&seq, scene_name),
        runs(&expected_seq, scene_name)
    );
    assert_frames_match(&seq, &expected_seq, &colours, scene_name);
    assert_audio_length(pcm.len(), total_frames, SPF);
    for (k, s) in SCENES.iter().enumerate() {
        assert_eq!(
            scene_sound[k],
            serde_json::Value::Bool(s.voice),
            "`parender scenes --message-format json`: scene_sound of {} should be {} after a build:\n{}",
            s.class,
            s.voice,
            text(&scenes_out)
        );
    }
}
