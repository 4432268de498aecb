//! Splitting a long scene into animation ranges (issue 9, item 3), with real
//! Manim and ffmpeg: split renders equal whole ones frame for frame (decoded
//! frame hashes and packet timestamps), the dry run finds where updaters
//! make a split differ (and a split there does differ), and scenes that wait
//! on a condition, add sound, read the clock or read files stay whole.
mod common;

use std::path::Path;
use std::time::Duration;

use common::TestProject;
use common::av::rgb_frame_md5s;
use parender::config::Quality;
use parender::ffmpeg::Ffmpeg;
use parender::media::subtitles::parse_srt;
use parender::render::cli::ManimRenderer;
use parender::render::split::{self, SceneAnalysis};
use parender::render::{RenderFailure, RenderJob, Rendered, Renderer};
use parender::scene::Scene;
use parender::settings::RenderSettings;
use tokio_util::sync::CancellationToken;

/// Create, Transform, FadeIn/FadeOut, Write of `Text`, waits: about 10 s.
const ORDINARY: &str = r#"from manim import *


class Ordinary(Scene):
    def construct(self):
        sq = Square(color=BLUE)
        self.play(Create(sq), run_time=1.5)
        title = Text("Split renders").to_edge(UP)
        self.play(Transform(sq, Circle(color=RED)), FadeIn(title), run_time=2)
        self.wait(1)
        self.play(sq.animate.shift(2 * LEFT).scale(0.5), run_time=1.2)
        dots = VGroup(*[Dot(RIGHT * i) for i in range(4)])
        self.play(LaggedStart(*[GrowFromCenter(d) for d in dots]), run_time=1.5)
        self.play(FadeOut(title), Write(Text("Bye").shift(DOWN)), run_time=1.3)
        self.play(Rotate(dots, PI / 2), run_time=1)
        self.wait()
"#;

/// A dt updater starts before animation 2 and runs to the end.
const UPDATER: &str = r#"from manim import *


class Drift(Scene):
    def construct(self):
        sq = Square(color=BLUE)
        self.play(Create(sq), run_time=1.5)
        self.play(sq.animate.shift(LEFT), run_time=1)
        dot = Dot(color=YELLOW).shift(3 * LEFT)
        dot.add_updater(lambda m, dt: m.shift(dt * RIGHT))
        self.add(dot)
        self.play(Rotate(sq, PI / 3), run_time=1)
        self.wait(1)
        self.play(FadeOut(sq), run_time=1)
"#;

/// Each is long enough to split, but for one call.
const UNSAFE: &str = r#"import time
from manim import *


def long_part(scene):
    scene.play(Create(Square()), run_time=2)
    scene.play(FadeIn(Circle()), run_time=2)
    scene.wait(2)


class WaitsUntil(Scene):
    def construct(self):
        long_part(self)
        self.wait_until(lambda: False, max_time=1)


class HasSound(Scene):
    def construct(self):
        self.add_sound("beep.wav")
        long_part(self)


class ReadsClock(Scene):
    def construct(self):
        started = time.time()
        long_part(self)


class ReadsFile(Scene):
    def construct(self):
        label = open("label.txt").read().strip()
        long_part(self)


class Safe(Scene):
    def construct(self):
        long_part(self)
"#;

/// The scene's error of a failed render: message and line.
fn scene_error<T>(r: Result<T, RenderFailure>) -> (String, Option<u32>) {
    match r {
        Err(RenderFailure::Failed { error, .. }) => (error.message, error.line),
        Ok(_) => panic!("the render succeeded"),
        Err(other) => panic!("{other:?}"),
    }
}

/// Fails in its second half.
const FAILING: &str = r#"from manim import *


class Breaks(Scene):
    def construct(self):
        self.play(Create(Square()), run_time=2)
        self.play(FadeIn(Circle()), run_time=2)
        raise ValueError("broken on purpose")
"#;

fn settings(quality: Quality) -> RenderSettings {
    RenderSettings::preset(quality)
}

fn job(p: &TestProject, file: &str, class: &str, media: &str, quality: Quality) -> RenderJob {
    RenderJob {
        scene: Scene::new(file, class, Duration::from_secs(600)),
        settings: settings(quality),
        project_root: p.path().to_path_buf(),
        media_dir: p.path().join("media").join(media),
        key: format!("{class}-{media}"),
        extra_env: Vec::new(),
    }
}

fn renderer() -> ManimRenderer {
    ManimRenderer {
        python: common::python(),
    }
}

fn ffmpeg() -> Ffmpeg {
    Ffmpeg::new("ffmpeg", "ffprobe")
}

fn unwrap_render<T>(r: Result<T, RenderFailure>) -> T {
    r.unwrap_or_else(|f| match f {
        RenderFailure::Failed {
            error, log_tail, ..
        } => panic!("render failed: {}\n{log_tail}", error.message),
        other => panic!("render failed: {other:?}"),
    })
}

async fn whole(j: &RenderJob) -> Rendered {
    unwrap_render(
        renderer()
            .render(j, &|_| {}, &CancellationToken::new())
            .await,
    )
}

async fn analyze(j: &RenderJob) -> SceneAnalysis {
    unwrap_render(split::analyze(&renderer(), j, &CancellationToken::new()).await)
}

async fn split_render(j: &RenderJob, splits: &[u32]) -> Rendered {
    let r = split::render_split(
        &renderer(),
        j,
        splits,
        &ffmpeg(),
        &|_| {},
        &CancellationToken::new(),
    )
    .await;
    unwrap_render(r)
}

/// Frames at which two videos' decoded frames differ (and the length
/// difference, as missing frames).
fn differing_frames(a: &Path, b: &Path) -> usize {
    let (x, y) = (rgb_frame_md5s(a), rgb_frame_md5s(b));
    let differ = x.iter().zip(&y).filter(|(p, q)| p != q).count();
    differ + x.len().abs_diff(y.len())
}

/// The split render has the whole render's frames, and its packets sit at
/// the same timestamps (no piece pushed off the frame grid by the join).
fn assert_same_video(whole: &Path, split: &Path) {
    let (w, s) = (rgb_frame_md5s(whole), rgb_frame_md5s(split));
    assert!(!w.is_empty());
    assert_eq!(w.len(), s.len(), "frame count of split vs whole render");
    if let Some(i) = (0..w.len()).find(|&i| w[i] != s[i]) {
        panic!("frame {i} of the split render differs from the whole render");
    }
    let (pw, ps) = (
        common::av::video_packets(whole),
        common::av::video_packets(split),
    );
    assert_eq!(pw.time_base, ps.time_base);
    assert_eq!(
        pw.pts.len(),
        ps.pts.len(),
        "packets of split vs whole render"
    );
    if let Some(i) = (0..pw.pts.len()).find(|&i| pw.pts[i] != ps.pts[i]) {
        panic!(
            "packet {i} of the split render has pts {}, the whole render's {}",
            ps.pts[i], pw.pts[i]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordinary_scene_split_in_two_and_three_equals_whole() {
    let p = TestProject::new("");
    p.write("scenes/ordinary.py", ORDINARY);
    let file = "scenes/ordinary.py";
    let reference = whole(&job(&p, file, "Ordinary", "whole", Quality::Low)).await;
    for pieces in [2, 3] {
        let j = job(
            &p,
            file,
            "Ordinary",
            &format!("split{pieces}"),
            Quality::Low,
        );
        let a = analyze(&j).await;
        assert_eq!(a.unsafe_reason, None);
        assert_eq!(a.animations.len(), 8, "wait() counts as an animation");
        assert!(a.animations.iter().all(|x| !x.updaters), "{a:?}");
        let splits = split::split_point(&a, pieces);
        assert_eq!(splits.len(), pieces - 1, "{a:?}");
        let out = split_render(&j, &splits).await;
        // Where a whole render of this job would have put it.
        let expected = j.media_dir.join("videos/ordinary/480p15/Ordinary.mp4");
        assert_eq!(out.video, expected);
        assert_same_video(&reference.video, &out.video);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_after_an_updater_ran_would_differ_so_none_is_made() {
    let p = TestProject::new("");
    p.write("scenes/drift.py", UPDATER);
    let file = "scenes/drift.py";
    let reference = whole(&job(&p, file, "Drift", "whole", Quality::Low)).await;
    let a = analyze(&job(&p, file, "Drift", "analysis", Quality::Low)).await;
    let updaters: Vec<bool> = a.animations.iter().map(|x| x.updaters).collect();
    assert_eq!(updaters, [false, false, true, true, true]);
    assert_eq!(a.last_safe_start(), 2);
    // The only split worth making is where the updater starts.
    assert_eq!(split::split_point(&a, 2), vec![2]);
    assert_eq!(split::split_point(&a, 3), vec![2]);
    let safe = split_render(&job(&p, file, "Drift", "at2", Quality::Low), &[2]).await;
    assert_same_video(&reference.video, &safe.video);
    // Forced one animation later, the updater is fast-forwarded in one step.
    let forced = split_render(&job(&p, file, "Drift", "at3", Quality::Low), &[3]).await;
    let differ = differing_frames(&reference.video, &forced.video);
    assert!(
        differ > 0,
        "a split after the updater ran matched the whole render"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenes_that_wait_on_conditions_add_sound_or_read_clock_or_files_stay_whole() {
    let p = TestProject::new("");
    p.write("scenes/unsafe.py", UNSAFE);
    p.write("label.txt", "hello\n");
    common::av::sox_tone(
        &p.path().join("beep.wav"),
        common::av::MONO_48K,
        0.1,
        1000,
        0.5,
        0.0,
    );
    let cases = [
        ("WaitsUntil", "waits on a condition"),
        ("HasSound", "adds sound"),
        ("ReadsClock", "reads the clock (time.time)"),
        ("ReadsFile", "reads the file label.txt"),
    ];
    for (class, reason) in cases {
        let a = analyze(&job(&p, "scenes/unsafe.py", class, class, Quality::Low)).await;
        let why = a.unsafe_reason.clone().unwrap_or_default();
        assert!(why.contains(reason), "{class}: {a:?}");
        assert!(a.run_time() >= 6.0, "{class}: {a:?}");
        assert!(split::split_point(&a, 2).is_empty(), "{class}");
    }
    // The same animations without those calls split.
    let a = analyze(&job(&p, "scenes/unsafe.py", "Safe", "Safe", Quality::Low)).await;
    assert_eq!(a.unsafe_reason, None);
    assert_eq!(split::split_point(&a, 2), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_piece_fails_the_split_render_with_the_scenes_error() {
    let p = TestProject::new("");
    p.write("scenes/breaks.py", FAILING);
    let j = job(&p, "scenes/breaks.py", "Breaks", "breaks", Quality::Low);
    let r = split::analyze(&renderer(), &j, &CancellationToken::new()).await;
    assert_eq!(
        scene_error(r),
        ("ValueError: broken on purpose".into(), Some(8))
    );
    let r = split::render_split(
        &renderer(),
        &j,
        &[1],
        &ffmpeg(),
        &|_| {},
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(
        scene_error(r),
        ("ValueError: broken on purpose".into(), Some(8))
    );
}

const LONG_SCENE: &str = "from manim import *\n\n\nclass Long(Scene):\n    def construct(self):\n        s = Square()\n        self.play(Create(s), run_time=2)\n        self.play(s.animate.shift(LEFT * 2), run_time=2)\n        t = Text(\"half way\").next_to(s, DOWN)\n        self.play(Write(t), run_time=2)\n        self.play(Rotate(s, PI), run_time=2)\n        self.play(FadeOut(s), FadeOut(t), run_time=2)\n        self.wait(1)\n";

/// `parender build -q m` with two job slots (and `extra` in parender.toml)
/// of a project whose one scene file is `source` at `file`: the video's
/// rgb24 frame hashes, what the build said, the project.
fn build_two_slots(file: &str, source: &str, extra: &str) -> (Vec<String>, String, TestProject) {
    let p = TestProject::new(&format!("jobs = 2\n{extra}"));
    p.write(file, source);
    let video = p.path().join("talk.mp4");
    let out = p.parender(&["build", "-q", "m", "-o", video.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (rgb_frame_md5s(&video), err, p)
}

/// Through the binary, warm backend: a build whose one render is long
/// splits it over the two job slots, and the video is the one a build with
/// `[render] split = false` makes, frame for frame.
#[test]
fn a_build_splits_its_one_long_render_and_the_video_is_the_same() {
    let build = |extra: &str| build_two_slots("scenes/long.py", LONG_SCENE, extra);
    let (split, said, _a) = build("");
    assert!(
        said.contains("Splitting scenes/long.py:Long into 2 pieces"),
        "{said}"
    );
    let (whole, said, _b) = build("[render]\nsplit = false\n");
    assert!(!said.contains("Splitting"), "{said}");
    assert_eq!(split.len(), 11 * 30);
    assert_eq!(split, whole);
}

/// The render driver asked (through its control file) to stop before
/// animation K: the movie holds animations 0..K-1, the same frames as
/// `-n 0,K-1`, and the render says where it stopped; asked for a K the
/// scene never reaches, it renders everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_asked_to_stop_before_k_holds_what_came_before() {
    let p = TestProject::new("");
    p.write("scenes/ordinary.py", ORDINARY);
    let file = "scenes/ordinary.py";
    let control = p.path().join("control");
    let with_control = |media: &str| {
        let mut j = job(&p, file, "Ordinary", media, Quality::Low);
        let var = parender::render::steal::CONTROL_VAR.to_string();
        j.extra_env.push((var, control.display().to_string()));
        j
    };
    std::fs::write(&control, "3").unwrap();
    let stopped = whole(&with_control("stopped")).await;
    assert_eq!(stopped.stopped_at, Some(3));
    let mut upto = job(&p, file, "Ordinary", "upto", Quality::Low);
    upto.settings.manim_args.extend(["-n".into(), "0,2".into()]);
    assert_same_video(&whole(&upto).await.video, &stopped.video);
    std::fs::write(&control, "100").unwrap();
    let all = whole(&with_control("all")).await;
    assert_eq!(all.stopped_at, None);
    let reference = whole(&job(&p, file, "Ordinary", "whole", Quality::Low)).await;
    assert_same_video(&reference.video, &all.video);
}

/// Three scenes of the same length (each expected to take long
/// enough to be worth taking over) on two job slots: the third runs alone
/// at the end, so the slot that frees takes the rest of it; the video is
/// the one a build with `[render] split = false` makes, frame for frame,
/// and its subtitles are the same to the millisecond.
const THREE: &str = "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        s = Square(color=BLUE)\n        self.play(Create(s), run_time=0.6)\n        for k in range(24):\n            self.add_subcaption(f\"step {k}\", duration=0.4, offset=0.1)\n            self.play(s.animate.shift(RIGHT * 0.2).rotate(0.3), run_time=0.6)\n\n\nclass B(Scene):\n    def construct(self):\n        s = Square(color=RED)\n        self.play(Create(s), run_time=0.6)\n        for k in range(24):\n            self.add_subcaption(f\"step {k}\", duration=0.4, offset=0.1)\n            self.play(s.animate.shift(RIGHT * 0.2).rotate(0.3), run_time=0.6)\n\n\nclass C(Scene):\n    def construct(self):\n        s = Square(color=GREEN)\n        self.play(Create(s), run_time=0.6)\n        for k in range(24):\n            self.add_subcaption(f\"step {k}\", duration=0.4, offset=0.1)\n            self.play(s.animate.shift(RIGHT * 0.2).rotate(0.3), run_time=0.6)\n";

#[test]
fn a_free_job_slot_takes_the_rest_of_the_last_render_and_the_video_is_the_same() {
    let build = |extra: &str| build_two_slots("scenes/three.py", THREE, extra);
    let (stolen, said, a) = build("");
    assert!(
        said.contains("Splitting scenes/three.py:") && said.contains(" from animation "),
        "{said}"
    );
    let (whole, said, b) = build("[render]\nsplit = false\n");
    assert!(!said.contains("Splitting"), "{said}");
    // 0.6 s animations at 30 fps: 18 frames each.
    assert_eq!(stolen.len(), 3 * 25 * 18);
    assert_eq!(stolen, whole);
    // The subcaptions of the piece taken over are where the whole
    // render's are (to the millisecond Manim rounds to).
    let cues =
        |p: &TestProject| parse_srt(&std::fs::read_to_string(p.path().join("talk.srt")).unwrap());
    let (x, y) = (cues(&a), cues(&b));
    assert_eq!(x.len(), 72, "{x:?}");
    assert_eq!(x.len(), y.len());
    for (c, d) in x.iter().zip(&y) {
        assert_eq!(c.text, d.text);
        assert!(
            c.start.abs_diff(d.start) <= 1 && c.end.abs_diff(d.end) <= 1,
            "{c:?} vs {d:?}"
        );
    }
}

/// Subcaptions are kept at their scene time in every piece, so a scene
/// with them splits: the joined render has the whole render's frames and
/// the whole render's `.srt`.
const CAPTIONED: &str = "from manim import *\n\n\nclass Captioned(Scene):\n    def construct(self):\n        s = Square()\n        self.add_subcaption(\"A square\", duration=1.5)\n        self.play(Create(s), run_time=1.5)\n        self.play(s.animate.shift(LEFT), run_time=1.5, subcaption=\"It moves\")\n        self.play(Rotate(s, PI / 3), run_time=1.5)\n        self.add_subcaption(\"Late one\", duration=1, offset=0.5)\n        self.play(FadeOut(s), run_time=1.5)\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scene_with_subcaptions_splits_and_keeps_them_all() {
    let p = TestProject::new("");
    p.write("scenes/cap.py", CAPTIONED);
    let file = "scenes/cap.py";
    let reference = whole(&job(&p, file, "Captioned", "whole", Quality::Low)).await;
    let j = job(&p, file, "Captioned", "split", Quality::Low);
    let a = analyze(&j).await;
    assert_eq!(a.unsafe_reason, None);
    let splits = split::split_point(&a, 2);
    assert_eq!(splits, vec![2]);
    let out = split_render(&j, &splits).await;
    assert_same_video(&reference.video, &out.video);
    let srt =
        |r: &Rendered| std::fs::read_to_string(r.subtitles.as_ref().expect("subtitles")).unwrap();
    let all = srt(&reference);
    assert_eq!(all.matches("-->").count(), 3, "{all}");
    assert_eq!(srt(&out), all);
}
