//! The shared remote cache against real servers on loopback: Apache's
//! WebDAV and a signature-checking S3 (s3s-fs). Two copies of a project
//! stand for two machines: what one renders, the other downloads.
//!
//! The sharing test renders with real Manim and compares decoded frames;
//! the fault tests (a server stopped mid-build, a wrong secret, corrupt
//! objects) use the fake renderer, since what they test is the cache.
mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::s3::S3;
use common::webdav::WebDav;
use common::{TestProject, text};
use serde_json::Value;

const SCENES: &str = r#"from manim import *


class One(Scene):
    def construct(self):
        self.play(Create(Square(color=BLUE)), run_time=0.5)


class Two(Scene):
    def construct(self):
        self.play(Create(Circle(color=RED)), run_time=0.5)


class Three(Scene):
    def construct(self):
        self.play(FadeIn(Triangle()), run_time=0.5)
"#;

fn project(remote: &str) -> TestProject {
    let p = TestProject::new(&format!("[cache]\nremote = {remote:?}\n"));
    p.write("scenes/shapes.py", SCENES);
    p
}

/// The `build-finished` and `remote-cache` lines of a JSON build that must
/// have succeeded.
fn build(cmd: &mut Command) -> (Value, Value, Vec<String>, Output) {
    let out = cmd.output().expect("run parender");
    let lines = TestProject::successful_build(&out);
    let done = lines.last().cloned().unwrap_or_default();
    let remote = TestProject::line_with(&lines, "remote-cache", &out).clone();
    let warnings = lines
        .iter()
        .filter(|l| l["reason"] == "warning")
        .map(|l| l["message"].as_str().unwrap_or("").to_string())
        .collect();
    (done, remote, warnings, out)
}

fn json_build(p: &TestProject, extra: &[&str], fake: bool) -> Command {
    let mut args = vec!["build", "--message-format", "json"];
    args.extend_from_slice(extra);
    let mut c = p.command(&args);
    if fake {
        c.env("PARENDER_FAKE_RENDERER", "1");
    }
    c
}

fn counts(done: &Value) -> (u64, u64) {
    (
        done["rendered"].as_u64().unwrap_or(99),
        done["cached"].as_u64().unwrap_or(99),
    )
}

fn final_video(p: &TestProject) -> std::path::PathBuf {
    let dir = p.path().join("out/dev");
    std::fs::read_dir(&dir)
        .expect("out/dev")
        .flatten()
        .map(|e| e.path())
        .find(|f| f.extension().is_some_and(|e| e == "mp4"))
        .expect("a final video")
}

fn files_under(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == ext) {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn a_second_machine_renders_nothing_over_webdav() {
    let dav = WebDav::start();
    let url = dav.url("team/cache");
    let a = project(&url);
    let (done, remote, warnings, out) = build(&mut json_build(&a, &["--wait-uploads"], false));
    assert_eq!(counts(&done), (3, 0), "{}", text(&out));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(remote["uploads"], 3, "{remote}");
    assert_eq!(remote["pending"], 0, "{remote}");
    assert_eq!(
        files_under(&dav.data().join("team/cache/v1/entries"), "json").len(),
        3
    );

    // Machine B: the same project, an empty local cache.
    let b = project(&url);
    let t = Instant::now();
    let (done, remote, warnings, out) = build(&mut json_build(&b, &[], false));
    let took = t.elapsed();
    assert_eq!(counts(&done), (0, 3), "{}", text(&out));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(
        (remote["hits"].as_u64(), remote["misses"].as_u64()),
        (Some(3), Some(0))
    );
    let why: Vec<String> = TestProject::json_lines(&out)
        .iter()
        .filter(|l| l["reason"] == "scene-finished")
        .map(|l| l["why"][0].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(why.len(), 3, "{why:?}");
    assert!(why.iter().all(|w| w.contains("remote cache")), "{why:?}");
    assert_eq!(
        common::av::frame_md5s(&final_video(&a)),
        common::av::frame_md5s(&final_video(&b))
    );
    eprintln!("machine B's build from the remote cache: {took:?}");

    let stats = b.parender(&["cache", "stats"]);
    let s = text(&stats);
    assert!(s.contains("3 hits, 0 misses"), "{s}");

    let doctor = b.parender(&["doctor"]);
    assert!(
        text(&doctor).contains("remote cache: http://127.0.0.1"),
        "{}",
        text(&doctor)
    );
}

#[test]
fn a_server_stopped_mid_build_costs_a_warning_and_uploads_resume() {
    let mut dav = WebDav::start();
    let url = dav.url("cache");
    let a = project(&url);
    let mut cmd = json_build(&a, &["--wait-uploads"], true);
    cmd.env("PARENDER_FAKE_RENDER_SECONDS", "1.5");
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // The lookups are done once the renders start: stop the server then.
    std::thread::sleep(Duration::from_millis(700));
    let t = Instant::now();
    dav.stop();
    eprintln!("stopping apache took {:?}", t.elapsed());
    let out = child.wait_with_output().expect("wait");
    let lines = TestProject::successful_build(&out);
    let warnings: Vec<String> = lines
        .iter()
        .filter(|l| l["reason"] == "warning")
        .map(|l| l["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, not one per upload: {warnings:?}"
    );
    assert!(warnings[0].contains("unavailable"), "{warnings:?}");
    assert!(warnings[0].contains("rendering locally"), "{warnings:?}");
    let pending = a.path().join(".parender/cache/remote/pending");
    assert_eq!(
        std::fs::read_dir(&pending).map(|d| d.count()).unwrap_or(0),
        3
    );

    // The server is back: the next build (nothing to render) sends them.
    dav.restart();
    let (done, remote, warnings, out) = build(&mut json_build(&a, &["--wait-uploads"], true));
    assert_eq!(counts(&done), (0, 3), "{}", text(&out));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(remote["uploads"], 3, "{remote}");
    assert_eq!(
        std::fs::read_dir(&pending).map(|d| d.count()).unwrap_or(0),
        0
    );
    let b = project(&url);
    let (done, _, _, out) = build(&mut json_build(&b, &[], true));
    assert_eq!(counts(&done), (0, 3), "{}", text(&out));
}

#[test]
fn corrupt_objects_on_the_server_are_rejected_and_replaced() {
    let dav = WebDav::start();
    let url = dav.url("cache");
    let a = project(&url);
    build(&mut json_build(&a, &["--wait-uploads"], true));
    // Truncate one video on the server, flip a byte of another.
    let mut videos = files_under(&dav.data().join("cache/v1/objects"), "mp4");
    videos.sort();
    assert_eq!(videos.len(), 3);
    let full = std::fs::read(&videos[0]).expect("read");
    std::fs::write(&videos[0], &full[..full.len() / 2]).expect("truncate");
    let mut bytes = std::fs::read(&videos[1]).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&videos[1], &bytes).expect("flip");

    let b = project(&url);
    let (done, remote, warnings, out) = build(&mut json_build(&b, &["--wait-uploads"], true));
    assert_eq!(counts(&done), (2, 1), "{}", text(&out));
    assert_eq!(remote["rejected"], 2, "{remote}");
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("rejected") && w.contains("does not match its hash"))
            .count(),
        2,
        "{warnings:?}"
    );
    // B's good renders replaced the bad objects: C gets every scene.
    let c = project(&url);
    let (done, remote, warnings, out) = build(&mut json_build(&c, &[], true));
    assert_eq!(counts(&done), (0, 3), "{}", text(&out));
    assert_eq!(remote["rejected"], 0, "{remote} {warnings:?}");
}

#[test]
fn s3_with_signatures_shares_and_a_wrong_secret_renders_locally() {
    let s3 = S3::start();
    let url = format!("s3://{}/renders", common::s3::BUCKET);
    let a = project(&url);
    let mut cmd = json_build(&a, &["--wait-uploads"], true);
    cmd.envs(s3.env(common::s3::SECRET_KEY));
    let (done, remote, warnings, out) = build(&mut cmd);
    assert_eq!(counts(&done), (3, 0), "{}", text(&out));
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(remote["uploads"], 3);
    assert_eq!(
        files_under(&s3.data().join("renders/v1/objects"), "mp4").len(),
        3
    );

    let b = project(&url);
    let mut cmd = json_build(&b, &[], true);
    cmd.envs(s3.env(common::s3::SECRET_KEY));
    let (done, ..) = build(&mut cmd);
    assert_eq!(counts(&done), (0, 3));

    // A wrong secret: the server refuses the signature; the build renders.
    let c = project(&url);
    let mut cmd = json_build(&c, &["--wait-uploads"], true);
    cmd.envs(s3.env("not-the-secret"));
    let t = Instant::now();
    let (done, _, warnings, out) = build(&mut cmd);
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(counts(&done), (3, 0), "{}", text(&out));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("refused the credentials"),
        "{warnings:?}"
    );

    let mut doctor = c.command(&["doctor"]);
    doctor.envs(s3.env("not-the-secret"));
    let out = doctor.output().expect("doctor");
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(
        t.contains("remote cache") && t.contains("AWS_SECRET_ACCESS_KEY"),
        "{t}"
    );
}

#[test]
fn a_bad_remote_url_points_at_the_config_line() {
    let p = TestProject::new("[cache]\nremote = \"ftp://host/cache\"\n");
    p.write("scenes/shapes.py", SCENES);
    let out = p.fake(&["build"]);
    assert!(!out.status.success());
    let t = text(&out);
    assert!(t.contains("parender.toml:3"), "{t}");
    assert!(t.contains("s3://bucket/prefix"), "{t}");
}
