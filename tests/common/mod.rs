//! Shared helpers for the integration tests: temp projects and running the
//! real `parender` binary on them (just-style builder); [`av`] measures
//! the videos the end-to-end tests make.
#![allow(dead_code)]

pub mod av;
pub mod browser;
pub mod json_child;
pub mod ray;
pub mod s3;
pub mod slurm;
pub mod webdav;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Python with the pinned Manim: `PARENDER_TEST_PYTHON`, else the
/// repository's `.venv` (made by scripts/setup.sh).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("PARENDER_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
}

pub struct TestProject {
    pub dir: tempfile::TempDir,
}

impl TestProject {
    /// A project whose parender.toml points at the test Python, plus `extra` config.
    pub fn new(extra_config: &str) -> TestProject {
        let dir = tempfile::Builder::new()
            .prefix("parender-test-")
            .tempdir()
            .expect("temp dir");
        let t = TestProject { dir };
        t.write(
            "parender.toml",
            &format!(
                "python = {:?}\n{extra_config}",
                python().display().to_string()
            ),
        );
        std::fs::create_dir_all(t.path().join("scenes")).expect("scenes dir");
        t
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) -> &TestProject {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
        self
    }

    pub fn parender(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run parender")
    }

    /// The binary with the fast fake renderer (`PARENDER_FAKE_RENDERER=1`).
    pub fn fake(&self, args: &[&str]) -> Output {
        self.command(args)
            .env("PARENDER_FAKE_RENDERER", "1")
            .output()
            .expect("run parender")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_parender"));
        c.args(args).current_dir(self.path()).env("NO_COLOR", "1");
        c
    }

    /// Scenes a `--message-format json` build reported with `status`.
    pub fn scenes_with(out: &Output, status: &str) -> std::collections::BTreeSet<String> {
        TestProject::json_lines(out)
            .iter()
            .filter(|v| v["reason"] == "scene-finished" && v["status"] == status)
            .map(|v| v["scene"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// The JSON lines of a `--message-format json` build that must have
    /// succeeded: panics (showing the output) unless it exited 0 and its last
    /// line is a successful `build-finished`.
    pub fn successful_build(out: &Output) -> Vec<serde_json::Value> {
        assert!(out.status.success(), "build failed:\n{}", text(out));
        let lines = TestProject::json_lines(out);
        let last = lines.last().expect("JSON lines");
        assert_eq!(last["reason"], "build-finished", "{}", text(out));
        assert_eq!(last["success"], true, "{}", text(out));
        lines
    }

    /// The first of `lines` (parsed from `out`) with this `reason`; panics
    /// (showing the output) when there is none.
    pub fn line_with<'a>(
        lines: &'a [serde_json::Value],
        reason: &str,
        out: &Output,
    ) -> &'a serde_json::Value {
        lines
            .iter()
            .find(|l| l["reason"] == reason)
            .unwrap_or_else(|| panic!("no {reason} line:\n{}", text(out)))
    }

    /// `--message-format json` output, parsed line by line.
    pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("valid JSON line"))
            .collect()
    }
}

pub fn text(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// md5 of the decoded video and audio of a file: equal means same pixels
/// and samples.
pub fn media_md5(path: &Path) -> String {
    let out = run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            path.to_str().expect("utf-8 path"),
            "-f",
            "md5",
            "-",
        ],
    );
    String::from_utf8_lossy(&out).trim().to_string()
}

/// Runs a tool and returns stdout, panicking with its stderr on failure.
pub fn run_tool(prog: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(prog).args(args).output().expect(prog);
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A scene `class` in `rel` that starts a helper process (its pid written to
/// `pidfile`) and then hangs, optionally after one short animation.
pub fn write_hanging_scene(
    p: &TestProject,
    rel: &str,
    class: &str,
    pidfile: &Path,
    animate_first: bool,
) {
    let first = if animate_first {
        "        self.play(FadeIn(Dot()), run_time=0.2)\n"
    } else {
        ""
    };
    p.write(
        rel,
        &format!(
            "import subprocess, time\nfrom manim import *\n\n\nclass {class}(Scene):\n    def construct(self):\n{first}        child = subprocess.Popen(['sleep', '300'])\n        open({:?}, 'w').write(str(child.pid))\n        time.sleep(300)\n",
            pidfile.display().to_string()
        ),
    );
}

/// Whether the process whose pid is in `pidfile` is still running (zombies
/// count as gone).
pub fn pidfile_alive(pidfile: &Path) -> bool {
    let pid = std::fs::read_to_string(pidfile).expect("pid file");
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .is_ok_and(|s| s.split_whitespace().nth(2) != Some("Z"))
}
