//! `parender watch --serve` seen from a real headless Chromium: the page
//! plays the latest video, lists the scenes, shows a scene rendering after a
//! save and then the new video with the playhead restored, and shows a
//! broken scene's error with its file and line. Real Manim, real ffmpeg.
//! Screenshots are kept in `target/tmp/e2e_serve/` (Cargo's folder for
//! integration tests' files).
mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::TestProject;
use common::browser::Browser;
use common::json_child::JsonChild;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

const SCENE_A: &str = r#"from manim import BLUE, Circle, Create, Scene


class Opening(Scene):
    def construct(self):
        self.add_subcaption("A circle", duration=1.5)
        self.play(Create(Circle(color=BLUE)), run_time=1.0)
        self.wait(1.0)
"#;

const SCENE_B: &str = r#"from manim import GREEN, FadeIn, Rotate, Scene, Square


class Closing(Scene):
    def construct(self):
        square = Square(color=GREEN)
        self.play(FadeIn(square), run_time=1.0)
        self.play(Rotate(square), run_time=1.0)
        self.wait(1.0)
"#;

/// `parender watch --serve` with its JSON messages on a channel.
struct Watch(JsonChild);

impl Watch {
    fn start(p: &TestProject) -> Watch {
        let args = [
            "watch",
            "--serve",
            "127.0.0.1:0",
            "--message-format",
            "json",
        ];
        Watch::with(p.command(&args), p)
    }

    /// `cmd` with its stderr in the project's `watch.err`.
    fn with(mut cmd: std::process::Command, p: &TestProject) -> Watch {
        let log = std::fs::File::create(p.path().join("watch.err")).unwrap();
        cmd.stderr(log);
        Watch(JsonChild::spawn(cmd))
    }

    fn until(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.events.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(_) => {}
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }
}

/// The status line and headers of a GET of `path` from the server at
/// `url`, with extra request headers.
fn get(url: &str, path: &str, headers: &str) -> String {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(host).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    let text = String::from_utf8_lossy(&reply);
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

/// Where screenshots are kept after the test (its temp project is removed).
fn shots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_serve");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn js(b: &mut Browser, expr: &str) -> Value {
    b.eval(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

fn wait(b: &mut Browser, expr: &str) -> Value {
    b.wait_for(expr, WAIT).unwrap_or_else(|e| panic!("{e}"))
}

const BLOCK_B: &str = r#"document.querySelector('.scene[data-scene="scenes/b.py:Closing"]')"#;

#[test]
fn the_preview_page_follows_edits_and_shows_errors() {
    assert!(
        Browser::available(),
        "chromium is missing: run scripts/setup.sh (it installs Debian's chromium)"
    );
    let p = TestProject::new("");
    p.write("scenes/a.py", SCENE_A)
        .write("scenes/b.py", SCENE_B);
    let watch = Watch::start(&p);
    let url = watch.until("serve-started", |v| v["reason"] == "serve-started")["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let first = watch.until("the first build", |v| v["reason"] == "build-finished");
    assert_eq!(first["success"], true, "{first}");

    let mut b = Browser::start(p.path()).unwrap();
    b.open(&url).unwrap();
    // The timeline lists both scenes, in order, and the video plays.
    wait(
        &mut b,
        "window.parender && parender.version && document.querySelectorAll('#timeline .scene').length === 2",
    );
    // Seeking works (range requests); nothing but the page's own files is
    // served, whatever the path says.
    let part = get(&url, "/video.mp4", "Range: bytes=0-99\r\n");
    assert!(part.starts_with("http/1.1 206"), "{part}");
    assert!(part.contains("content-length: 100"), "{part}");
    for path in [
        "/../parender.toml",
        "/video.mp4/../../parender.toml",
        "/thumb/..%2f..%2fparender.toml",
        "/thumb/7.jpg",
        "/scenes/a.py",
        "/out/",
    ] {
        let reply = get(&url, path, "");
        assert!(
            reply.starts_with("http/1.1 404") || reply.starts_with("http/1.1 400"),
            "{path}: {reply}"
        );
    }

    let names = js(
        &mut b,
        "[...document.querySelectorAll('#timeline .scene')].map(e => e.dataset.scene)",
    );
    assert_eq!(
        names,
        serde_json::json!(["scenes/a.py:Opening", "scenes/b.py:Closing"])
    );
    js(
        &mut b,
        "document.getElementById('video').muted = true; document.getElementById('video').play().then(() => true)",
    );
    wait(&mut b, "document.getElementById('video').currentTime > 0.5");
    b.screenshot(&shots().join("1-playing.png")).unwrap();

    // Every status the block of b.py shows from now on is recorded.
    js(
        &mut b,
        &format!(
            "window.statuses = []; new MutationObserver(() => {{ const st = {BLOCK_B}?.dataset.status; if (st === 'rendering' && !statuses.includes(st)) window.renderingAt = Date.now(); statuses.push(st); }}).observe(document.getElementById('timeline'), {{subtree: true, childList: true, attributes: true}}); true"
        ),
    );
    let before = js(&mut b, "parender.version");
    let start_b = js(&mut b, "parender.state.scenes[1].start")
        .as_f64()
        .unwrap();
    let saved = js(&mut b, "Date.now()").as_f64().unwrap();
    p.write("scenes/b.py", &SCENE_B.replace("GREEN", "RED"));
    wait(&mut b, "statuses.includes('rendering')");
    // Said, not asserted (a shared machine's timing is no test).
    let shown = js(&mut b, "window.renderingAt").as_f64().unwrap();
    eprintln!("save → block shows rendering: {:.0} ms", shown - saved);
    b.screenshot(&shots().join("2-rendering.png")).unwrap();
    // The new video, with the playhead at the start of the changed scene.
    wait(
        &mut b,
        &format!("parender.swaps >= 1 && parender.version !== {before}"),
    );
    let target = js(&mut b, "parender.target").as_f64().unwrap();
    assert!(
        (target - start_b).abs() < 0.01,
        "target {target}, scene starts at {start_b}"
    );
    wait(
        &mut b,
        "Math.abs(document.getElementById('video').currentTime - parender.target) < 0.5",
    );
    assert_eq!(js(&mut b, &format!("{BLOCK_B}.dataset.status")), "fresh");
    b.screenshot(&shots().join("3-new-video.png")).unwrap();

    // Keys: space pauses, `p` goes back a scene, `n` forward one.
    b.press(" ").unwrap();
    wait(&mut b, "document.getElementById('video').paused");
    b.press("p").unwrap();
    wait(&mut b, "document.getElementById('video').currentTime < 0.1");
    b.press("n").unwrap();
    wait(
        &mut b,
        &format!("Math.abs(document.getElementById('video').currentTime - {start_b}) < 0.1"),
    );

    // A broken scene: its block says what is wrong, and where.
    let broken = SCENE_B.replace("self.wait(1.0)", "self.wait(undefined_name)");
    let line = broken
        .lines()
        .position(|l| l.contains("undefined_name"))
        .unwrap()
        + 1;
    p.write("scenes/b.py", &broken);
    let failed = wait(
        &mut b,
        &format!(
            "{BLOCK_B}.dataset.status === 'failed' && {BLOCK_B}.querySelector('.error')?.textContent"
        ),
    );
    let failed = failed.as_str().unwrap_or_default().to_string();
    assert!(failed.contains(&format!("scenes/b.py:{line}")), "{failed}");
    assert!(failed.contains("undefined_name"), "{failed}");
    wait(
        &mut b,
        "document.getElementById('status').textContent.includes('failed')",
    );
    b.screenshot(&shots().join("4-error.png")).unwrap();
}

/// `--open` starts the desktop's browser (`xdg-open`) with the page's URL.
#[test]
fn open_hands_the_url_to_the_desktop_browser() {
    let p = TestProject::new("");
    p.write("scenes/a.py", SCENE_A);
    // A stand-in xdg-open that writes down what it was asked to open.
    let bin = p.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let opened = p.path().join("opened.txt");
    let script = format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display());
    std::fs::write(bin.join("xdg-open"), script).unwrap();
    common::run_tool(
        "chmod",
        &["+x", &bin.join("xdg-open").display().to_string()],
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args = ["watch", "--serve", "--open", "--message-format", "json"];
    let mut cmd = p.command(&args);
    cmd.env("PATH", path).env("PARENDER_FAKE_RENDERER", "1");
    let watch = Watch::with(cmd, &p);
    let url = watch.until("serve-started", |v| v["reason"] == "serve-started")["url"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + WAIT;
    while std::fs::read_to_string(&opened).unwrap_or_default() != url {
        assert!(Instant::now() < deadline, "xdg-open was not given {url}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
