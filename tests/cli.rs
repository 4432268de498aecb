//! Integration tests: the real binary on temp projects, with real Manim.
mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestProject, run_tool, text};
use serde_json::Value;

fn scene_names(out: &std::process::Output) -> Vec<String> {
    TestProject::json_lines(out)
        .iter()
        .map(|v| v["scene"].as_str().unwrap_or("").to_string())
        .collect()
}

fn finished(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|v| v["reason"] == "scene-finished")
        .collect()
}

fn build_finished(lines: &[Value]) -> &Value {
    lines
        .iter()
        .find(|v| v["reason"] == "build-finished")
        .expect("a build-finished message")
}

fn frames(video: &Path) -> u64 {
    let out = run_tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_packets",
            "-show_entries",
            "stream=nb_read_packets",
            "-of",
            "csv=p=0",
            video.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&out).trim().parse().unwrap()
}

/// Files below `dir`, relative, for "nothing left behind" checks.
fn files_below(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    out
}

const DOT: &str = "Dot()";

fn simple_scene(class: &str, seconds: f64) -> String {
    format!(
        "from manim import *\n\n\nclass {class}(Scene):\n    def construct(self):\n        self.play(FadeIn({DOT}), run_time={seconds})\n"
    )
}

#[test]
fn discovery_is_what_manim_would_render() {
    let p = TestProject::new("");
    p.write(
        "scenes/common.py",
        "from manim import *\n\ndef helper():\n    return Dot()\n\nclass NotAScene:\n    pass\n",
    );
    p.write(
        "scenes/01_many.py",
        r#"from manim import *
from manim import Scene as Aliased
from common import helper

DOC = """
class InString(Scene):
    pass
"""
# class InComment(Scene): pass

class Zeta(Scene):
    def construct(self):
        self.add(helper())

if False:
    class Dead(Scene):
        pass

class Alpha(MovingCameraScene):
    def construct(self):
        pass

class Derived(Zeta):
    pass

class ViaAlias(Aliased):
    pass

class Group(VGroup):
    pass

class Three(ThreeDScene):
    pass
"#,
    );
    p.write(
        "scenes/02_imports_other.py",
        "from manim import *\nimport importlib\nZeta = importlib.import_module('01_many').Zeta\n\nclass Own(Zeta):\n    pass\n",
    );
    let out = p.parender(&["scenes", "--message-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    // Source order within a file (not alphabetical, as `manim -a` would),
    // imported and inherited bases count, strings/comments/dead code do not,
    // helper modules and a scene class imported from another file do not.
    assert_eq!(
        scene_names(&out),
        vec![
            "scenes/01_many.py:Zeta",
            "scenes/01_many.py:Alpha",
            "scenes/01_many.py:Derived",
            "scenes/01_many.py:ViaAlias",
            "scenes/01_many.py:Three",
            "scenes/02_imports_other.py:Own",
        ],
        "{}",
        text(&out)
    );
    // Discovery leaves no bytecode in the project.
    assert!(!p.path().join("scenes/__pycache__").exists());
}

#[test]
fn audio_pairing_and_orphans() {
    let p = TestProject::new("[scene.Override]\naudio = \"voice/take2.wav\"\n");
    p.write("scenes/01_one.py", &simple_scene("One", 0.5));
    p.write(
        "scenes/02_two.py",
        &format!(
            "{}\n\nclass Second(Scene):\n    def construct(self):\n        self.wait(0.2)\n",
            simple_scene("First", 0.5)
        ),
    );
    p.write("scenes/03_over.py", &simple_scene("Override", 0.5));
    p.write("scenes/10_none.py", &simple_scene("Silent", 0.5));
    for f in [
        "audio/01_one.mp3",
        "audio/02_two.First.wav",
        "audio/02_two.Second.flac",
        "audio/03_over.wav",
        "audio/02_two.wav",
        "voice/take2.wav",
    ] {
        p.write(f, "not really audio");
    }
    let out = p.parender(&["scenes", "--message-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = TestProject::json_lines(&out);
    let audio: Vec<(String, Value)> = lines
        .iter()
        .filter(|v| v.get("scene").is_some())
        .map(|v| (v["scene"].as_str().unwrap().to_string(), v["audio"].clone()))
        .collect();
    assert_eq!(
        audio,
        vec![
            (
                "scenes/01_one.py:One".into(),
                Value::from("audio/01_one.mp3")
            ),
            (
                "scenes/02_two.py:First".into(),
                Value::from("audio/02_two.First.wav")
            ),
            (
                "scenes/02_two.py:Second".into(),
                Value::from("audio/02_two.Second.flac")
            ),
            (
                "scenes/03_over.py:Override".into(),
                Value::from("voice/take2.wav")
            ),
            ("scenes/10_none.py:Silent".into(), Value::Null),
        ]
    );
    // `02_two.wav` names a file with several scenes without a class: unused.
    let warnings: Vec<&str> = lines
        .iter()
        .filter(|v| v["reason"] == "warning")
        .map(|v| v["message"].as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("audio/02_two.wav") && w.contains("matches no scene")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("audio/03_over.wav")),
        "an overridden scene's own audio is unused: {warnings:?}"
    );
}

#[test]
fn config_errors_point_at_file_line_and_column() {
    let p = TestProject::new("gap = 0\njbos = 4\n");
    p.write("scenes/a.py", &simple_scene("A", 0.5));
    let out = p.parender(&["scenes"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown key `jbos`"), "{err}");
    assert!(err.contains("parender.toml:3:1"), "{err}");
    assert!(err.contains("did you mean `jobs`?"), "{err}");

    // The same error for scripts.
    let out = p.parender(&["build", "--message-format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let lines = TestProject::json_lines(&out);
    assert_eq!(lines[0]["reason"], "error");
    let location = lines[0]["location"].as_str().unwrap();
    assert!(location.ends_with("/parender.toml:3:1"), "{location}");
    assert_eq!(lines[0]["help"], "did you mean `jobs`?");

    let p = TestProject::new("[profile.release]\nquality = \"ultra\"\n");
    let out = p.parender(&["build"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("parender.toml:3:11"), "{err}");
    assert!(err.contains("ultra"), "{err}");
}

#[test]
fn no_project_and_unknown_scene_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
        .arg("build")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("parender init"));

    let p = TestProject::new("");
    p.write("scenes/a.py", &simple_scene("Alpha", 0.5));
    let out = p.parender(&["build", "Alpah"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `Alpha`?"));
}

#[test]
fn a_failing_scene_leaves_the_others_rendered() {
    let p = TestProject::new("");
    p.write(
        "scenes/common.py",
        "from manim import *\n\n\ndef broken():\n    return undefined_name\n",
    );
    p.write("scenes/01_good.py", &simple_scene("Good", 1.0));
    p.write(
        "scenes/02_bad.py",
        "from manim import *\nfrom common import broken\n\n\nclass Bad(Scene):\n    def construct(self):\n        self.play(FadeIn(Dot()), run_time=0.5)\n        broken()\n",
    );
    p.write("scenes/03_also_good.py", &simple_scene("AlsoGood", 2.0));
    p.write(
        "scenes/04_syntax.py",
        "from manim import *\n\nclass Oops(Scene):\n    def construct(self)\n        pass\n",
    );
    let out = p.parender(&["build", "--message-format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = TestProject::json_lines(&out);
    let fin = finished(&lines);
    let status = |name: &str| {
        fin.iter()
            .find(|v| v["scene"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("no scene-finished for {name}: {}", text(&out)))
    };
    assert_eq!(status("scenes/01_good.py:Good")["status"], "rendered");
    assert_eq!(
        status("scenes/03_also_good.py:AlsoGood")["status"],
        "rendered"
    );
    let bad = status("scenes/02_bad.py:Bad");
    assert_eq!(bad["status"], "failed");
    // The innermost frame in the user's code, not inside Manim.
    assert_eq!(bad["error"]["file"], "scenes/common.py");
    assert_eq!(bad["error"]["line"], 5);
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NameError")
    );
    let syntax = status("scenes/04_syntax.py:Oops");
    assert_eq!(syntax["status"], "failed");
    assert_eq!(syntax["error"]["file"], "scenes/04_syntax.py");
    assert_eq!(syntax["error"]["line"], 4);

    let done = build_finished(&lines);
    assert_eq!(done["success"], false);
    assert_eq!(done["rendered"], 2);
    assert_eq!(done["failed"], 2);
    // The video holds the two good scenes: 1 s + 2 s at 15 fps.
    let video = Path::new(done["output"].as_str().unwrap());
    assert_eq!(frames(video), 45);

    // The human summary names each failure with its file and line.
    let out = p.parender(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2/4 scenes rendered; 02_bad.py:Bad failed (NameError at common.py:5: name 'undefined_name' is not defined); 04_syntax.py:Oops failed (SyntaxError at 04_syntax.py:4: expected ':')"),
        "{err}"
    );
    assert!(err.contains("SyntaxError at 04_syntax.py:4"), "{err}");
    // No Rich traceback boxes in what the user sees.
    assert!(!err.contains('│'), "{err}");

    // --strict: no final video at all.
    std::fs::remove_file(video).unwrap();
    let out = p.parender(&["build", "--strict"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!video.exists());
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let p = TestProject::new("[scene.Hang]\ntimeout = 4\n");
    let pidfile = p.path().join("helper.pid");
    common::write_hanging_scene(&p, "scenes/hang.py", "Hang", &pidfile, false);
    p.write("scenes/ok.py", &simple_scene("Fine", 0.5));
    let start = Instant::now();
    let out = p.parender(&["build", "--message-format", "json"]);
    let took = start.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let lines = TestProject::json_lines(&out);
    let hang = finished(&lines)
        .into_iter()
        .find(|v| v["scene"] == "scenes/hang.py:Hang")
        .expect("hang finished");
    assert_eq!(hang["status"], "failed");
    assert!(
        hang["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out")
    );
    assert!(pidfile.exists(), "the scene started its helper");
    assert!(
        !common::pidfile_alive(&pidfile),
        "the scene's helper process outlived the timeout"
    );
    assert_eq!(build_finished(&lines)["rendered"], 1);
}

#[test]
fn jobs_bound_parallel_renders_and_nothing_is_left_behind() {
    let p = TestProject::new("");
    // Each scene records when its construct ran. The 3 s sleep is long
    // enough that two renders overlap even when Manim's import time varies
    // under load; one at a time is exact either way.
    // Outside the project: the scenes write there, and a project file written
    // by a scene through a computed path is an input of every such scene.
    let spans = tempfile::tempdir().unwrap();
    let log = spans.path().to_path_buf();
    for i in 0..4 {
        p.write(
            &format!("scenes/{i:02}_s.py"),
            &format!(
                "import time, os\nfrom manim import *\n\n\nclass S{i}(Scene):\n    def construct(self):\n        t0 = time.time()\n        time.sleep(3.0)\n        self.play(FadeIn(Dot()), run_time=0.2)\n        open(os.path.join({:?}, 'S{i}'), 'w').write(f'{{t0}} {{time.time()}}')\n",
                log.display().to_string()
            ),
        );
    }
    let max_overlap = || {
        let spans: Vec<(f64, f64)> = (0..4)
            .map(|i| {
                let s = std::fs::read_to_string(log.join(format!("S{i}"))).unwrap();
                let mut it = s.split_whitespace().map(|x| x.parse::<f64>().unwrap());
                (it.next().unwrap(), it.next().unwrap())
            })
            .collect();
        spans
            .iter()
            .map(|(a, _)| spans.iter().filter(|(s, e)| s <= a && a < e).count())
            .max()
            .unwrap()
    };
    let before = files_below(p.path());
    let out = p.parender(&["build", "--jobs", "2", "--message-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(max_overlap(), 2, "two renders at once with --jobs 2");
    let lines = TestProject::json_lines(&out);
    let started = lines
        .iter()
        .find(|v| v["reason"] == "build-started")
        .unwrap();
    assert_eq!(started["jobs"], 2);
    assert_eq!(started["scenes"], 4);

    // Nothing temporary is left: only the cache, the video and the logs.
    let tmp = p.path().join(".parender/tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp files left in {tmp:?}"
    );
    let after = files_below(p.path());
    let new: Vec<&String> = after
        .difference(&before)
        .filter(|f| !f.starts_with(".parender"))
        .collect();
    assert!(
        new.iter().all(|f| f.starts_with("out")),
        "unexpected files in the project: {new:?}"
    );
    assert!(new.iter().any(|f| f.ends_with(".mp4")));

    // --jobs 1: one at a time, and a second build renders nothing.
    for i in 0..4 {
        p.write(
            &format!("scenes/{i:02}_s.py"),
            &std::fs::read_to_string(p.path().join(format!("scenes/{i:02}_s.py")))
                .unwrap()
                .replace("3.0", "1.0"),
        );
    }
    let out = p.parender(&["build", "--jobs", "1", "--message-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(max_overlap(), 1);
    let out = p.parender(&["build", "--message-format", "json"]);
    let lines = TestProject::json_lines(&out);
    assert_eq!(build_finished(&lines)["cached"], 4);
    assert_eq!(build_finished(&lines)["rendered"], 0);
}

#[test]
fn init_makes_a_project_that_lists_its_scene() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
        .args(["init", "talk"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let root = dir.path().join("talk");
    // Point the new project at the test Python, keeping its commented config.
    let cfg = std::fs::read_to_string(root.join("parender.toml")).unwrap();
    std::fs::write(
        root.join("parender.toml"),
        format!(
            "python = {:?}\n{cfg}",
            common::python().display().to_string()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
        .args(["scenes", "--message-format", "json"])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(scene_names(&out), vec!["scenes/01_intro.py:Intro"]);
}

#[test]
fn ctrl_c_stops_renders_and_leaves_no_temporary_files() {
    use std::io::{BufRead, BufReader};
    let p = TestProject::new("");
    let pidfile = p.path().join("helper.pid");
    common::write_hanging_scene(&p, "scenes/hang.py", "Hang", &pidfile, true);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
        .args(["build", "--message-format", "json"])
        .current_dir(p.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Wait (bounded) for the render to be under way and its helper running.
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.by_ref() {
        if line.unwrap().contains("scene-started") {
            break;
        }
    }
    while !pidfile.exists() {
        assert!(
            Instant::now() < deadline,
            "the scene never started its helper"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let tmp = p.path().join(".parender/tmp");
    assert!(
        std::fs::read_dir(&tmp).unwrap().count() > 0,
        "a render is in progress"
    );
    let pid = child.id().to_string();
    run_tool("kill", &["-INT", &pid]);
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "parender did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !common::pidfile_alive(&pidfile),
        "the scene's helper outlived Ctrl-C"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp files left in {tmp:?}"
    );
    assert!(
        !p.path().join("out").exists(),
        "no video from an interrupted build"
    );
}

/// `parender completions SHELL` prints a script made from the real command
/// line: it completes subcommands and their flags.
#[test]
fn completions_cover_the_commands_and_their_flags() {
    let run = |shell: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
            .args(["completions", shell])
            .output()
            .expect("run parender");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).expect("UTF-8 script")
    };
    let bash = run("bash");
    assert!(bash.contains("complete -F _parender"), "{bash}");
    for word in ["build", "watch", "doctor", "--release", "--jobs"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = run("zsh");
    assert!(zsh.starts_with("#compdef parender"), "{zsh}");
    assert!(zsh.contains("--release"));
    let fish = run("fish");
    assert!(fish.contains("complete -c parender"), "{fish}");
    assert!(fish.contains("release"));
    // An unknown shell is a usage error that lists the known ones.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
        .args(["completions", "tcsh"])
        .output()
        .expect("run parender");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash"));
}

/// `parender man` prints parender(1) in roff, listing the subcommands;
/// `parender man build` prints parender-build(1) with its flags.
#[test]
fn man_pages_for_the_command_and_its_subcommands() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_parender"))
            .args(args)
            .output()
            .expect("run parender")
    };
    let out = run(&["man"]);
    assert!(out.status.success(), "{}", text(&out));
    let page = String::from_utf8(out.stdout).expect("UTF-8 page");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        page.contains(&format!(".TH parender 1  \"parender {version}\"")),
        "{page}"
    );
    for sub in [
        "parender\\-build(1)",
        "parender\\-watch(1)",
        "parender\\-doctor(1)",
    ] {
        assert!(page.contains(sub), "parender(1) lacks {sub}:\n{page}");
    }
    let out = run(&["man", "build"]);
    assert!(out.status.success(), "{}", text(&out));
    let page = String::from_utf8(out.stdout).expect("UTF-8 page");
    assert!(
        page.contains(&format!(".TH parender-build 1  \"parender {version}\"")),
        "{page}"
    );
    assert!(page.contains("\\-\\-release"), "{page}");
    let out = run(&["man", "cache", "gc"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH parender-cache-gc 1"));
    // A subcommand that does not exist: a usage error naming the real ones.
    let out = run(&["man", "bild"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no subcommand `bild`") && err.contains("build"),
        "{err}"
    );
}
