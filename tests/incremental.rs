//! Incremental builds with the fast fake renderer (`PARENDER_FAKE_RENDERER=1`,
//! which renders a colour derived from the scene's key): exactly the scenes
//! whose inputs changed re-render, and every incremental build equals a
//! clean build of the same project.
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::{TestProject, media_md5, run_tool, text};

/// A tiny deterministic generator (xorshift64*), seeded from
/// `PARENDER_PROPTEST_SEED` (printed on failure) so a failing sequence replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Debug, Clone)]
struct SceneModel {
    file: String,
    class: String,
    version: u32,
    uses_a: bool,
    uses_b: bool,
    uses_asset: bool,
    audio: Option<u32>,
}

/// The test's own model of the project and of what each scene depends on.
#[derive(Debug, Clone)]
struct Model {
    scenes: Vec<SceneModel>,
    helper_a: u32,
    helper_b: u32,
    asset: u32,
    cfg: u32,
    quality: &'static str,
    next_id: u32,
}

impl Model {
    /// Everything that can change a scene's pixels, as the model sees it.
    /// helpers_a imports helpers_b, so users of a depend on b too.
    fn state(&self, s: &SceneModel) -> String {
        format!(
            "{} v{} a{} b{} asset{} cfg{} q{}",
            s.file,
            s.version,
            if s.uses_a { self.helper_a as i64 } else { -1 },
            if s.uses_a || s.uses_b {
                self.helper_b as i64
            } else {
                -1
            },
            if s.uses_asset { self.asset as i64 } else { -1 },
            self.cfg,
            self.quality
        )
    }

    fn write(&self, p: &TestProject) {
        p.write(
            "scenes/helpers_a.py",
            &format!(
                "from helpers_b import B_VALUE\n\nA_VALUE = {}\n",
                self.helper_a
            ),
        );
        p.write(
            "scenes/helpers_b.py",
            &format!("B_VALUE = {}\n", self.helper_b),
        );
        p.write(
            "assets/logo.svg",
            &format!("<svg><!-- {} --></svg>\n", self.asset),
        );
        p.write("manim.cfg", &format!("[CLI]\n# version {}\n", self.cfg));
    }

    fn write_scene(&self, p: &TestProject, s: &SceneModel) {
        let mut src = String::from("from manim import *\n");
        if s.uses_a {
            src.push_str("from helpers_a import A_VALUE\n");
        }
        if s.uses_b {
            src.push_str("import helpers_b\n");
        }
        if s.uses_asset {
            src.push_str("LOGO = \"assets/logo.svg\"\n");
        }
        src.push_str(&format!(
            "\n# version {}\n\n\nclass {}(Scene):\n    def construct(self):\n        self.wait(0.2)\n",
            s.version, s.class
        ));
        p.write(&s.file, &src);
    }

    fn write_audio(&self, p: &TestProject, s: &SceneModel) {
        let stem = s.file.trim_start_matches("scenes/").trim_end_matches(".py");
        let path = p.path().join(format!("audio/{stem}.wav"));
        match s.audio {
            Some(n) => {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                let secs = format!("{:.2}", 0.3 + 0.1 * n as f64);
                run_tool(
                    "sox",
                    &[
                        "-n",
                        "-r",
                        "48000",
                        "-c",
                        "1",
                        path.to_str().unwrap(),
                        "synth",
                        &secs,
                        "sine",
                        "440",
                    ],
                );
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    fn new_scene(&mut self, rng: &mut Rng) -> SceneModel {
        self.next_id += 1;
        let id = self.next_id;
        SceneModel {
            file: format!("scenes/{id:02}_s{id}.py"),
            class: format!("S{id}"),
            version: 0,
            uses_a: rng.below(2) == 0,
            uses_b: rng.below(3) == 0,
            uses_asset: rng.below(3) == 0,
            audio: (rng.below(3) != 0).then_some(0),
        }
    }

    fn id(s: &SceneModel) -> String {
        format!("{}:{}", s.file, s.class)
    }
}

/// `n` one-class scene files `scenes/<i>_s.py` (class `S<i>`).
fn write_simple_scenes(p: &TestProject, n: usize) {
    for i in 0..n {
        p.write(
            &format!("scenes/{i}_s.py"),
            &format!("from manim import *\n\n\nclass S{i}(Scene):\n    def construct(self):\n        self.wait(0.2)\n"),
        );
    }
}

fn build(p: &TestProject, quality: &str) -> std::process::Output {
    let out = p.fake(&["build", "--quality", quality, "--message-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    out
}

fn output_of(out: &std::process::Output) -> String {
    TestProject::json_lines(out)
        .iter()
        .find(|v| v["reason"] == "build-finished")
        .and_then(|v| v["output"].as_str().map(str::to_string))
        .expect("an output")
}

/// A copy of the project's sources in a fresh folder: no cache, no outputs.
fn clean_copy(p: &TestProject) -> TestProject {
    let q = TestProject::new("");
    for dir in ["scenes", "assets", "audio"] {
        let from = p.path().join(dir);
        if from.exists() {
            run_tool(
                "cp",
                &["-r", from.to_str().unwrap(), q.path().to_str().unwrap()],
            );
        }
    }
    if p.path().join("manim.cfg").exists() {
        std::fs::copy(p.path().join("manim.cfg"), q.path().join("manim.cfg")).unwrap();
    }
    std::fs::copy(
        p.path().join("parender.toml"),
        q.path().join("parender.toml"),
    )
    .unwrap();
    q
}

#[test]
fn random_edits_rebuild_exactly_what_changed() {
    let seed: u64 = std::env::var("PARENDER_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd);
    let steps: usize = std::env::var("PARENDER_PROPTEST_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    let mut rng = Rng(seed | 1);
    let p = TestProject::new("");
    let mut m = Model {
        scenes: Vec::new(),
        helper_a: 0,
        helper_b: 0,
        asset: 0,
        cfg: 0,
        quality: "l",
        next_id: 0,
    };
    for _ in 0..4 {
        let s = m.new_scene(&mut rng);
        m.scenes.push(s);
    }
    // The first scene always uses helpers_a, the second the asset.
    m.scenes[0].uses_a = true;
    m.scenes[1].uses_asset = true;
    m.write(&p);
    for s in &m.scenes {
        m.write_scene(&p, s);
        m.write_audio(&p, s);
    }
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut log = Vec::new();
    for step in 0..=steps {
        let what = if step == 0 { 99 } else { rng.below(11) };
        let n = m.scenes.len();
        let desc = match what {
            0 => {
                let i = rng.below(n);
                m.scenes[i].version += 1;
                m.write_scene(&p, &m.scenes[i]);
                format!("edit {}", m.scenes[i].file)
            }
            1 => {
                m.helper_a += 1;
                m.write(&p);
                "edit helpers_a.py".into()
            }
            2 => {
                m.helper_b += 1;
                m.write(&p);
                "edit helpers_b.py (imported by helpers_a)".into()
            }
            3 => {
                let i = rng.below(n);
                let path = p.path().join(&m.scenes[i].file);
                let same = std::fs::read(&path).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
                std::fs::write(&path, same).unwrap();
                format!("touch {} without change", m.scenes[i].file)
            }
            4 => {
                let s = m.new_scene(&mut rng);
                m.write_scene(&p, &s);
                m.write_audio(&p, &s);
                let d = format!("add {}", s.file);
                m.scenes.push(s);
                d
            }
            5 if n > 2 => {
                let i = rng.below(n);
                let mut s = m.scenes.remove(i);
                std::fs::remove_file(p.path().join(&s.file)).unwrap();
                s.audio = None;
                m.write_audio(&p, &s);
                format!("remove {}", s.file)
            }
            6 => {
                let i = rng.below(n);
                let old = m.scenes[i].clone();
                m.next_id += 1;
                let id = m.next_id;
                m.scenes[i].file = format!("scenes/{id:02}_renamed.py");
                std::fs::rename(p.path().join(&old.file), p.path().join(&m.scenes[i].file))
                    .unwrap();
                let mut gone = old.clone();
                gone.audio = None;
                m.write_audio(&p, &gone);
                m.write_audio(&p, &m.scenes[i]);
                format!("rename {} -> {}", old.file, m.scenes[i].file)
            }
            7 => {
                let i = rng.below(n);
                m.scenes[i].audio = Some(m.scenes[i].audio.unwrap_or(0) + 1);
                m.write_audio(&p, &m.scenes[i]);
                format!("change audio of {}", m.scenes[i].file)
            }
            8 => {
                let i = rng.below(n);
                m.scenes[i].audio = None;
                m.write_audio(&p, &m.scenes[i]);
                format!("remove audio of {}", m.scenes[i].file)
            }
            9 => {
                m.quality = if m.quality == "l" { "m" } else { "l" };
                format!("quality -> {}", m.quality)
            }
            10 => {
                m.cfg += 1;
                m.write(&p);
                "edit manim.cfg".into()
            }
            _ if step == 0 => "first build".into(),
            _ => {
                m.asset += 1;
                m.write(&p);
                "edit assets/logo.svg".into()
            }
        };
        log.push(desc.clone());
        // Scenes whose model state was never rendered must render; no other.
        let mut expected = BTreeSet::new();
        for s in &m.scenes {
            if seen.insert(m.state(s)) {
                expected.insert(Model::id(s));
            }
        }
        let out = build(&p, m.quality);
        let rendered = TestProject::scenes_with(&out, "rendered");
        assert_eq!(
            rendered,
            expected,
            "seed {seed}, step {step} ({desc}); steps so far: {log:?}\n{}",
            text(&out)
        );
        // The same project built from scratch gives the same video.
        let fresh = clean_copy(&p);
        let clean = build(&fresh, m.quality);
        assert_eq!(
            TestProject::scenes_with(&clean, "rendered").len(),
            m.scenes.len()
        );
        assert_eq!(
            media_md5(Path::new(&output_of(&out))),
            media_md5(Path::new(&output_of(&clean))),
            "seed {seed}, step {step} ({desc}): incremental != clean; steps: {log:?}"
        );
    }
}

#[test]
fn explain_status_and_reasons() {
    let p = TestProject::new("");
    p.write("scenes/common.py", "COLOR = 1\n");
    p.write("assets/data.txt", "1 2 3\n");
    p.write(
        "scenes/01_a.py",
        "from manim import *\nfrom common import COLOR\n\n\nclass A(Scene):\n    def construct(self):\n        self.wait(0.2)\n",
    );
    p.write(
        "scenes/02_b.py",
        "from manim import *\nDATA = 'assets/data.txt'\n\n\nclass B(Scene):\n    def construct(self):\n        self.wait(0.2)\n",
    );
    p.write(
        "scenes/03_dyn.py",
        "from manim import *\nimport importlib\nmod = importlib.import_module(NAME) if False else None\n\n\nclass Dyn(Scene):\n    def construct(self):\n        self.wait(0.2)\n",
    );
    let why = |out: &std::process::Output| -> BTreeMap<String, Vec<String>> {
        TestProject::json_lines(out)
            .iter()
            .filter(|v| v["reason"] == "scene-finished")
            .map(|v| {
                (
                    v["scene"].as_str().unwrap().to_string(),
                    v["why"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|w| w.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    let out = p.fake(&["build", "--message-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(why(&out)["scenes/01_a.py:A"], vec!["never built"]);

    // No-op: everything reused, nothing stitched again.
    let out = p.fake(&["build", "--explain"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scenes/01_a.py:A (reused: no input changed)"),
        "{err}"
    );
    assert!(err.contains("(nothing changed)"), "{err}");

    // A shared module: exactly its importer. An asset: exactly its user.
    // The scene with a dynamic import depends on every project file.
    p.write("scenes/common.py", "COLOR = 2\n");
    p.write("assets/data.txt", "4 5 6\n");
    let out = p.fake(&["build", "--message-format", "json"]);
    let w = why(&out);
    assert_eq!(w["scenes/01_a.py:A"], vec!["scenes/common.py changed"]);
    assert_eq!(w["scenes/02_b.py:B"], vec!["assets/data.txt changed"]);
    assert_eq!(
        TestProject::scenes_with(&out, "rendered"),
        [
            "scenes/01_a.py:A",
            "scenes/02_b.py:B",
            "scenes/03_dyn.py:Dyn"
        ]
        .map(String::from)
        .into()
    );
    assert!(w["scenes/03_dyn.py:Dyn"].contains(&"scenes/common.py changed".to_string()));

    // Status: fresh, then stale with the reason, without rendering.
    let out = p.fake(&["status", "--message-format", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    p.write("scenes/common.py", "COLOR = 3\n");
    let out = p.fake(&["status", "--message-format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = TestProject::json_lines(&out);
    let a = lines
        .iter()
        .find(|v| v["scene"] == "scenes/01_a.py:A")
        .unwrap();
    assert_eq!(a["status"], "stale");
    assert_eq!(a["why"][0], "scenes/common.py changed");
    let b = lines
        .iter()
        .find(|v| v["scene"] == "scenes/02_b.py:B")
        .unwrap();
    assert_eq!(b["status"], "fresh");
    let out = p.fake(&["status", "--release"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("quality changed low -> high"),
        "{}",
        text(&out)
    );

    // cache_salt invalidates everything on purpose.
    let cfg = std::fs::read_to_string(p.path().join("parender.toml")).unwrap();
    p.write("parender.toml", &format!("{cfg}cache_salt = \"v2\"\n"));
    let out = p.fake(&["build", "--message-format", "json"]);
    let w = why(&out);
    assert_eq!(w["scenes/02_b.py:B"], vec!["cache_salt changed"]);

    // A failure is shown by status until the scene renders again.
    p.write(
        "scenes/02_b.py",
        "from manim import *\nDATA = 'assets/data.txt'\n\n\nclass B(Scene):\n    def construct(self):\n        self.wait(0.2)  # parender-fake: fail\n",
    );
    let out = p.fake(&["build"]);
    assert_eq!(out.status.code(), Some(1));
    let out = p.fake(&["status"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("failed  scenes/02_b.py:B (RuntimeError at 02_b.py:7: fake failure)"),
        "{s}"
    );
}

#[test]
fn audio_changes_remux_without_rendering() {
    let p = TestProject::new("");
    p.write(
        "scenes/01_a.py",
        "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        self.wait(0.2)\n",
    );
    std::fs::create_dir_all(p.path().join("audio")).unwrap();
    let wav = p.path().join("audio/01_a.wav");
    let sox = |secs: &str| {
        run_tool(
            "sox",
            &[
                "-n",
                "-r",
                "48000",
                "-c",
                "1",
                wav.to_str().unwrap(),
                "synth",
                secs,
                "sine",
                "440",
            ],
        );
    };
    sox("2");
    let out = build(&p, "l");
    let first = TestProject::json_lines(&out).last().unwrap()["duration"]
        .as_f64()
        .unwrap();
    assert_eq!(first, 2.0);
    sox("3");
    let out = build(&p, "l");
    assert!(
        TestProject::scenes_with(&out, "rendered").is_empty(),
        "{}",
        text(&out)
    );
    let second = TestProject::json_lines(&out).last().unwrap()["duration"]
        .as_f64()
        .unwrap();
    assert_eq!(second, 3.0);
}

#[test]
fn corrupt_and_truncated_cache_objects_are_rendered_again() {
    let p = TestProject::new("");
    for c in ["A", "B"] {
        p.write(
            &format!("scenes/{c}.py"),
            &format!("from manim import *\n\n\nclass {c}(Scene):\n    def construct(self):\n        self.wait(0.2)\n"),
        );
    }
    let out = build(&p, "l");
    let good = media_md5(Path::new(&output_of(&out)));
    let objects: Vec<_> = std::fs::read_dir(p.path().join(".parender/cache/objects"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(objects.len(), 2);
    // Flip bytes in one (same size), truncate the other.
    let mut bytes = std::fs::read(&objects[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&objects[0], &bytes).unwrap();
    let len = std::fs::metadata(&objects[1]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&objects[1])
        .unwrap()
        .set_len(len / 3)
        .unwrap();
    let out = build(&p, "l");
    assert_eq!(
        TestProject::scenes_with(&out, "rendered").len(),
        2,
        "{}",
        text(&out)
    );
    let warnings: Vec<String> = TestProject::json_lines(&out)
        .iter()
        .filter(|v| v["reason"] == "warning")
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        warnings.iter().filter(|w| w.contains("corrupt")).count(),
        2,
        "{warnings:?}"
    );
    assert_eq!(media_md5(Path::new(&output_of(&out))), good);
}

#[test]
fn kill_9_at_random_moments_never_leaves_a_corrupt_cache() {
    let p = TestProject::new("");
    write_simple_scenes(&p, 4);
    // Kill a build at moments spread over its run: during discovery,
    // renders, cache writes, muxing and stitching.
    let mut rng = Rng(0xdead_beef);
    for round in 0..8 {
        let mut child = p
            .command(&["build", "--message-format", "json"])
            .env("PARENDER_FAKE_RENDERER", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait = 100 + rng.below(1500) as u64;
        std::thread::sleep(std::time::Duration::from_millis(wait));
        let _ = child.kill();
        let _ = child.wait();
        // Edit a scene between rounds so there is always work to interrupt.
        let f = format!("scenes/{}_s.py", round % 4);
        let src = std::fs::read_to_string(p.path().join(&f)).unwrap();
        p.write(&f, &format!("{src}# round {round}\n"));
    }
    let out = build(&p, "l");
    let warnings: Vec<String> = TestProject::json_lines(&out)
        .iter()
        .filter(|v| v["reason"] == "warning")
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    assert!(
        warnings.is_empty(),
        "a killed build left damage: {warnings:?}"
    );
    let fresh = clean_copy(&p);
    let clean = build(&fresh, "l");
    assert_eq!(
        media_md5(Path::new(&output_of(&out))),
        media_md5(Path::new(&output_of(&clean)))
    );
}

#[test]
fn two_builds_at_once_render_each_scene_once() {
    let p = TestProject::new("");
    write_simple_scenes(&p, 4);
    // Discovery first, so both builds reach the renders together.
    assert!(p.fake(&["scenes"]).status.success());
    let spawn = || {
        p.command(&["build", "--jobs", "2", "--message-format", "json"])
            .env("PARENDER_FAKE_RENDERER", "1")
            .env("PARENDER_FAKE_RENDER_SECONDS", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    let rendered_a = TestProject::scenes_with(&a, "rendered");
    let rendered_b = TestProject::scenes_with(&b, "rendered");
    assert!(
        rendered_a.is_disjoint(&rendered_b),
        "{rendered_a:?} {rendered_b:?}"
    );
    assert_eq!(rendered_a.len() + rendered_b.len(), 4);
    assert_eq!(
        media_md5(Path::new(&output_of(&a))),
        media_md5(Path::new(&output_of(&b)))
    );
}

#[test]
fn an_edit_during_a_render_is_not_stored_under_the_new_key() {
    let p = TestProject::new("");
    p.write("scenes/common.py", "X = 1\n");
    p.write(
        "scenes/a.py",
        "from manim import *\nfrom common import X\n\n\nclass A(Scene):\n    def construct(self):\n        self.wait(0.2)\n",
    );
    assert!(p.fake(&["scenes"]).status.success());
    let child = p
        .command(&["build", "--message-format", "json"])
        .env("PARENDER_FAKE_RENDERER", "1")
        .env("PARENDER_FAKE_RENDER_SECONDS", "2")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    p.write("scenes/common.py", "X = 2\n");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(
            "its inputs changed during the render (scenes/common.py changed); rendering it again"
        ),
        "{}",
        text(&out)
    );
    // What is cached is the render of the new content: a rebuild is a no-op
    // and equals a clean build.
    let again = build(&p, "l");
    assert!(TestProject::scenes_with(&again, "rendered").is_empty());
    let fresh = clean_copy(&p);
    let clean = build(&fresh, "l");
    assert_eq!(
        media_md5(Path::new(&output_of(&again))),
        media_md5(Path::new(&output_of(&clean)))
    );
}

#[test]
fn cache_stats_gc_and_clean() {
    let p = TestProject::new("");
    p.write(
        "scenes/a.py",
        "from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        self.wait(0.2)\n",
    );
    p.write("notes.txt", "mine");
    build(&p, "l");
    build(&p, "m");
    build(&p, "l");
    let out = p.fake(&["cache", "stats"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("entries:    2 renders"), "{s}");
    assert!(
        s.contains("hit rate:   33% over the last 3 builds (1 cached, 2 rendered)"),
        "{s}"
    );
    let out = p.fake(&["cache", "gc", "--max-size", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 2 entries"));
    let out = build(&p, "l");
    assert_eq!(TestProject::scenes_with(&out, "rendered").len(), 1);

    let out = p.fake(&["clean"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!p.path().join(".parender").exists());
    assert!(!p.path().join("out").exists());
    for kept in ["parender.toml", "scenes/a.py", "notes.txt"] {
        assert!(p.path().join(kept).exists(), "clean removed {kept}");
    }
}

/// The short version with real Manim: after edits to a shared module and
/// to a scene (Manim's own per-animation cache in play), every scene's
/// decoded frames equal those of a clean build.
#[test]
fn real_manim_incremental_equals_clean() {
    let p = TestProject::new("");
    let write_common = |radius: &str| {
        p.write("scenes/common.py", &format!("from manim import *\n\n\ndef dot():\n    return Dot(radius={radius}, color=YELLOW)\n"));
    };
    write_common("0.2");
    p.write(
        "scenes/01_uses.py",
        "from manim import *\nfrom common import dot\n\n\nclass Uses(Scene):\n    def construct(self):\n        self.play(FadeIn(dot()), run_time=0.5)\n        self.play(Circumscribe(Square()), run_time=0.5)\n",
    );
    let own = |side: &str| {
        format!(
            "from manim import *\n\n\nclass Own(Scene):\n    def construct(self):\n        self.play(Create(Square(side_length={side})), run_time=0.5)\n        self.play(Rotate(Triangle(), PI / 3), run_time=0.5)\n"
        )
    };
    p.write("scenes/02_own.py", &own("2"));
    let frames = |video: &str| -> Vec<String> {
        let out = run_tool(
            "ffmpeg",
            &[
                "-v", "error", "-i", video, "-map", "0:v", "-f", "framemd5", "-",
            ],
        );
        String::from_utf8_lossy(&out)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit(',').next().unwrap_or("").trim().to_string())
            .collect()
    };
    let real = |q: &TestProject| {
        let out = q.parender(&["build", "--message-format", "json"]);
        assert!(out.status.success(), "{}", text(&out));
        out
    };
    let first = real(&p);
    assert_eq!(TestProject::scenes_with(&first, "rendered").len(), 2);
    for (step, edit) in ["shared module", "scene", "touch"].iter().enumerate() {
        match *edit {
            "shared module" => write_common("0.4"),
            "scene" => {
                p.write("scenes/02_own.py", &own("3"));
            }
            _ => {
                let f = p.path().join("scenes/01_uses.py");
                let same = std::fs::read(&f).unwrap();
                std::fs::write(&f, same).unwrap();
            }
        }
        let out = real(&p);
        let expected: BTreeSet<String> = match *edit {
            "shared module" => ["scenes/01_uses.py:Uses".to_string()].into(),
            "scene" => ["scenes/02_own.py:Own".to_string()].into(),
            _ => BTreeSet::new(),
        };
        assert_eq!(
            TestProject::scenes_with(&out, "rendered"),
            expected,
            "step {step}: {edit}"
        );
        let fresh = clean_copy(&p);
        let clean = real(&fresh);
        assert_eq!(
            frames(&output_of(&out)),
            frames(&output_of(&clean)),
            "step {step} ({edit}): incremental frames differ from a clean build"
        );
    }
}
