//! The Python-user install: `pip wheel .` builds parender as a binary wheel
//! through pyproject.toml (maturin, with the build isolation pip gives every
//! user), a fresh venv gets that wheel and the pinned Manim, and from that
//! venv, in a project with no `python` key and no `.venv` and with no venv
//! on PATH, `parender doctor` names the venv's interpreter and
//! `parender build` renders a one-scene video with real Manim.
//!
//! The wheel is built with the `wheel-test` profile (dev, no debug info) in
//! `target/wheel-test/`: the build never replaces `target/debug/parender`,
//! which the other tests run, and never waits on the lock `cargo test` holds.
//! Everything else lives in one temp folder (pip's own cache aside).
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use common::{av, text};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Manim version requirements.txt pins (`manim==X`).
fn pinned_manim() -> String {
    let reqs = std::fs::read_to_string(Path::new(REPO).join("requirements.txt"))
        .expect("requirements.txt");
    reqs.lines()
        .find_map(|l| l.trim().strip_prefix("manim=="))
        .expect("a manim== pin in requirements.txt")
        .trim()
        .to_string()
}

/// The interpreter the test Python's venv is made from: a venv's
/// `bin/python` is a link that only works as that venv's interpreter.
fn base_python() -> PathBuf {
    let out = Command::new(common::python())
        .args(["-c", "import sys; print(sys._base_executable)"])
        .output()
        .expect("run the test Python");
    assert!(out.status.success(), "{}", text(&out));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// PATH without the test Python's folder and without any venv's `bin/` (an
/// activated `.venv`, the repository's among them), so no Manim there can
/// be what parender finds. System folders stay: ffmpeg and cargo live there.
fn path_without_venvs() -> std::ffi::OsString {
    let test_bin = common::python()
        .parent()
        .and_then(|bin| std::fs::canonicalize(bin).ok());
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|dir| {
            let real = std::fs::canonicalize(dir).ok();
            let in_venv = real
                .as_ref()
                .and_then(|r| r.parent())
                .is_some_and(|env| env.join("pyvenv.cfg").exists());
            !in_venv && (real.is_none() || real != test_bin)
        })
        .collect();
    std::env::join_paths(kept).expect("PATH")
}

/// A command with a clean environment for Python: no active venv, no
/// PYTHONPATH/PYTHONHOME, no venv on PATH, no pip prompts.
fn command(prog: &Path, path: &std::ffi::OsStr) -> Command {
    let mut c = Command::new(prog);
    c.env("PATH", path)
        .env_remove("VIRTUAL_ENV")
        .env_remove("CONDA_PREFIX")
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("PARENDER_FAKE_RENDERER")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .env("PIP_NO_INPUT", "1")
        .env("NO_COLOR", "1");
    c
}

fn run(mut c: Command, what: &str) -> Output {
    let t = Instant::now();
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!("{what}: {:.1}s", t.elapsed().as_secs_f64());
    assert!(out.status.success(), "{what} failed:\n{}", text(&out));
    out
}

#[test]
fn pip_installed_parender_finds_manim_in_its_own_venv() {
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("parender-wheel-")
        .tempdir()
        .expect("temp dir");
    // current_exe() has its links resolved: compare with the real path.
    let tmp_path = std::fs::canonicalize(tmp.path()).expect("canonical temp dir");
    let path = path_without_venvs();
    let env = tmp_path.join("env");

    // A fresh venv from the test Python's base interpreter.
    let mut c = command(&base_python(), &path);
    c.args(["-m", "venv"]).arg(&env);
    run(c, "python -m venv");
    let pip = env.join("bin/pip");

    // The wheel, built the way `pip install .` builds it (pyproject.toml's
    // build backend in an isolated build environment), at the wheel-test
    // profile (MATURIN_PEP517_ARGS), stripped, with Cargo.lock as it is.
    let wheels = tmp_path.join("wheels");
    let mut c = command(&pip, &path);
    c.args(["wheel", "--no-deps", "--wheel-dir"])
        .arg(&wheels)
        .arg(REPO)
        .env("CARGO_TARGET_DIR", Path::new(REPO).join("target"))
        .env(
            "MATURIN_PEP517_ARGS",
            "--profile wheel-test --strip --locked",
        );
    run(c, "pip wheel (maturin)");
    let wheel = std::fs::read_dir(&wheels)
        .expect("wheel dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("a .whl file");
    let name = wheel.file_name().expect("name").to_string_lossy();
    assert!(
        name.starts_with(&format!("parender-{VERSION}-py3-none-")),
        "the wheel's name carries Cargo.toml's version and no Python ABI: {name}"
    );
    let size = std::fs::metadata(&wheel).expect("wheel").len();
    eprintln!("wheel: {name}, {:.1} MB", size as f64 / 1e6);
    // Only the executable and the metadata: no sources, target/ or venvs.
    let mut c = command(&env.join("bin/python"), &path);
    c.args([
        "-c",
        "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
    ])
    .arg(&wheel);
    let listing = String::from_utf8(run(c, "list the wheel").stdout).expect("UTF-8");
    let files: Vec<&str> = listing.lines().collect();
    assert!(
        files.contains(&format!("parender-{VERSION}.data/scripts/parender").as_str()),
        "{listing}"
    );
    for f in &files {
        assert!(
            *f == format!("parender-{VERSION}.data/scripts/parender")
                || f.starts_with(&format!("parender-{VERSION}.dist-info/")),
            "unexpected file in the wheel: {f}\n{listing}"
        );
    }
    assert!(size < 80_000_000, "the wheel is {size} bytes");

    // The wheel and the pinned Manim into the venv, as a user would.
    let manim = pinned_manim();
    let mut c = command(&pip, &path);
    c.args(["install", "--quiet"])
        .arg(&wheel)
        .arg(format!("manim=={manim}"));
    run(c, "pip install the wheel and manim");
    let parender = env.join("bin/parender");
    assert!(
        parender.is_file(),
        "pip put no parender into {}",
        env.display()
    );

    // A one-scene project: no `python` key, no `.venv`.
    let project = tmp_path.join("talk");
    std::fs::create_dir_all(project.join("scenes")).expect("scenes");
    std::fs::write(project.join("parender.toml"), "name = \"talk\"\n").expect("config");
    // 1 s of animation (15 frames at 15 fps) and a 1 s wait (15 frames).
    std::fs::write(
        project.join("scenes/one.py"),
        "from manim import *\n\n\nclass One(Scene):\n    def construct(self):\n        \
         self.play(FadeIn(Square()), run_time=1)\n        self.wait(1)\n",
    )
    .expect("scene");

    let mut c = command(&parender, &path);
    c.arg("doctor").current_dir(&project);
    let out = c.output().expect("run parender doctor");
    let said = String::from_utf8_lossy(&out.stdout);
    eprintln!("{said}");
    let python_line = said
        .lines()
        .find(|l| l.contains("python:"))
        .unwrap_or_else(|| panic!("doctor names no python:\n{}", text(&out)));
    let expected = format!(
        "at {} (from the Python environment parender is installed in ({}))",
        env.join("bin/python3").display(),
        env.display()
    );
    assert!(python_line.trim_start().starts_with("ok"), "{python_line}");
    assert!(
        python_line.contains(&expected),
        "{python_line}\nwanted: {expected}"
    );
    assert!(
        said.lines()
            .any(|l| l.contains("manim:") && l.contains(&manim) && l.contains("ok")),
        "doctor did not find Manim {manim}:\n{}",
        text(&out)
    );

    let mut c = command(&parender, &path);
    c.args(["build", "--message-format", "json"])
        .current_dir(&project);
    let out = run(c, "parender build");
    common::TestProject::successful_build(&out);
    let video = project.join("out/dev/talk.mp4");
    assert_eq!(av::count_frames(&video), 30, "{}", text(&out));
    let probe = av::ffprobe_json(
        &video,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,r_frame_rate:format=duration",
        ],
    );
    let stream = &probe["streams"][0];
    assert_eq!(stream["width"], 854, "{probe}");
    assert_eq!(stream["height"], 480, "{probe}");
    assert_eq!(stream["r_frame_rate"], "15/1", "{probe}");
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("a duration");
    assert!((duration - 2.0).abs() < 0.05, "{duration} s");
    // Nothing of the repository's .venv was used: the project has none.
    assert!(!project.join(".venv").exists());
    eprintln!("whole test: {:.1}s", started.elapsed().as_secs_f64());
}
