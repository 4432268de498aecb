//! End-to-end: the Ray executor against a real Ray head on loopback, with
//! real Manim and ffmpeg. One head serves every check, run one after the
//! other in one test (the head is stopped when it ends, pass or fail):
//!
//! - `parender doctor` says the executor is fine, and with a wrong address
//!   fails fast with the fix;
//! - the bundled example builds (`--release`) locally and on Ray into videos
//!   with the same decoded frames, and the Ray build really ran on Ray;
//! - a scene that raises is reported at the user's file and line, while the
//!   other scenes render;
//! - SIGINT during a hanging render ends parender quickly, and the render's
//!   process with it; a render past its timeout ends the same way.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::ray::RayHead;
use common::{TestProject, pidfile_alive, text, write_hanging_scene};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn executor(address: &str) -> String {
    format!("\n[executor]\nkind = \"ray\"\naddress = \"{address}\"\n")
}

/// The bundled example in `dir`, with the test Python and `extra` config.
/// Its release profile is the real one (1080p60), as the issue asks.
fn example(dir: &Path, extra: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(
        &repo.join("examples/lecture"),
        &dir.join("examples/lecture"),
    );
    let toml = std::fs::read_to_string(repo.join("parender.toml")).unwrap();
    std::fs::write(
        dir.join("parender.toml"),
        format!(
            "python = {:?}\n{toml}\n{extra}",
            common::python().display().to_string()
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

fn parender(head: &RayHead, project: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parender"));
    c.args(args)
        .arg("--project")
        .arg(project)
        .env("NO_COLOR", "1")
        // Whatever Ray writes on this side stays in the head's folder.
        .env("RAY_TMPDIR", head.temp_dir())
        .env_remove("PARENDER_CACHE_DIR");
    c
}

fn run(head: &RayHead, project: &Path, args: &[&str]) -> (Output, Duration) {
    let t = Instant::now();
    let out = parender(head, project, args)
        .output()
        .expect("run parender");
    (out, t.elapsed())
}

fn doctor(head: &RayHead, work: &Path) {
    let ok = example(&work.join("doctor-ok"), &executor(&head.address()));
    let (out, took) = run(head, &ok, &["doctor"]);
    let all = text(&out);
    assert!(
        all.contains("ok executor (ray): ray ") && all.contains("Manim "),
        "{all}"
    );
    assert!(all.contains(&head.address()), "{all}");
    eprintln!("doctor (ok) took {took:?}");

    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bad = example(
        &work.join("doctor-bad"),
        &executor(&format!("127.0.0.1:{free}")),
    );
    let (out, took) = run(head, &bad, &["doctor"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("FAIL executor (ray)"), "{all}");
    assert!(
        all.contains("ray start --head") && all.contains("[executor] address"),
        "{all}"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}: {all}");
    eprintln!("doctor (wrong address) took {took:?}");
}

fn same_frames_locally_and_on_ray(head: &RayHead, work: &Path) {
    let local = example(&work.join("local"), "");
    let on_ray = example(&work.join("ray"), &executor(&head.address()));
    let build = |project: &Path, video: &Path| {
        let (out, took) = run(
            head,
            project,
            &[
                "build",
                "--release",
                "--jobs",
                "2",
                "--message-format",
                "json",
                "-o",
                video.to_str().unwrap(),
            ],
        );
        let lines = TestProject::successful_build(&out);
        let done = TestProject::line_with(&lines, "build-finished", &out);
        assert_eq!(done["rendered"], 7, "{}", text(&out));
        took
    };
    let local_video = work.join("local.mp4");
    let ray_video = work.join("ray.mp4");
    let local_took = build(&local, &local_video);
    let ray_took = build(&on_ray, &ray_video);
    eprintln!("release build: local {local_took:?}, on Ray {ray_took:?}");

    // Rendered on Ray: the client connected to this head and each of the 7
    // renders came back from a task, with its files.
    let log = std::fs::read_to_string(on_ray.join(".parender/tmp/ray-client.log"))
        .expect("the Ray client's log");
    assert!(
        log.contains(&format!("connected to {}", head.address())),
        "{log}"
    );
    let done: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" done on ") && !l.contains(" 0 files back"))
        .collect();
    assert_eq!(done.len(), 7, "{log}");
    assert!(!local.join(".parender/tmp/ray-client.log").exists());

    for entries in [
        "stream=nb_read_packets",
        "stream=duration",
        "format=duration",
    ] {
        assert_eq!(
            common::av::probe(&local_video, "v:0", entries),
            common::av::probe(&ray_video, "v:0", entries),
            "{entries}"
        );
    }
    let (a, b) = (
        common::av::frame_md5s(&local_video),
        common::av::frame_md5s(&ray_video),
    );
    assert!(!a.is_empty());
    assert_eq!(a.len(), b.len(), "frame counts");
    let differ = a.iter().zip(&b).filter(|(x, y)| x != y).count();
    assert_eq!(differ, 0, "{differ} of {} frames differ", a.len());
}

fn errors_point_at_the_users_file(head: &RayHead) {
    let p = TestProject::new(&executor(&head.address()));
    p.write(
        "scenes/good.py",
        "from manim import *\n\n\nclass Good(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.3)\n",
    );
    p.write(
        "scenes/bad.py",
        "from manim import *\n\n\nclass Bad(Scene):\n    def construct(self):\n        self.add(Dot())\n        undefined_name.shift(UP)\n",
    );
    let (out, _) = run(head, p.path(), &["build", "--message-format", "json"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let lines = TestProject::json_lines(&out);
    let bad = lines
        .iter()
        .find(|l| l["reason"] == "scene-finished" && l["status"] == "failed")
        .unwrap_or_else(|| panic!("no failed scene:\n{all}"));
    assert_eq!(bad["error"]["file"], "scenes/bad.py", "{all}");
    assert_eq!(bad["error"]["line"], 7, "{all}");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("NameError"),
        "{all}"
    );
    assert!(!all.contains("_ray_pkg"), "the unpacked copy shows:\n{all}");
    assert_eq!(
        TestProject::scenes_with(&out, "rendered").len(),
        1,
        "the good scene still renders:\n{all}"
    );
}

fn sigint_ends_the_build_and_the_render(head: &RayHead) {
    let p = TestProject::new(&executor(&head.address()));
    let pids = tempfile::tempdir().unwrap();
    let pidfile = pids.path().join("pid");
    write_hanging_scene(&p, "scenes/hang.py", "Hang", &pidfile, false);
    let mut child = parender(head, p.path(), &["build"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(90);
    while !pidfile.exists()
        || std::fs::read_to_string(&pidfile)
            .unwrap_or_default()
            .is_empty()
    {
        assert!(Instant::now() < until, "the scene never started");
        assert!(child.try_wait().unwrap().is_none(), "parender ended early");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pidfile_alive(&pidfile));
    let t = Instant::now();
    // SAFETY: signals the parender this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let until = t + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < until, "parender did not end after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    }
    let exited = t.elapsed();
    let until = Instant::now() + Duration::from_secs(5);
    while pidfile_alive(&pidfile) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    let gone = t.elapsed();
    assert!(
        !pidfile_alive(&pidfile),
        "the render's process outlived the cancelled build"
    );
    eprintln!("SIGINT: parender exited after {exited:?}, the render was gone after {gone:?}");
    // The task was cancelled through Ray (ray.cancel), which confirmed it.
    let log = std::fs::read_to_string(p.path().join(".parender/tmp/ray-client.log")).unwrap();
    assert!(
        log.contains(" cancel ") && log.contains(" cancelled"),
        "{log}"
    );
    assert!(exited < Duration::from_secs(8), "took {exited:?}");
}

fn a_render_that_runs_too_long_times_out(head: &RayHead) {
    let p = TestProject::new(&format!("timeout = \"4s\"\n{}", executor(&head.address())));
    let pids = tempfile::tempdir().unwrap();
    let pidfile = pids.path().join("pid");
    write_hanging_scene(&p, "scenes/slow.py", "Slow", &pidfile, false);
    let (out, took) = run(head, p.path(), &["build", "--message-format", "json"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("timed out after 4"), "{all}");
    assert!(took < Duration::from_secs(40), "took {took:?}: {all}");
    let until = Instant::now() + Duration::from_secs(5);
    while pidfile_alive(&pidfile) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !pidfile_alive(&pidfile),
        "the render's process outlived its timeout"
    );
    eprintln!("timeout: the build took {took:?}");
}

#[test]
fn ray_executor_end_to_end() {
    let t = Instant::now();
    let head = RayHead::start(2);
    assert!(common::ray::short_enough(head.dir.path()));
    eprintln!(
        "Ray head: answered after {:?}, {} MiB resident",
        head.started_in,
        head.memory_mib()
    );
    let work = tempfile::tempdir().unwrap();
    doctor(&head, work.path());
    same_frames_locally_and_on_ray(&head, work.path());
    errors_point_at_the_users_file(&head);
    sigint_ends_the_build_and_the_render(&head);
    a_render_that_runs_too_long_times_out(&head);
    eprintln!(
        "Ray head: {} MiB resident at the end; whole test {:?}",
        head.memory_mib(),
        t.elapsed()
    );
}
