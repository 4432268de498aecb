//! Warm render workers (issue 9) with real Manim: a render forked from a
//! worker that imported Manim once equals the CLI renderer's frame for
//! frame; a child that raises, exits, segfaults, hangs or is cancelled fails
//! alone and the pool goes on; edits of helpers, scenes and `manim.cfg` are
//! seen; discovery runs unchanged through a worker. Only processes these
//! tests start are ever signalled, by pid.
mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestProject, python, run_tool};
use parender::config::Quality;
use parender::procs::Outcome;
use parender::python::{PythonRun, WarmError, WarmPool, run_cli};
use parender::render::cli::ManimRenderer;
use parender::render::driver::render_with;
use parender::render::{RenderFailure, RenderJob, Rendered, Renderer};
use parender::scene::Scene;
use parender::settings::RenderSettings;
use tokio_util::sync::CancellationToken;

/// The pool's scratch folder, inside the test's project.
fn scratch(root: &Path) -> PathBuf {
    root.join(".parender/tmp")
}

/// The warm renderer over one pool (the project's runner wraps one).
type WarmRenderer = parender::render::warm::WarmRenderer<WarmPool>;

const LONG: Duration = Duration::from_secs(120);

fn job(p: &TestProject, file: &str, class: &str, media: &str, timeout: Duration) -> RenderJob {
    RenderJob {
        scene: Scene::new(file, class, timeout),
        settings: RenderSettings::preset(Quality::Low),
        project_root: p.path().to_path_buf(),
        media_dir: p.path().join("media").join(media),
        key: "key".into(),
        extra_env: Vec::new(),
    }
}

async fn render(r: &dyn Renderer, job: &RenderJob) -> Result<Rendered, RenderFailure> {
    r.render(job, &|_| {}, &CancellationToken::new()).await
}

fn cli() -> ManimRenderer {
    ManimRenderer { python: python() }
}

async fn pool(p: &TestProject, size: usize) -> Arc<WarmPool> {
    let pool = WarmPool::start(&python(), p.path(), size, &scratch(p.path())).await;
    Arc::new(pool.unwrap_or_else(|e| panic!("{e}")))
}

/// Decoded frame hashes (ffmpeg's framemd5): equal lists, equal pixels.
fn frames(video: &Path) -> Vec<String> {
    let hashes = common::av::frame_md5s(video);
    assert!(hashes.len() >= 5, "too few frames in {video:?}");
    hashes
}

fn ok(r: Result<Rendered, RenderFailure>) -> Rendered {
    r.unwrap_or_else(|e| panic!("render failed: {e:?}"))
}

async fn warm_frames(r: &WarmRenderer, job: &RenderJob) -> Vec<String> {
    frames(&ok(render(r, job).await).video)
}

async fn cli_frames(job: &RenderJob) -> Vec<String> {
    frames(&ok(render(&cli(), job).await).video)
}

const MIXED: &str = r#"import random
import numpy as np
from manim import *


class Mixed(Scene):
    def construct(self):
        dots = VGroup(*[Dot([random.uniform(-5, 5), np.random.uniform(-3, 3), 0]) for _ in range(12)])
        self.play(FadeIn(dots), Write(Text("warm workers")), run_time=0.6)
        self.play(dots.animate.shift(RIGHT * random.random()).set_color(BLUE), run_time=0.6)
"#;

#[tokio::test]
async fn warm_render_equals_cli_render_frame_for_frame() {
    let p = TestProject::new("");
    p.write("scenes/mixed.py", MIXED);
    let warm = WarmRenderer {
        runner: pool(&p, 1).await,
    };
    let by_cli = cli_frames(&job(&p, "scenes/mixed.py", "Mixed", "cli", LONG)).await;
    let by_warm = warm_frames(&warm, &job(&p, "scenes/mixed.py", "Mixed", "warm", LONG)).await;
    assert_eq!(by_warm, by_cli, "warm and CLI renders differ");
    // The shared driver path with a fresh process (what ManimRenderer
    // becomes once it uses `render_with`) gives the same frames too.
    let j = job(&p, "scenes/mixed.py", "Mixed", "shared", LONG);
    let cancel = CancellationToken::new();
    let python = python();
    let shared = render_with(&j, &|_| {}, &python, |run| run_cli(&python, run, &cancel)).await;
    assert_eq!(frames(&ok(shared).video), by_cli);
}

/// The parameter sets (SPS and PPS) in `video`'s extradata, as `name =
/// value` lines from ffmpeg's `trace_headers`.
fn parameter_sets(video: &Path) -> Vec<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "trace", "-i"])
        .arg(video)
        .args([
            "-c",
            "copy",
            "-bsf:v",
            "trace_headers",
            "-frames:v",
            "1",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg runs");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("[trace_headers"))
        .map(|l| l.split_once("] ").map_or("", |x| x.1))
        .skip_while(|l| *l != "Extradata")
        .take_while(|l| !l.starts_with("Packet:"))
        .filter_map(|l| {
            let (lhs, value) = l.rsplit_once(" = ")?;
            Some(format!("{} = {value}", lhs.split_whitespace().nth(1)?))
        })
        .collect()
}

/// A held tail is joined to Manim's video by stream copy, so it is decoded
/// with the video's parameter sets: its own must be the same (an x264
/// option that turns psy-rd off, for one, moves the PPS's chroma QP offset
/// and the held frames' colours with it). At preview and release quality,
/// with the encoder pinned as builds pin it.
#[tokio::test]
async fn a_held_tail_has_the_parameter_sets_of_the_scene() {
    let p = TestProject::new("");
    p.write("scenes/good.py", GOOD);
    let ff = parender::ffmpeg::Ffmpeg::new("ffmpeg", "ffprobe");
    for quality in [Quality::Low, Quality::High] {
        let mut j = job(&p, "scenes/good.py", "Good", &format!("{quality:?}"), LONG);
        j.settings = RenderSettings::preset(quality);
        j.settings.pin_encoder("0.22.0");
        let video = ok(render(&cli(), &j).await).video;
        let info = ff.probe_video(&video).await.unwrap();
        let hold = j.media_dir.join("hold.mp4");
        ff.encode_hold_of(&video, &info, 9, &hold).await.unwrap();
        let (scene, held) = (parameter_sets(&video), parameter_sets(&hold));
        assert!(
            scene
                .iter()
                .any(|l| l.starts_with("chroma_qp_index_offset")),
            "{scene:?}"
        );
        assert_eq!(held, scene, "{quality:?}");
    }
}

const SOUNDED: &str = r#"from manim import *


class Sounded(Scene):
    def construct(self):
        self.add_sound("beep.wav")
        self.play(FadeIn(Circle()), run_time=0.5)
"#;

/// The driver reads the finished movie back with PyAV so that no ffprobe
/// has to start per render: what it reports must be what ffprobe reads,
/// for a silent scene and one with sound, warm and through the CLI.
#[tokio::test]
async fn the_render_reports_the_format_ffprobe_reads() {
    let p = TestProject::new("");
    p.write("scenes/mixed.py", MIXED);
    p.write("scenes/sounded.py", SOUNDED);
    let beep = p.path().join("beep.wav");
    common::av::sox_tone(&beep, common::av::MONO_48K, 0.8, 440, 0.5, 0.0);
    let warm = WarmRenderer {
        runner: pool(&p, 1).await,
    };
    let ff = parender::ffmpeg::Ffmpeg::new("ffmpeg", "ffprobe");
    for (file, class, sound) in [
        ("scenes/mixed.py", "Mixed", false),
        ("scenes/sounded.py", "Sounded", true),
    ] {
        for (name, r) in [("warm", &warm as &dyn Renderer), ("cli", &cli())] {
            let j = job(&p, file, class, &format!("{class}-{name}"), LONG);
            let out = ok(render(r, &j).await);
            let probed = out
                .probed
                .unwrap_or_else(|| panic!("{class} ({name}): nothing probed"));
            let by_ffprobe = ff.probe_render(&out.video).await.unwrap();
            assert_eq!(probed, by_ffprobe, "{class} ({name})");
            assert_eq!(probed.1, sound, "{class} ({name}): sound");
        }
    }
}

const GOOD: &str = "from manim import *\n\n\nclass Good(Scene):\n    def construct(self):\n        self.play(FadeIn(Square()), run_time=0.4)\n";

/// A scene `Bad` whose `construct` runs `body` after one animation, and
/// whose module runs `top` when imported.
fn bad(top: &str, body: &str) -> String {
    format!(
        "import ctypes, os\nfrom manim import *\n{top}\n\nclass Bad(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.2)\n        {body}\n"
    )
}

fn failure_message(r: Result<Rendered, RenderFailure>) -> String {
    match r {
        Err(RenderFailure::Failed { error, .. }) => error.message,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[tokio::test]
async fn crashing_children_fail_alone_and_the_pool_goes_on() {
    let p = TestProject::new("");
    p.write("scenes/good.py", GOOD);
    let warm = WarmRenderer {
        runner: pool(&p, 1).await,
    };
    let worker = warm.runner.idle_worker_pids();
    let good = job(&p, "scenes/good.py", "Good", "good", LONG);
    let cases = [
        (
            "raise",
            bad("", "raise ValueError('boom')"),
            "ValueError: boom",
        ),
        ("exit", bad("os._exit(3)", "pass"), "exit status: 3"),
        ("segv", bad("", "ctypes.string_at(0)"), "SIGSEGV"),
    ];
    for (name, source, expected) in cases {
        let file = format!("scenes/bad_{name}.py");
        p.write(&file, &source);
        let j = job(&p, &file, "Bad", name, LONG);
        let message = failure_message(render(&warm, &j).await);
        assert!(message.contains(expected), "{name}: {message}");
        ok(render(&warm, &good).await);
        assert_eq!(
            warm.runner.idle_worker_pids(),
            worker,
            "{name}: worker replaced"
        );
    }
    // The same error, file and line as the CLI renderer reports.
    let j = job(&p, "scenes/bad_raise.py", "Bad", "raise", LONG);
    let (Err(RenderFailure::Failed { error: w, .. }), Err(RenderFailure::Failed { error: c, .. })) =
        (render(&warm, &j).await, render(&cli(), &j).await)
    else {
        panic!("both must fail");
    };
    // `bad` puts the body on line 8.
    assert_eq!(
        (w.file.as_deref(), w.line),
        (Some("scenes/bad_raise.py"), Some(8))
    );
    assert_eq!((w.file, w.line, w.message), (c.file, c.line, c.message));
}

#[tokio::test]
async fn a_hanging_child_times_out_with_its_descendants_and_the_pool_goes_on() {
    let p = TestProject::new("");
    p.write("scenes/good.py", GOOD);
    let pidfile = p.path().join("helper.pid");
    common::write_hanging_scene(&p, "scenes/hang.py", "Hang", &pidfile, true);
    let warm = WarmRenderer {
        runner: pool(&p, 1).await,
    };
    let worker = warm.runner.idle_worker_pids();
    let j = job(&p, "scenes/hang.py", "Hang", "hang", Duration::from_secs(4));
    let start = Instant::now();
    let r = render(&warm, &j).await;
    assert!(matches!(r, Err(RenderFailure::TimedOut(_))), "{r:?}");
    assert!(
        start.elapsed() < Duration::from_secs(9),
        "{:?}",
        start.elapsed()
    );
    assert!(
        !common::pidfile_alive(&pidfile),
        "the scene's helper survived"
    );
    ok(render(&warm, &job(&p, "scenes/good.py", "Good", "good", LONG)).await);
    assert_eq!(warm.runner.idle_worker_pids(), worker);
}

/// Whether a live process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = rest.split_whitespace().collect();
        f.len() > 2 && f[0] != "Z" && f[2] == pgid.to_string()
    })
}

/// A scene that writes its own pid, starts `sleep` in its group and in a
/// new session (their pids too), then hangs.
const LINGER: &str = r#"import os, subprocess, time
from manim import *


class Linger(Scene):
    def construct(self):
        a = subprocess.Popen(["sleep", "300"])
        b = subprocess.Popen(["sleep", "300"], start_new_session=True)
        with open("pids.tmp", "w") as f:
            f.write("%d %d %d" % (os.getpid(), a.pid, b.pid))
        os.rename("pids.tmp", "pids")
        time.sleep(300)
"#;

async fn pids_of_linger(p: &TestProject) -> Vec<i32> {
    let file = p.path().join("pids");
    for _ in 0..600 {
        if let Ok(s) = std::fs::read_to_string(&file) {
            return s.split(' ').map(|n| n.parse().unwrap()).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the scene never started");
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
    })
}

#[tokio::test]
async fn cancel_ends_the_child_and_everything_it_started_quickly() {
    let p = TestProject::new("");
    p.write("scenes/good.py", GOOD)
        .write("scenes/linger.py", LINGER);
    let warm = WarmRenderer {
        runner: pool(&p, 1).await,
    };
    let j = job(&p, "scenes/linger.py", "Linger", "linger", LONG);
    let cancel = CancellationToken::new();
    let run = warm.render(&j, &|_| {}, &cancel);
    let watch = async {
        let pids = pids_of_linger(&p).await;
        cancel.cancel();
        (pids, Instant::now())
    };
    let (r, (pids, cancelled_at)) = tokio::join!(run, watch);
    let took = cancelled_at.elapsed();
    assert!(matches!(r, Err(RenderFailure::Cancelled)), "{r:?}");
    assert!(took < Duration::from_secs(3), "cancel took {took:?}");
    assert!(!group_alive(pids[0]), "the child's process group survived");
    for pid in pids {
        assert!(!alive(pid), "{pid} survived the cancel");
    }
    ok(render(&warm, &job(&p, "scenes/good.py", "Good", "good", LONG)).await);
}

#[tokio::test]
async fn a_worker_that_dies_is_replaced_and_only_its_request_fails() {
    let p = TestProject::new("");
    p.write("scenes/good.py", GOOD)
        .write("scenes/linger.py", LINGER);
    let warm = WarmRenderer {
        runner: pool(&p, 1).await,
    };
    let good = job(&p, "scenes/good.py", "Good", "good", LONG);
    // Killed while idle: the next request gets a fresh worker.
    let first = warm.runner.idle_worker_pids()[0] as i32;
    unsafe { libc::kill(first, libc::SIGKILL) };
    tokio::time::sleep(Duration::from_millis(200)).await;
    ok(render(&warm, &good).await);
    let second = warm.runner.idle_worker_pids()[0] as i32;
    assert_ne!(second, first);
    // Killed during a render: that render fails, with its child and what
    // the child started, and the next one works.
    let j = job(&p, "scenes/linger.py", "Linger", "linger", LONG);
    let run = render(&warm, &j);
    let kill = async {
        let pids = pids_of_linger(&p).await;
        unsafe { libc::kill(second, libc::SIGKILL) };
        pids
    };
    let (r, pids) = tokio::join!(run, kill);
    let message = failure_message(r);
    assert!(message.contains("warm worker ended"), "{message}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    for pid in pids {
        assert!(!alive(pid), "{pid} survived its worker");
    }
    ok(render(&warm, &good).await);
}

const HELPER_SCENE: &str = "from manim import *\nfrom helper import COLOR\n\n\nclass Edited(Scene):\n    def construct(self):\n        self.play(FadeIn(Circle(color=COLOR, fill_opacity=1)), run_time=0.4)\n";

#[tokio::test]
async fn edited_helpers_and_scenes_are_seen_by_the_next_render() {
    let p = TestProject::new("");
    p.write("scenes/helper.py", "COLOR = '#ff0000'\n")
        .write("scenes/edited.py", HELPER_SCENE);
    let warm = WarmRenderer {
        runner: pool(&p, 1).await,
    };
    let j = |media: &str| job(&p, "scenes/edited.py", "Edited", media, LONG);
    let before = warm_frames(&warm, &j("warm")).await;
    p.write("scenes/helper.py", "COLOR = '#00ff00'\n");
    let helper_edited = warm_frames(&warm, &j("warm")).await;
    assert_ne!(helper_edited, before, "the helper edit was missed");
    assert_eq!(helper_edited, cli_frames(&j("cli")).await);
    p.write(
        "scenes/edited.py",
        &HELPER_SCENE.replace("Circle", "Square"),
    );
    let scene_edited = warm_frames(&warm, &j("warm")).await;
    assert_ne!(scene_edited, helper_edited, "the scene edit was missed");
    assert_eq!(scene_edited, cli_frames(&j("cli")).await);
}

#[tokio::test]
async fn a_new_pool_sees_an_edited_manim_cfg() {
    let p = TestProject::new("");
    p.write("scenes/good.py", GOOD)
        .write("manim.cfg", "[CLI]\nbackground_color = #203040\n");
    let j = |media: &str| job(&p, "scenes/good.py", "Good", media, LONG);
    let before = warm_frames(
        &WarmRenderer {
            runner: pool(&p, 1).await,
        },
        &j("a"),
    )
    .await;
    p.write("manim.cfg", "[CLI]\nbackground_color = #405060\n");
    let after = warm_frames(
        &WarmRenderer {
            runner: pool(&p, 1).await,
        },
        &j("b"),
    )
    .await;
    assert_ne!(after, before, "the manim.cfg edit was missed");
    assert_eq!(after, cli_frames(&j("cli")).await);
}

const DISCOVER_PY: &str = include_str!("../python/discover.py");

/// discover.py's report, parsed from a run's stdout.
fn report(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let last = text.lines().rev().find(|l| l.starts_with('{'));
    serde_json::from_str(last.unwrap_or_else(|| panic!("no report in {text}"))).unwrap()
}

/// `script` run with `args` in `p`'s root, in a warm worker's child and in
/// a fresh Python: how each finished.
async fn warm_and_cold(
    p: &TestProject,
    script: &str,
    args: Vec<OsString>,
) -> (parender::procs::Finished, parender::procs::Finished) {
    let run = PythonRun {
        script: script.into(),
        args,
        env: vec![],
        cwd: p.path().to_path_buf(),
        timeout: LONG,
    };
    let cancel = CancellationToken::new();
    let warm = pool(p, 1).await.run_script(&run, &cancel).await.unwrap();
    let cold = run_cli(&python(), run, &cancel).await.unwrap();
    (warm, cold)
}

#[tokio::test]
async fn discovery_runs_unchanged_through_a_worker() {
    let p = TestProject::new("");
    p.write(
        "scenes/good.py",
        &format!("{GOOD}\n\nclass Other(Good):\n    pass\n"),
    )
    .write("scenes/exits.py", "import os\nos._exit(0)\n")
    .write("scenes/broken.py", "from manim import *\nclass X(Scene:\n");
    let files = ["scenes/good.py", "scenes/exits.py", "scenes/broken.py"];
    let mut args: Vec<OsString> = vec!["10".into()];
    args.extend(files.iter().map(OsString::from));
    let (warm, cold) = warm_and_cold(&p, DISCOVER_PY, args).await;
    assert!(matches!(warm.outcome, Outcome::Exited(s) if s.success()));
    let (warm, cold) = (report(&warm.stdout), report(&cold.stdout));
    assert_eq!(warm, cold);
    assert_eq!(warm["files"][0]["scenes"][1]["class"], "Other");
    assert!(
        warm["files"][1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("os._exit")
    );
}

/// The interpreter the test venv was made from: no Manim in it.
fn base_python() -> PathBuf {
    let out = run_tool(
        python().to_str().unwrap(),
        &[
            "-c",
            "import sys, os; print(os.path.realpath(sys._base_executable))",
        ],
    );
    PathBuf::from(String::from_utf8_lossy(&out).trim())
}

#[tokio::test]
async fn a_python_without_manim_cannot_start_a_pool() {
    let p = TestProject::new("");
    match WarmPool::start(&base_python(), p.path(), 1, &scratch(p.path())).await {
        Err(e @ WarmError::NoManim { .. }) => {
            assert!(e.to_string().contains("No module named 'manim'"), "{e}")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started without Manim"),
    }
    let missing = p.path().join("no-python");
    assert!(matches!(
        WarmPool::start(&missing, p.path(), 1, &scratch(p.path())).await,
        Err(WarmError::Spawn { .. })
    ));
}

#[tokio::test]
async fn requests_beyond_the_pool_wait_and_dropping_the_pool_ends_its_workers() {
    let p = TestProject::new("");
    p.write("scenes/good.py", GOOD);
    let warm = WarmRenderer {
        runner: pool(&p, 2).await,
    };
    let workers = warm.runner.idle_worker_pids();
    assert_eq!(workers.len(), 2);
    let jobs: Vec<RenderJob> = (0..3)
        .map(|i| job(&p, "scenes/good.py", "Good", &format!("m{i}"), LONG))
        .collect();
    let all = futures::future::join_all(jobs.iter().map(|j| render(&warm, j))).await;
    let videos: Vec<Vec<String>> = all.into_iter().map(|r| frames(&ok(r).video)).collect();
    assert!(videos.iter().all(|v| *v == videos[0]));
    let mut after = warm.runner.idle_worker_pids();
    after.sort();
    let mut before = workers.clone();
    before.sort();
    assert_eq!(after, before, "a worker was replaced");
    drop(warm);
    tokio::time::sleep(Duration::from_millis(300)).await;
    for pid in workers {
        assert!(!alive(pid as i32), "worker {pid} outlived its pool");
    }
}

/// When the warm workers cannot start (here: not given the time to import
/// Manim), the build renders every scene in a fresh Python instead, says so
/// once, and the video is as it would be. `[render] backend = "cli"` skips
/// the attempt and the warning.
#[test]
fn the_cli_backend_takes_over_with_one_warning_when_the_workers_cannot_start() {
    let p = TestProject::new("");
    p.write("scenes/good.py", GOOD);
    p.write(
        "scenes/other.py",
        &GOOD.replace("class Good", "class Other"),
    );
    let video = p.path().join("talk.mp4");
    let out = p
        .command(&["build", "-o", video.to_str().unwrap()])
        .env("PARENDER_WARM_START_TIMEOUT", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("the warm render workers cannot start").count(),
        1,
        "{err}"
    );
    assert!(err.contains("backend = \"cli\""), "{err}");
    // Two scenes of 0.4 s at 15 fps.
    assert_eq!(common::av::count_frames(&video), 12);

    let q = TestProject::new("[render]\nbackend = \"cli\"\n");
    q.write("scenes/good.py", GOOD);
    let out = q
        .command(&["build"])
        .env("PARENDER_WARM_START_TIMEOUT", "0")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("warm render workers"), "{err}");
}
