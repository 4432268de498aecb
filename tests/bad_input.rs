//! Bad input and hostile set-ups (issue 8), one test per case, named after
//! it. Each runs the real binary on a temp project; the fast fake renderer
//! stands in for Manim where rendering is not the point (discovery always
//! runs the real Python and Manim). Devices and FIFOs are made inside the
//! temp folder, never the real `/dev/null`.
mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestProject, text};

fn scene(class: &str) -> String {
    format!(
        "from manim import *\n\n\nclass {class}(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.2)\n"
    )
}

/// A project with two scenes, a helper module, an asset, narration and a
/// manim.cfg: every kind of input.
fn project(extra_config: &str) -> TestProject {
    let p = TestProject::new(extra_config);
    p.write("scenes/common.py", "LABEL = 'x'\n");
    p.write(
        "scenes/01_a.py",
        "from manim import *\nfrom common import LABEL\n\n\nclass A(Scene):\n    def construct(self):\n        SVGMobject('assets/logo.svg')\n        self.play(FadeIn(Dot()), run_time=0.2)\n",
    );
    p.write("scenes/02_b.py", &scene("B"));
    p.write(
        "assets/logo.svg",
        "<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'><rect width='4' height='4'/></svg>\n",
    );
    p.write("manim.cfg", "[CLI]\nbackground_color = BLACK\n");
    let wav = p.path().join("audio/02_b.wav");
    std::fs::create_dir_all(wav.parent().unwrap()).unwrap();
    common::run_tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:duration=0.5",
            wav.to_str().unwrap(),
        ],
    );
    p
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(out.status.code(), Some(code), "{}", text(out));
    assert!(!stderr(out).contains("panicked"), "{}", text(out));
}

/// Nothing was rendered: no scene started, no cache entry written.
fn assert_nothing_rendered(p: &TestProject, out: &Output) {
    assert!(!stderr(out).contains("Rendering"), "{}", text(out));
    let entries = p.path().join(".parender/cache/entries");
    let n = std::fs::read_dir(&entries).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "cache entries were written: {}", text(out));
}

fn mknod_char(path: &Path, major: u32, minor: u32) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mknod only creates a node there.
    let r = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | 0o666,
            libc::makedev(major, minor),
        )
    };
    assert_eq!(r, 0, "mknod: {}", std::io::Error::last_os_error());
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(r, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// A `-o` that must be refused: exit 2 before anything renders, a message
/// naming the path and saying `what`.
fn assert_output_refused(p: &TestProject, output: &str, what: &str) -> Output {
    let out = p.fake(&["build", "-o", output]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("cannot write the video to") && err.contains(what),
        "expected `{what}`: {}",
        text(&out)
    );
    assert_nothing_rendered(p, &out);
    out
}

// ---- Bug 1: `-o` replaces whatever is there ----

#[test]
fn output_onto_a_device_node_is_refused() {
    let p = project("");
    let dev = p.path().join("null");
    mknod_char(&dev, 1, 3);
    let out = assert_output_refused(&p, "null", "a character device");
    assert!(stderr(&out).contains("null"), "{}", text(&out));
    let m = std::fs::symlink_metadata(&dev).unwrap();
    assert!(
        m.file_type().is_char_device(),
        "the device node was replaced"
    );
    assert_eq!(m.rdev(), libc::makedev(1, 3));
}

#[test]
fn output_onto_a_fifo_is_refused() {
    let p = project("");
    let fifo = p.path().join("pipe");
    mkfifo(&fifo);
    assert_output_refused(&p, "pipe", "a named pipe (FIFO)");
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );
}

#[test]
fn output_onto_a_socket_is_refused() {
    let p = project("");
    let sock = p.path().join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    assert_output_refused(&p, "sock", "a socket");
    assert!(
        std::fs::symlink_metadata(&sock)
            .unwrap()
            .file_type()
            .is_socket()
    );
}

#[test]
fn output_onto_a_directory_is_refused() {
    let p = project("");
    std::fs::create_dir(p.path().join("videos")).unwrap();
    p.write("videos/keep.txt", "mine");
    assert_output_refused(&p, "videos", "a folder");
    assert_eq!(
        std::fs::read_to_string(p.path().join("videos/keep.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn output_onto_a_symlink_to_a_device_is_refused() {
    let p = project("");
    let dev = p.path().join("null");
    mknod_char(&dev, 1, 3);
    std::os::unix::fs::symlink(&dev, p.path().join("video.mp4")).unwrap();
    assert_output_refused(&p, "video.mp4", "a symbolic link to a character device");
    assert!(
        std::fs::symlink_metadata(&dev)
            .unwrap()
            .file_type()
            .is_char_device()
    );
}

#[test]
fn output_onto_an_input_of_the_project_is_refused() {
    let p = project("");
    for (input, what) in [
        ("scenes/02_b.py", "the scene file of scenes/02_b.py:B"),
        (
            "scenes/common.py",
            "scenes/common.py, an input of scenes/01_a.py:A",
        ),
        (
            "assets/logo.svg",
            "assets/logo.svg, an input of scenes/01_a.py:A",
        ),
        ("audio/02_b.wav", "the narration of scenes/02_b.py:B"),
        ("parender.toml", "the project's parender.toml"),
        ("manim.cfg", "the project's manim.cfg"),
    ] {
        let before = std::fs::read(p.path().join(input)).unwrap();
        assert_output_refused(&p, input, what);
        // Through another name (a hard link) too.
        let alias = p.path().join("alias.mp4");
        let _ = std::fs::remove_file(&alias);
        std::fs::hard_link(p.path().join(input), &alias).unwrap();
        assert_output_refused(&p, "alias.mp4", what);
        std::fs::remove_file(&alias).unwrap();
        assert_eq!(
            std::fs::read(p.path().join(input)).unwrap(),
            before,
            "{input} changed"
        );
    }
}

#[test]
fn output_inside_the_cache_folder_is_refused() {
    let p = project("");
    let out = p.fake(&["build"]);
    assert_code(&out, 0);
    let out = p.fake(&["build", "-o", ".parender/cache/v.mp4"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("cache folder"), "{}", text(&out));
}

#[test]
fn output_onto_a_new_path_or_an_earlier_video_is_written() {
    let p = project("");
    let out = p.fake(&["build", "-o", "talk.mp4"]);
    assert_code(&out, 0);
    let first = std::fs::metadata(p.path().join("talk.mp4")).unwrap();
    assert!(first.is_file() && first.len() > 0);
    // An earlier video is replaced, also through a link to it.
    std::os::unix::fs::symlink("talk.mp4", p.path().join("link.mp4")).unwrap();
    p.write("scenes/02_b.py", &scene("B").replace("0.2", "0.4"));
    let out = p.fake(&["build", "-o", "link.mp4"]);
    assert_code(&out, 0);
    assert!(p.path().join("link.mp4").is_file());
}

// ---- Bug 6: panics ----

#[test]
fn timeout_1e300_is_a_config_error_not_a_panic() {
    let p = project("timeout = 1e300\n");
    let out = p.fake(&["build"]);
    assert_code(&out, 2);
    assert!(
        stderr(&out).contains("parender.toml:2:11"),
        "{}",
        text(&out)
    );
    assert!(stderr(&out).contains("far too long"), "{}", text(&out));
}

/// `parender build --message-format json | head -1`: a closed stdout stops
/// the reporting, not the build, which still publishes its video.
#[test]
fn json_messages_into_a_closed_pipe_do_not_stop_the_build() {
    let p = project("");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = p
        .command(&["build", "--message-format", "json"])
        .env("PARENDER_FAKE_RENDERER", "1")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_code(&out, 0);
    let video = p.path().join("out/dev").join(format!(
        "{}.mp4",
        p.path().file_name().unwrap().to_string_lossy()
    ));
    assert!(video.is_file(), "no video: {}", text(&out));
}

/// The same with `| head -1` itself: the first line arrives, the build
/// finishes, exits 0 and publishes.
#[test]
fn json_messages_piped_into_head_1_do_not_stop_the_build() {
    let p = project("");
    let bin = env!("CARGO_BIN_EXE_parender");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; '{bin}' build --message-format json | head -1"
        ))
        .current_dir(p.path())
        .env("PARENDER_FAKE_RENDERER", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_code(&out, 0);
    let first = String::from_utf8_lossy(&out.stdout);
    assert!(
        first.contains("\"reason\":\"build-started\""),
        "{}",
        text(&out)
    );
    assert!(p.path().join("out/dev").read_dir().unwrap().count() > 0);
}

#[test]
fn human_messages_into_a_closed_stderr_do_not_stop_the_build() {
    let p = project("");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = p
        .command(&["build"])
        .env("PARENDER_FAKE_RENDERER", "1")
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(p.path().join("out/dev").read_dir().unwrap().count() > 0);
}

// ---- Bug 7: one bad scene file blocks the whole project ----

/// The good file's scene builds and is in the video; the bad file's scene
/// fails with the file's name and `message`.
fn assert_isolated(p: &TestProject, message: &str, max: Duration) {
    p.write("scenes/01_good.py", &scene("Good"));
    let t = Instant::now();
    let out = p.fake(&["build", "--message-format", "json"]);
    let took = t.elapsed();
    assert_code(&out, 1);
    assert!(took < max, "took {took:?}: {}", text(&out));
    assert_eq!(
        TestProject::scenes_with(&out, "rendered"),
        ["scenes/01_good.py:Good".to_string()].into()
    );
    let lines = TestProject::json_lines(&out);
    let bad = lines
        .iter()
        .find(|l| l["reason"] == "scene-finished" && l["status"] == "failed")
        .unwrap_or_else(|| panic!("no failed scene: {}", text(&out)));
    assert_eq!(bad["scene"], "scenes/02_bad.py:Bad", "{}", text(&out));
    let msg = bad["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("scenes/02_bad.py") && msg.contains(message),
        "{msg}"
    );
    let done = TestProject::line_with(&lines, "build-finished", &out);
    assert!(done["output"].is_string(), "no video: {}", text(&out));
}

#[test]
fn a_scene_file_calling_os_exit_fails_alone() {
    let p = TestProject::new("");
    p.write(
        "scenes/02_bad.py",
        "import os\nfrom manim import *\nos._exit(0)\n\n\nclass Bad(Scene):\n    pass\n",
    );
    assert_isolated(&p, "exited (status 0)", Duration::from_secs(60));
}

#[test]
fn a_scene_file_that_segfaults_fails_alone() {
    let p = TestProject::new("");
    p.write(
        "scenes/02_bad.py",
        "import ctypes\nfrom manim import *\nctypes.string_at(0)\n\n\nclass Bad(Scene):\n    pass\n",
    );
    assert_isolated(&p, "SIGSEGV", Duration::from_secs(60));
}

/// No `timeout` configured: loading a file gets its own 30 s, not the
/// render timeout (10 minutes).
#[test]
fn a_scene_file_that_never_finishes_loading_fails_alone_after_30s() {
    let p = TestProject::new("");
    p.write(
        "scenes/02_bad.py",
        "from manim import *\nwhile True:\n    pass\n\n\nclass Bad(Scene):\n    pass\n",
    );
    assert_isolated(&p, "took longer than 30s", Duration::from_secs(90));
}

/// A shorter render `timeout` bounds loading too.
#[test]
fn a_scene_file_that_never_finishes_loading_is_stopped_at_a_shorter_timeout() {
    let p = TestProject::new("timeout = \"3s\"\n");
    p.write(
        "scenes/02_bad.py",
        "from manim import *\nwhile True:\n    pass\n\n\nclass Bad(Scene):\n    pass\n",
    );
    assert_isolated(&p, "took longer than 3s", Duration::from_secs(30));
}

/// Files share the loading children (one per CPU, each loading its share
/// in order): after a file that crashes, exits or hangs, the files after it
/// in the same share are still loaded, by a new child.
#[test]
fn bad_scene_files_among_many_fail_alone_and_the_files_after_them_load() {
    let p = TestProject::new("timeout = \"3s\"\n");
    let bad = [
        ("02", "import ctypes\nctypes.string_at(0)\n", "SIGSEGV"),
        ("03", "import os\nos._exit(0)\n", "exited (status 0)"),
        ("05", "while True:\n    pass\n", "took longer than 3s"),
    ];
    for n in 1..=8 {
        let name = format!("{n:02}");
        let body = match bad.iter().find(|b| b.0 == name) {
            Some((_, code, _)) => {
                format!("from manim import *\n{code}\n\nclass S{name}(Scene):\n    pass\n")
            }
            None => scene(&format!("S{name}")),
        };
        p.write(&format!("scenes/{name}.py"), &body);
    }
    let out = p.fake(&["build", "--message-format", "json"]);
    assert_code(&out, 1);
    let rendered = TestProject::scenes_with(&out, "rendered");
    let good: std::collections::BTreeSet<String> = [1, 4, 6, 7, 8]
        .iter()
        .map(|n| format!("scenes/{n:02}.py:S{n:02}"))
        .collect();
    assert_eq!(rendered, good, "{}", text(&out));
    let lines = TestProject::json_lines(&out);
    for (name, _, message) in bad {
        let id = format!("scenes/{name}.py:S{name}");
        let line = lines
            .iter()
            .find(|l| l["reason"] == "scene-finished" && l["scene"] == id.as_str())
            .unwrap_or_else(|| panic!("no {id}: {}", text(&out)));
        assert_eq!(line["status"], "failed");
        let msg = line["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("scenes/{name}.py")) && msg.contains(message),
            "{id}: {msg}"
        );
    }
}

/// What a file starts while it loads does not outlive the build.
#[test]
fn a_scene_file_that_starts_a_process_when_loaded_leaves_nothing_running() {
    let p = TestProject::new("");
    let pidfile = p.path().join("helper.pid");
    p.write(
        "scenes/01_spawns.py",
        &format!(
            "import subprocess\nfrom manim import *\nopen({:?}, 'w').write(str(subprocess.Popen(['sleep', '300']).pid))\n\n\n{}",
            pidfile.display().to_string(),
            scene("Spawns").replace("from manim import *\n\n\n", "")
        ),
    );
    let t = Instant::now();
    let out = p.fake(&["build"]);
    assert_code(&out, 0);
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !common::pidfile_alive(&pidfile),
        "the helper process survived"
    );
}

// ---- Validation gaps ----

fn assert_config_error(extra: &str, location: &str, wanted: &str) {
    let p = project(extra);
    let out = p.fake(&["build"]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains(location), "{}", text(&out));
    assert!(err.contains(wanted), "{}", text(&out));
    assert_nothing_rendered(&p, &out);
}

#[test]
fn timeout_0_is_rejected() {
    assert_config_error("timeout = 0\n", "parender.toml:2:11", "above zero");
}

#[test]
fn scene_timeout_0_is_rejected() {
    assert_config_error(
        "[scene.B]\ntimeout = \"0s\"\n",
        "parender.toml:3:11",
        "above zero",
    );
}

#[test]
fn gap_1e9_is_rejected() {
    assert_config_error("gap = 1e9\n", "parender.toml:2:7", "at most an hour");
}

#[test]
fn empty_name_is_rejected() {
    assert_config_error("name = \"\"\n", "parender.toml:2:8", "it is empty");
}

#[test]
fn name_with_path_separators_is_rejected() {
    let outside = tempfile::tempdir().unwrap();
    let p = project("");
    let depth = p.path().components().count() + 2;
    let up = "../".repeat(depth);
    let name = format!(
        "{up}{}/x",
        outside.path().display().to_string().trim_start_matches('/')
    );
    p.write(
        "parender.toml",
        &format!(
            "python = {:?}\nname = {name:?}\n",
            common::python().display().to_string()
        ),
    );
    let out = p.fake(&["build"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("path separator"), "{}", text(&out));
    assert_eq!(
        outside.path().read_dir().unwrap().count(),
        0,
        "wrote outside the project"
    );
}

#[test]
fn dot_names_are_rejected() {
    assert_config_error("name = \"..\"\n", "parender.toml:2:8", "folders");
}

#[test]
fn jobs_99999999999_is_rejected() {
    assert_config_error(
        "jobs = 99999999999\n",
        "parender.toml:2:8",
        "from 1 to 1024",
    );
    let p = project("");
    let out = p.fake(&["build", "-j", "99999"]);
    assert_code(&out, 2);
    assert!(stderr(&out).contains("1..=1024"), "{}", text(&out));
}

#[test]
fn jobs_four_says_a_whole_number_of_parallel_renders() {
    let p = project("jobs = \"four\"\n");
    let out = p.fake(&["build"]);
    assert_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("whole number of parallel renders"), "{err}");
    assert!(!err.contains("i64"), "{err}");
}

#[test]
fn python_that_is_not_executable_says_so() {
    let p = project("");
    let py = p.path().join("py");
    std::fs::write(&py, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o644)).unwrap();
    for setting in ["./py", py.to_str().unwrap()] {
        p.write("parender.toml", &format!("python = {setting:?}\n"));
        let out = p.fake(&["build"]);
        assert_code(&out, 3);
        let err = stderr(&out);
        assert!(err.contains("is not executable"), "{err}");
        assert!(!err.contains("does not exist"), "{err}");
        assert!(err.contains(&format!("chmod +x {}", py.display())), "{err}");
    }
}

#[test]
fn python_that_does_not_exist_says_so() {
    let p = project("");
    p.write("parender.toml", "python = \"./nope/python\"\n");
    let out = p.fake(&["build"]);
    assert_code(&out, 3);
    assert!(stderr(&out).contains("does not exist"), "{}", text(&out));
}

#[test]
fn project_that_does_not_exist_exits_2_naming_it() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nonexistent");
    for cmd in ["build", "scenes", "status"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
            .args([cmd, "--project", missing.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert_code(&out, 2);
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot open the project folder `{}`",
                missing.display()
            )),
            "{err}"
        );
    }
}

#[test]
fn python_that_hangs_in_the_version_probe_is_stopped_after_30s() {
    let p = project("");
    let pidfile = p.path().join("py.pid");
    let py = p.path().join("hang.sh");
    std::fs::write(
        &py,
        format!(
            "#!/bin/sh\necho $$ > '{}'\necho starting >&2\nexec sleep 1000\n",
            pidfile.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&py, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.write("parender.toml", "python = \"./hang.sh\"\n");
    let t = Instant::now();
    let out = p.fake(&["build"]);
    assert_code(&out, 3);
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    let err = stderr(&out);
    assert!(
        err.contains("hang.sh") && err.contains("within 30s"),
        "{err}"
    );
    assert!(err.contains("starting"), "what it said is shown: {err}");
    assert!(
        !common::pidfile_alive(&pidfile),
        "the hung probe is still running"
    );
}

#[test]
fn symlink_loop_in_scenes_warns_and_is_skipped() {
    let p = project("");
    std::os::unix::fs::symlink("loop.py", p.path().join("scenes/loop.py")).unwrap();
    let out = p.fake(&["build"]);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains("warning: scenes/loop.py is skipped: it is a symbolic link loop"),
        "{}",
        text(&out)
    );
}

#[test]
fn dangling_symlink_in_scenes_warns_and_is_skipped() {
    let p = project("");
    std::os::unix::fs::symlink("gone.py", p.path().join("scenes/dangling.py")).unwrap();
    let out = p.fake(&["build"]);
    assert_code(&out, 0);
    assert!(
        stderr(&out).contains(
            "warning: scenes/dangling.py is skipped: it is a symbolic link to a file that does not exist"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn non_utf8_scene_file_name_is_skipped_with_a_warning() {
    use std::os::unix::ffi::OsStrExt;
    let p = project("");
    let name = std::ffi::OsStr::from_bytes(b"b\xff.py");
    std::fs::write(p.path().join("scenes").join(name), scene("Odd")).unwrap();
    let out = p.fake(&["build"]);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains("is skipped: its name is not valid UTF-8"),
        "{err}"
    );
    assert!(!err.contains("No such file"), "{err}");
}

/// Runs `args` with the project bind-mounted read-only over itself, in a
/// mount namespace of its own (the mount ends with the process).
fn read_only(p: &TestProject, args: &str) -> Output {
    let bin = env!("CARGO_BIN_EXE_parender");
    let dir = p.path().display();
    std::process::Command::new("unshare")
        .arg("-m")
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "mount --bind '{dir}' '{dir}' && mount -o remount,ro,bind '{dir}' && touch '{dir}/probe' 2>/dev/null && exit 99; exec '{bin}' {args}"
        ))
        .current_dir(p.path())
        .env("PARENDER_FAKE_RENDERER", "1")
        .env("NO_COLOR", "1")
        .output()
        .expect("unshare")
}

#[test]
fn read_only_project_no_op_build_works() {
    let p = project("");
    assert_code(&p.fake(&["build"]), 0);
    let out = read_only(&p, "build");
    assert_ne!(out.status.code(), Some(99), "the mount is not read-only");
    assert_code(&out, 0);
    assert!(stderr(&out).contains("nothing changed"), "{}", text(&out));
}

#[test]
fn read_only_project_that_must_render_names_the_folder_and_suggests_parender_cache_dir() {
    let p = project("");
    assert_code(&p.fake(&["build"]), 0);
    p.write("scenes/02_b.py", &scene("B").replace("0.2", "0.3"));
    let out = read_only(&p, "build");
    assert_code(&out, 3);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "parender's cache folder {} is not writable",
            p.path().join(".parender").display()
        )),
        "{err}"
    );
    assert!(err.contains("PARENDER_CACHE_DIR"), "{err}");
    // With a writable cache folder elsewhere (and the video there), it builds.
    let cache = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!(
            "mount --bind '{d}' '{d}' && mount -o remount,ro,bind '{d}' && exec '{bin}' build -o '{c}/v.mp4'",
            d = p.path().display(),
            bin = env!("CARGO_BIN_EXE_parender"),
            c = cache.path().display()
        ))
        .current_dir(p.path())
        .env("PARENDER_FAKE_RENDERER", "1")
        .env("PARENDER_CACHE_DIR", cache.path().join("state"))
        .output()
        .unwrap();
    assert_code(&out, 0);
    assert!(cache.path().join("v.mp4").is_file());
}

// ---- Cosmetics ----

#[test]
fn header_and_summary_count_scenes_the_same_way() {
    let p = project("");
    p.write(
        "scenes/03_broken.py",
        "from manim import *\nraise RuntimeError('no')\n\n\nclass C1(Scene):\n    pass\n\n\nclass C2(Scene):\n    pass\n",
    );
    // A class body that raises: the whole file fails to load.
    p.write(
        "scenes/04_fails.py",
        "from manim import *\n\n\nclass D(Scene):\n    undefined_name\n",
    );
    let out = p.fake(&["build"]);
    assert_code(&out, 1);
    let err = stderr(&out);
    // A, B, and the broken files' C1, C2 and D.
    assert!(err.contains("] 5 scenes,"), "{err}");
    assert!(err.contains("2/5 scenes rendered"), "{err}");
    // A SCENE... build counts what it builds.
    let out = p.fake(&["build", "B"]);
    assert_code(&out, 0);
    assert!(stderr(&out).contains("] 1 of 2 scenes,"), "{}", text(&out));
}

#[test]
fn absolute_output_is_shown_with_one_leading_slash() {
    let p = project("");
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("talk.mp4");
    let out = p.fake(&["build", "-o", video.to_str().unwrap()]);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Finished {} (", video.display())),
        "{err}"
    );
    assert!(!err.contains("//"), "{err}");
}

/// `sed -i` writes `sedXXXXXX` beside the file, then renames it over the
/// file: only the file itself is a change.
#[test]
fn sed_temp_files_are_not_listed_as_changes_in_watch() {
    let p = project("");
    let mut child = p
        .command(&["watch", "--message-format", "json"])
        .env("PARENDER_FAKE_RENDERER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let wait_for = |reason: &str| -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(v) if v["reason"] == reason => return v,
                Ok(_) => {}
                Err(e) => panic!("no {reason}: {e}"),
            }
        }
    };
    wait_for("build-finished");
    let sed = std::process::Command::new("sed")
        .args(["-i", "s/0.2/0.3/", "scenes/02_b.py"])
        .current_dir(p.path())
        .status()
        .unwrap();
    assert!(sed.success());
    let change = wait_for("watch-change");
    // SAFETY: ends the watch process this test started, by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    assert_eq!(
        change["paths"],
        serde_json::json!(["scenes/02_b.py"]),
        "{change}"
    );
}

/// In a `SCENE...` build, a scene whose last render failed is not "never
/// rendered".
#[test]
fn failed_scene_outside_a_scene_build_is_not_called_never_rendered() {
    let p = project("");
    p.write(
        "scenes/02_b.py",
        "from manim import *\n\n\nclass B(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.2)\n        raise RuntimeError('boom')\n",
    );
    // The fake renderer does not run construct: render B with real Manim.
    let out = p.parender(&["build", "B"]);
    assert_code(&out, 1);
    let out = p.fake(&["build", "A"]);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(!err.contains("never been rendered"), "{err}");
    assert!(
        err.contains("scenes/02_b.py:B failed when it last rendered"),
        "{err}"
    );
}

/// After `cache gc` evicted a scene's render, `--explain` says so instead of
/// "never built".
#[test]
fn explain_after_gc_says_evicted() {
    let p = project("");
    assert_code(&p.fake(&["build"]), 0);
    let out = p.parender(&["cache", "gc", "--max-size", "1"]);
    assert_code(&out, 0);
    let out = p.fake(&["build", "--explain"]);
    assert_code(&out, 0);
    let err = stderr(&out);
    assert!(!err.contains("never built"), "{err}");
    assert!(err.contains("evicted from the cache"), "{err}");
}

/// Manim 0.22 writes its list of partial movie files unescaped, so a quote in
/// the project's path failed every scene inside PyAV (`av/error.py:354
/// FileNotFoundError '<none>'`); the render driver writes it escaped.
#[test]
fn a_project_path_with_a_quote_renders_with_real_manim() {
    let outer = tempfile::Builder::new()
        .prefix("parender-test-")
        .tempdir()
        .unwrap();
    let root = outer.path().join("it's a talk");
    std::fs::create_dir_all(root.join("scenes")).unwrap();
    std::fs::write(
        root.join("parender.toml"),
        format!("python = {:?}\n", common::python().display().to_string()),
    )
    .unwrap();
    std::fs::write(root.join("scenes/a.py"), scene("A")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
        .args(["build", "--message-format", "json"])
        .current_dir(&root)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_code(&out, 0);
    let video = root.join("out/dev/it's a talk.mp4");
    // FadeIn of 0.2 s at 15 fps: 3 frames.
    assert_eq!(common::av::count_frames(&video), 3, "{}", text(&out));
}
