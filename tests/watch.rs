//! `parender watch` on temp projects, observed through its JSON output.
//! Waits are bounded (generous timeouts on events), never fixed sleeps that
//! decide the outcome.
mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::json_child::JsonChild;
use common::{TestProject, run_tool};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

struct Watch {
    proc: JsonChild,
    seen: Vec<Value>,
}

impl Watch {
    fn start(p: &TestProject, fake: bool, extra_env: &[(&str, &str)]) -> Watch {
        Watch::start_with(p, fake, extra_env, &[])
    }

    fn start_with(p: &TestProject, fake: bool, extra_env: &[(&str, &str)], args: &[&str]) -> Watch {
        let mut cmd = p.command(&["watch", "--message-format", "json"]);
        cmd.args(args).stderr(Stdio::null());
        if fake {
            cmd.env("PARENDER_FAKE_RENDERER", "1");
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Watch {
            proc: JsonChild::spawn(cmd),
            seen: Vec::new(),
        }
    }

    /// Events up to and including the first one `pred` accepts.
    fn until(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.proc.events.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    let done = pred(&v);
                    got.push(v);
                    if done {
                        return got;
                    }
                }
                Err(_) => panic!(
                    "timed out waiting for {what}; events so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// The events of the next build, through its (non-superseded) finish.
    fn next_build(&mut self) -> Vec<Value> {
        self.until("a finished build", |v| {
            v["reason"] == "build-finished" && v.get("superseded").is_none()
        })
    }

    /// No event at all for `quiet`.
    fn assert_quiet(&mut self, quiet: Duration) {
        if let Ok(v) = self.proc.events.recv_timeout(quiet) {
            panic!("expected no event, got {v}");
        }
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.proc.child.id().to_string();
        run_tool("kill", &["-INT", &pid]);
        let start = Instant::now();
        loop {
            if let Some(s) = self.proc.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "watch did not stop on SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn rendered(events: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = events
        .iter()
        .filter(|e| e["reason"] == "scene-finished" && e["status"] == "rendered")
        .map(|e| e["scene"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn scene(class: &str, imports: &str) -> String {
    format!(
        "from manim import *\n{imports}\n\n\nclass {class}(Scene):\n    def construct(self):\n        self.wait(0.2)\n"
    )
}

#[test]
fn watch_rebuilds_exactly_what_changed() {
    let p = TestProject::new("");
    p.write("scenes/common.py", "X = 1\n");
    p.write("scenes/a.py", &scene("A", "from common import X"));
    p.write("scenes/b.py", &scene("B", ""));
    p.write("scenes/c.py", &scene("C", "import common"));
    let mut w = Watch::start(&p, true, &[]);
    let first = w.next_build();
    assert_eq!(rendered(&first).len(), 3);

    // A shared module: exactly its importers.
    p.write("scenes/common.py", "X = 2\n");
    let ev = w.next_build();
    assert!(ev.iter().any(|v| v["reason"] == "watch-change"));
    assert_eq!(rendered(&ev), vec!["scenes/a.py:A", "scenes/c.py:C"]);

    // One scene, saved atomically (temp file + rename): one rebuild of it.
    let tmp = p.path().join("scenes/.b.py.tmp");
    std::fs::write(&tmp, scene("B", "# edited")).unwrap();
    std::fs::rename(&tmp, p.path().join("scenes/b.py")).unwrap();
    let ev = w.next_build();
    assert_eq!(rendered(&ev), vec!["scenes/b.py:B"]);
    assert_eq!(
        ev.iter().filter(|v| v["reason"] == "watch-change").count(),
        1
    );
    assert_eq!(
        ev.iter().filter(|v| v["reason"] == "build-started").count(),
        1
    );
    w.assert_quiet(Duration::from_millis(1500));

    // A touch renders nothing.
    let a = p.path().join("scenes/a.py");
    std::fs::write(&a, std::fs::read(&a).unwrap()).unwrap();
    let ev = w.next_build();
    assert!(rendered(&ev).is_empty(), "{ev:#?}");

    // parender's own folders and editor litter trigger nothing.
    p.write("out/dev/other.mp4", "x");
    p.write(".parender/junk", "x");
    p.write("scenes/4913", "x");
    p.write("scenes/b.py~", "x");
    p.write("scenes/__pycache__/a.cpython-311.pyc", "x");
    w.assert_quiet(Duration::from_millis(1500));

    // A new scene file is picked up.
    p.write("scenes/d.py", &scene("D", ""));
    let ev = w.next_build();
    assert_eq!(rendered(&ev), vec!["scenes/d.py:D"]);

    // A broken parender.toml is reported with its location; a fixed one is
    // picked up (here: a gap, which changes the video's length).
    let cfg = std::fs::read_to_string(p.path().join("parender.toml")).unwrap();
    p.write("parender.toml", &format!("{cfg}gapp = 1\n"));
    let ev = w.until("a config error", |v| v["reason"] == "error");
    let err = ev.last().unwrap();
    assert!(
        err["location"]
            .as_str()
            .unwrap()
            .ends_with("parender.toml:2:1"),
        "{err}"
    );
    assert_eq!(err["help"], "did you mean `gap`?");
    w.next_build();
    p.write("parender.toml", &format!("{cfg}gap = 1\n"));
    let ev = w.next_build();
    let done = ev.last().unwrap();
    assert_eq!(done["duration"], 4.0 + 3.0, "{done}");
    assert!(w.stop().code().is_some());
}

#[test]
fn an_edit_during_a_render_restarts_only_that_render() {
    let p = TestProject::new("");
    p.write("scenes/a.py", &scene("A", ""));
    p.write("scenes/b.py", &scene("B", ""));
    let mut w = Watch::start(&p, true, &[("PARENDER_FAKE_RENDER_SECONDS", "3")]);
    w.until("both renders under way", {
        let started = std::cell::Cell::new(0);
        move |v| {
            if v["reason"] == "scene-started" {
                started.set(started.get() + 1);
            }
            started.get() == 2
        }
    });
    p.write("scenes/a.py", &scene("A", "# edited"));
    let ev = w.next_build();
    let warnings: Vec<&str> = ev
        .iter()
        .filter(|v| v["reason"] == "warning")
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|m| m.contains("scenes/a.py:A changed during its render")),
        "{ev:#?}"
    );
    // B rendered once, A once (its second, restarted render); nothing else.
    let all = rendered(&w.seen);
    assert_eq!(all, vec!["scenes/a.py:A", "scenes/b.py:B"], "{:#?}", w.seen);
    let b_starts = w
        .seen
        .iter()
        .filter(|v| v["reason"] == "scene-started" && v["scene"] == "scenes/b.py:B")
        .count();
    assert_eq!(b_starts, 1, "B was restarted: {:#?}", w.seen);
    assert_eq!(ev.last().unwrap()["success"], true);
    w.stop();
}

#[test]
fn a_failing_scene_keeps_the_video_whole() {
    let p = TestProject::new("");
    p.write("scenes/a.py", &scene("A", ""));
    p.write("scenes/b.py", &scene("B", ""));
    p.write("scenes/c.py", &scene("C", "# parender-fake: fail"));
    let mut w = Watch::start(&p, true, &[]);
    let ev = w.next_build();
    // C never rendered: a placeholder card keeps its place (1 s + 1 s + 2 s).
    let done = ev.last().unwrap();
    assert_eq!(done["duration"], 4.0, "{done}");
    assert!(
        ev.iter().any(|v| v["reason"] == "warning"
            && v["message"].as_str().unwrap().contains("placeholder card"))
    );
    let failed = ev
        .iter()
        .find(|v| v["reason"] == "scene-finished" && v["status"] == "failed")
        .unwrap();
    assert_eq!(failed["error"]["line"], 2);
    // B breaks after a good render: the video keeps B's last good render.
    p.write("scenes/b.py", &scene("B", "# parender-fake: fail"));
    let ev = w.next_build();
    assert!(ev.iter().any(|v| {
        v["reason"] == "warning"
            && v["message"]
                .as_str()
                .unwrap()
                .contains("keeps its last good render")
    }));
    assert_eq!(ev.last().unwrap()["duration"], 4.0);
    w.stop();
}

#[test]
fn polling_watch_and_on_success_hook() {
    let p = TestProject::new("");
    p.write("scenes/a.py", &scene("A", ""));
    let hook_out = p.path().join("hook.txt");
    let hook = format!("echo \"$PARENDER_OUTPUT\" >> {}", hook_out.display());
    let mut w = Watch::start_with(&p, true, &[], &["--poll", "100ms", "--on-success", &hook]);
    let first = w.next_build();
    let output = first.last().unwrap()["output"]
        .as_str()
        .unwrap()
        .to_string();
    p.write("scenes/a.py", &scene("A", "# edited"));
    assert_eq!(rendered(&w.next_build()), vec!["scenes/a.py:A"]);
    // The hook ran after each successful build, with the video's path.
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&hook_out).unwrap_or_default();
        if text.lines().count() == 2 {
            assert!(text.lines().all(|l| l == output), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "hook output: {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    w.stop();
}

/// Real Manim: the initial build, an edit, and Ctrl-C while a render runs
/// (its process group, helper included, must not outlive parender).
#[test]
fn real_manim_watch_and_sigint_leaves_no_process() {
    let p = TestProject::new("");
    p.write(
        "scenes/a.py",
        "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.5)\n",
    );
    let mut w = Watch::start(&p, false, &[]);
    assert_eq!(rendered(&w.next_build()), vec!["scenes/a.py:A"]);
    let pidfile = p.path().join("helper.pid");
    common::write_hanging_scene(&p, "scenes/b.py", "B", &pidfile, false);
    w.until("B's render", |v| {
        v["reason"] == "scene-started" && v["scene"] == "scenes/b.py:B"
    });
    let deadline = Instant::now() + WAIT;
    while !pidfile.exists() {
        assert!(Instant::now() < deadline, "B never started its helper");
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = w.stop();
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !common::pidfile_alive(&pidfile),
        "the render's helper outlived parender watch"
    );
    assert_eq!(
        std::fs::read_dir(p.path().join(".parender/tmp"))
            .unwrap()
            .count(),
        0,
        "temp files left"
    );
}

/// The pids of the Python processes parender (`pid`) started directly: its
/// warm workers (renders are their children, not parender's).
fn warm_workers(pid: u32) -> std::collections::BTreeSet<i32> {
    let mut out = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let comm = stat
            .get(stat.find('(').unwrap_or(0) + 1..close)
            .unwrap_or("");
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if comm.starts_with("python") && fields.get(1) == Some(&pid.to_string().as_str()) {
            out.insert(entry.file_name().to_string_lossy().parse().unwrap_or(0));
        }
    }
    out
}

/// Real Manim, warm backend: the workers started for the first build serve
/// every later one (the same processes), and an edit during a render
/// cancels it as it cancels a CLI render: its child and what that started
/// end, and the edited scene renders on the same workers.
#[test]
fn warm_workers_outlive_builds_and_a_superseded_warm_render_is_cancelled() {
    let p = TestProject::new("jobs = 2\n");
    p.write(
        "scenes/a.py",
        "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.5)\n",
    );
    let mut w = Watch::start(&p, false, &[]);
    assert_eq!(rendered(&w.next_build()), vec!["scenes/a.py:A"]);
    let pid = w.proc.child.id();
    let deadline = Instant::now() + WAIT;
    let workers = loop {
        let now = warm_workers(pid);
        if now.len() == 2 {
            break now;
        }
        assert!(Instant::now() < deadline, "no warm workers: {now:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let pidfile = p.path().join("helper.pid");
    common::write_hanging_scene(&p, "scenes/b.py", "B", &pidfile, true);
    w.until("B's render", |v| {
        v["reason"] == "scene-started" && v["scene"] == "scenes/b.py:B"
    });
    while !pidfile.exists() {
        assert!(Instant::now() < deadline, "B never started its helper");
        std::thread::sleep(Duration::from_millis(100));
    }
    p.write(
        "scenes/b.py",
        "from manim import *\n\n\nclass B(Scene):\n    def construct(self):\n        self.play(FadeIn(Square()), run_time=0.5)\n",
    );
    let build = w.next_build();
    assert_eq!(rendered(&build), vec!["scenes/b.py:B"]);
    assert_eq!(build.last().unwrap()["success"], true, "{build:#?}");
    assert!(
        !common::pidfile_alive(&pidfile),
        "the superseded render's helper outlived its cancellation"
    );
    assert_eq!(warm_workers(pid), workers, "the warm workers were replaced");
    assert_eq!(w.stop().code(), Some(130));
}

/// Manim reads `manim.cfg` once, when it is imported: an edited one must
/// restart the warm workers, or the next render would use the old settings.
#[test]
fn an_edited_manim_cfg_restarts_the_warm_workers() {
    let p = TestProject::new("");
    p.write(
        "scenes/a.py",
        "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.5)\n",
    );
    p.write("manim.cfg", "[CLI]\nbackground_color = #0000FF\n");
    let mut w = Watch::start(&p, false, &[]);
    let first = w.next_build();
    let video = std::path::PathBuf::from(first.last().unwrap()["output"].as_str().unwrap());
    let blue = common::av::corner_colours(&video)[0];
    assert!(blue[2] > 200 && blue[0] < 50, "{blue:?}");
    p.write("manim.cfg", "[CLI]\nbackground_color = #FF0000\n");
    let second = w.next_build();
    assert_eq!(rendered(&second), vec!["scenes/a.py:A"]);
    let red = common::av::corner_colours(&video)[0];
    assert!(red[0] > 200 && red[2] < 50, "{red:?}");
    assert_eq!(w.stop().code(), Some(130));
}

/// `[render] backend` (like `python`) decides what `watch` renders with: an
/// edited `parender.toml` that changes it takes effect without a restart,
/// and the warm workers of the old setting end.
#[test]
fn switching_to_the_cli_backend_in_parender_toml_ends_the_warm_workers() {
    let p = TestProject::new("jobs = 2\n");
    p.write(
        "scenes/a.py",
        "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.5)\n",
    );
    let mut w = Watch::start(&p, false, &[]);
    w.next_build();
    let pid = w.proc.child.id();
    let deadline = Instant::now() + WAIT;
    while warm_workers(pid).len() != 2 {
        assert!(Instant::now() < deadline, "no warm workers");
        std::thread::sleep(Duration::from_millis(100));
    }
    let toml = std::fs::read_to_string(p.path().join("parender.toml")).unwrap();
    p.write(
        "parender.toml",
        &format!("{toml}\n[render]\nbackend = \"cli\"\n"),
    );
    let build = w.next_build();
    assert_eq!(build.last().unwrap()["success"], true, "{build:#?}");
    while !warm_workers(pid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the warm workers outlived the switch to the cli backend"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Renders still work, the cli way.
    p.write(
        "scenes/a.py",
        "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        self.play(FadeIn(Square()), run_time=0.5)\n",
    );
    assert_eq!(rendered(&w.next_build()), vec!["scenes/a.py:A"]);
    assert!(warm_workers(pid).is_empty());
    assert_eq!(w.stop().code(), Some(130));
}
