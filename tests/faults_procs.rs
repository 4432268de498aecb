//! Faults around child processes (issue 8, bug 2), with real Manim: a scene
//! that starts a detached process (a new session, outside the render's
//! process group) holds the build neither past its timeout nor past Ctrl-C,
//! and the process does not outlive its render. Only processes these tests
//! start are ever signalled, by pid.
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestProject, run_tool, text};

/// Scene `Detached` in `scenes/detached.py`: starts `sleep 40` in a new
/// session (`start_new_session=True`), writes its pid to `pidfile`, plays a
/// short animation, then, when `hang`, sleeps 40 s in `construct`.
fn detached_scene(p: &TestProject, pidfile: &Path, hang: bool) {
    let hang = if hang { "        time.sleep(40)\n" } else { "" };
    p.write(
        "scenes/detached.py",
        &format!(
            "import subprocess, time\nfrom manim import *\n\n\nclass Detached(Scene):\n    def construct(self):\n        child = subprocess.Popen(['sleep', '40'], start_new_session=True)\n        with open({:?}, 'w') as f:\n            f.write(str(child.pid))\n        self.play(FadeIn(Dot()), run_time=0.2)\n{hang}",
            pidfile.display().to_string()
        ),
    );
}

/// The `sleep 40` a scene started, by the pid it wrote; killed when dropped
/// if it is still running (so a failing test leaves nothing behind).
struct Detached {
    pid: String,
}

impl Detached {
    /// Waits (bounded) for the scene to have written the pid.
    fn wait_for(pidfile: &Path, deadline: Instant) -> Detached {
        loop {
            if let Ok(s) = std::fs::read_to_string(pidfile)
                && let Ok(pid) = s.trim().parse::<u32>()
            {
                return Detached {
                    pid: pid.to_string(),
                };
            }
            assert!(
                Instant::now() < deadline,
                "the scene never started its detached process"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn alive(&self) -> bool {
        running_sleep_40(&self.pid)
    }
}

/// Whether `pid` is a running `sleep 40` (a zombie, or another program under
/// a recycled pid, counts as gone).
fn running_sleep_40(pid: &str) -> bool {
    let running = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    });
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    running && cmdline == b"sleep\x0040\x00"
}

impl Drop for Detached {
    fn drop(&mut self) {
        if self.alive() {
            let _ = Command::new("kill").args(["-KILL", &self.pid]).status();
        }
    }
}

/// A file for the detached process's pid, in a temp folder of its own: a
/// file the scene writes inside the project would be one of its inputs.
fn pidfile() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("detached.pid");
    (dir, file)
}

fn scene_finished(out: &std::process::Output) -> serde_json::Value {
    TestProject::json_lines(out)
        .into_iter()
        .find(|v| v["reason"] == "scene-finished" && v["scene"] == "scenes/detached.py:Detached")
        .unwrap_or_else(|| panic!("no scene-finished line:\n{}", text(out)))
}

#[test]
fn detached_process_does_not_hold_the_build_past_its_timeout() {
    let p = TestProject::new("timeout = \"5s\"\n");
    let (_pids, pidfile) = pidfile();
    detached_scene(&p, &pidfile, true);
    let start = Instant::now();
    let out = p.parender(&["build", "--message-format", "json"]);
    let took = start.elapsed();
    let detached = Detached::wait_for(&pidfile, Instant::now());
    eprintln!("build with a 5 s timeout took {took:?}");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let scene = scene_finished(&out);
    assert_eq!(scene["status"], "failed", "{}", text(&out));
    assert!(
        scene["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("timed out")),
        "{}",
        text(&out)
    );
    // 5 s, up to 2 s for SIGTERM to work, Manim's start-up; not 40 s.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(!detached.alive(), "the detached process outlived the build");
}

#[test]
fn ctrl_c_during_a_render_with_a_detached_process_exits_130_promptly() {
    let p = TestProject::new("");
    let (_pids, pidfile) = pidfile();
    detached_scene(&p, &pidfile, true);
    let mut child: Child = p
        .command(&["build", "--message-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run parender");
    let detached = Detached::wait_for(&pidfile, Instant::now() + Duration::from_secs(60));
    // The render is under way and its detached process started.
    std::thread::sleep(Duration::from_millis(500));
    run_tool("kill", &["-INT", &child.id().to_string()]);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    eprintln!("SIGINT to exit took {took:?}");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
    assert!(!detached.alive(), "the detached process outlived Ctrl-C");
}

#[test]
fn detached_process_left_by_a_finished_scene_is_ended_and_the_scene_renders() {
    let p = TestProject::new("");
    let (_pids, pidfile) = pidfile();
    detached_scene(&p, &pidfile, false);
    // A process of the test's own, in its own session like the scene's:
    // not the render's, so it must survive the build.
    let mut own = Command::new("setsid")
        .args(["sleep", "40"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("setsid sleep");
    let own_pid = own.id().to_string();
    let start = Instant::now();
    let out = p.parender(&["build", "--message-format", "json"]);
    let took = start.elapsed();
    let detached = Detached::wait_for(&pidfile, Instant::now());
    let own_alive = running_sleep_40(&own_pid);
    let _ = own.kill();
    let _ = own.wait();
    eprintln!("build of a scene that leaves a detached process took {took:?}");
    let lines = TestProject::successful_build(&out);
    assert_eq!(scene_finished(&out)["status"], "rendered", "{}", text(&out));
    let last = lines.last().expect("build-finished");
    let video = p.path().join(last["output"].as_str().expect("a video"));
    assert!(video.is_file(), "{video:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(
        !detached.alive(),
        "the scene's detached process outlived it"
    );
    assert!(own_alive, "the build killed a process it did not start");
}
