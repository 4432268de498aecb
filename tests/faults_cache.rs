//! Faults around the cache, the mux and the stitch (issue 8): `cache gc`
//! racing a build, `kill -9` and Ctrl-C/SIGTERM during mux and stitch, bad
//! narration files, the final video's mode. The fake renderer stands in for
//! Manim (the point here is what happens around renders); ffmpeg is real.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestProject, run_tool, text};

/// `n` one-class scene files `scenes/<i>_s.py` (class `S<i>`).
fn write_scenes(p: &TestProject, n: usize) {
    for i in 0..n {
        p.write(
            &format!("scenes/{i}_s.py"),
            &format!(
                "from manim import *\n\n\nclass S{i}(Scene):\n    def construct(self):\n        self.wait(0.2)\n"
            ),
        );
    }
}

/// A narration of `secs` seconds for `scenes/<stem>.py`: a tone, 48 kHz.
fn write_narration(p: &TestProject, stem: &str, secs: f64, freq: u32) -> PathBuf {
    let wav = p.path().join(format!("audio/{stem}.wav"));
    common::av::sox_tone(&wav, common::av::MONO_48K, secs, freq, 0.3, 0.0);
    wav
}

/// Discovery once, so the builds below reach renders, mux and stitch fast.
fn discover(p: &TestProject) {
    let out = p.fake(&["scenes"]);
    assert!(out.status.success(), "{}", text(&out));
}

fn spawn_build(p: &TestProject, envs: &[(&str, &str)]) -> Child {
    let mut c = p.command(&["build", "--message-format", "json"]);
    c.env("PARENDER_FAKE_RENDERER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.spawn().expect("spawn parender")
}

/// Files (and folders) below `dir` whose names `pred` accepts.
fn find(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            if pred(&e.file_name().to_string_lossy()) {
                found.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    found
}

fn partials(p: &TestProject) -> Vec<PathBuf> {
    find(&p.path().join("out"), &|n: &str| n.ends_with(".partial"))
}

fn cache_temps(p: &TestProject) -> Vec<PathBuf> {
    find(&p.path().join(".parender/cache"), &|n: &str| {
        n.starts_with(".tmp-")
    })
}

/// Polls until `cond` holds (true) or `child` exits or `limit` passes (false).
fn wait_for(child: &mut Child, limit: Duration, cond: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        if child.try_wait().expect("try_wait").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on the pid of our own child process.
    let r = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(r, 0, "kill failed");
}

fn warnings(out: &Output) -> Vec<String> {
    TestProject::json_lines(out)
        .iter()
        .filter(|v| v["reason"] == "warning")
        .map(|v| v["message"].as_str().unwrap_or("").to_string())
        .collect()
}

fn output_of(out: &Output) -> PathBuf {
    TestProject::json_lines(out)
        .iter()
        .find(|v| v["reason"] == "build-finished")
        .and_then(|v| v["output"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("no output:\n{}", text(out)))
}

/// (inode, mtime, size, md5 of the bytes) of a file: "the same file".
fn identity(path: &Path) -> (u64, std::time::SystemTime, u64, Vec<u8>) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).expect("output exists");
    let md5 = run_tool("md5sum", &[path.to_str().unwrap()]);
    (m.ino(), m.modified().unwrap(), m.len(), md5)
}

fn assert_clean_build(p: &TestProject) -> Output {
    let out = p.fake(&["build", "--message-format", "json"]);
    TestProject::successful_build(&out);
    out
}

/// Bug 3: `cache gc --max-size 1` in a loop during a build deleted a
/// just-rendered object before its mux. gc now waits for the build.
#[test]
fn gc_looping_during_a_build_never_breaks_it() {
    let p = TestProject::new("");
    write_scenes(&p, 5);
    for i in [0, 2] {
        write_narration(&p, &format!("{i}_s"), 2.5, 440);
    }
    discover(&p);
    let mut build = spawn_build(&p, &[("PARENDER_FAKE_RENDER_SECONDS", "0.3")]);
    let mut gcs = 0;
    let mut waited = 0;
    while build.try_wait().unwrap().is_none() {
        let gc = p.fake(&["cache", "gc", "--max-size", "1"]);
        assert!(gc.status.success(), "{}", text(&gc));
        gcs += 1;
        if String::from_utf8_lossy(&gc.stderr).contains("waiting for the builds using the cache") {
            waited += 1;
        }
    }
    let out = build.wait_with_output().unwrap();
    TestProject::successful_build(&out);
    assert!(gcs >= 1);
    assert!(waited >= 1, "no gc waited for the build");
    let frames = common::av::count_frames(&output_of(&out));
    assert!(frames >= 5 * 15, "{frames} frames");
    // With no build running, gc trims everything: entries and muxes.
    let gc = p.fake(&["cache", "gc", "--max-size", "1"]);
    let said = String::from_utf8_lossy(&gc.stdout).to_string();
    assert!(!said.contains("waiting"), "{said}");
    let again = assert_clean_build(&p);
    assert_eq!(TestProject::scenes_with(&again, "rendered").len(), 5);
}

/// Bug 4: `kill -9` during the mux or the stitch left
/// `.parender/cache/mux/.tmp-XXXX` and `out/dev/.NAME.mp4.XXXX.partial`
/// (and an orphan ffmpeg) that nothing removed.
#[test]
fn kill_9_during_mux_and_stitch_then_a_new_build_leaves_no_partial_or_tmp() {
    let p = TestProject::new("");
    write_scenes(&p, 2);
    // Long enough that the mux (held frames, FLAC) and the stitch (one AAC
    // encode of the whole track) take seconds.
    write_narration(&p, "0_s", 90.0, 440);
    write_narration(&p, "1_s", 90.0, 660);
    discover(&p);

    // Killed during a mux.
    let mut child = spawn_build(&p, &[]);
    let mux_dir = p.path().join(".parender/cache/mux");
    let in_mux = wait_for(&mut child, Duration::from_secs(60), || {
        find(&mux_dir, &|n: &str| n.starts_with(".tmp-")).len() == 1
    });
    assert!(in_mux, "no mux seen in progress");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!cache_temps(&p).is_empty(), "the kill left no temp folder");

    // Killed during the stitch (both muxes are cached by now or redone).
    let mut child = spawn_build(&p, &[]);
    let in_stitch = wait_for(&mut child, Duration::from_secs(120), || {
        partials(&p).iter().any(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            name.contains(".mp4.") && std::fs::metadata(f).is_ok_and(|m| m.len() > 0)
        })
    });
    assert!(in_stitch, "no stitch seen in progress");
    child.kill().unwrap();
    child.wait().unwrap();
    let left = partials(&p);
    assert!(!left.is_empty(), "the kill left no partial video");
    // `cache gc` removes them (without evicting anything)...
    let saved: Vec<(PathBuf, Vec<u8>)> = left
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).unwrap()))
        .collect();
    let gc = p.fake(&["cache", "gc", "--max-size", "100GB"]);
    assert!(gc.status.success(), "{}", text(&gc));
    let said = String::from_utf8_lossy(&gc.stdout).to_string();
    assert!(said.starts_with("removed 0 entries, 0 muxes"), "{said}");
    assert_eq!(partials(&p), Vec::<PathBuf>::new(), "{said}");
    // ... and so does the next build (the same files, put back).
    for (f, bytes) in &saved {
        std::fs::write(f, bytes).unwrap();
    }

    let out = assert_clean_build(&p);
    assert!(warnings(&out).is_empty(), "{:?}", warnings(&out));
    assert_eq!(partials(&p), Vec::<PathBuf>::new());
    assert_eq!(cache_temps(&p), Vec::<PathBuf>::new());
    assert_eq!(
        find(&p.path().join(".parender/tmp"), &|n: &str| n
            .starts_with("build-")),
        Vec::<PathBuf>::new()
    );
    let frames = common::av::count_frames(&output_of(&out));
    assert_eq!(frames, 2 * 90 * 15);
}

/// Bug 5: the mux cache kept 10 MB of PCM per minute of narration and gc
/// never touched it. It keeps FLAC now, and gc trims it with the rest.
#[test]
fn gc_bounds_the_mux_cache() {
    let p = TestProject::new("");
    write_scenes(&p, 2);
    write_narration(&p, "0_s", 60.0, 440);
    write_narration(&p, "1_s", 30.0, 660);
    let out = assert_clean_build(&p);
    let mux = p.path().join(".parender/cache/mux");
    let size = |dir: &Path| -> u64 {
        find(dir, &|_: &str| true)
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    };
    assert!(
        find(&mux, &|n: &str| n.ends_with(".pcm")).is_empty(),
        "raw PCM kept in the mux cache"
    );
    // 90 s of 48 kHz stereo PCM would be 17.3 MB.
    let kept = size(&mux);
    assert!(
        kept < 90 * 48_000 * 4 / 4,
        "the mux cache holds {kept} bytes"
    );
    // The narration is whole in the video: 90 s of tone, to the sample.
    let video = output_of(&out);
    let pcm = common::av::decode_mono(&video);
    let tones = common::av::bursts(&pcm, 0.05, 480);
    assert_eq!(tones.len(), 1, "{tones:?}");
    assert!(tones[0].onset < 100, "{tones:?}");
    let end = common::av::secs(tones[0].last as i64);
    assert!((end - 90.0).abs() < 0.01, "the narration ends at {end} s");

    let gc = p.fake(&["cache", "gc", "--max-size", "1"]);
    assert!(gc.status.success(), "{}", text(&gc));
    let said = String::from_utf8_lossy(&gc.stdout).to_string();
    assert!(said.contains("removed 2 entries, 2 muxes"), "{said}");
    assert_eq!(size(&mux), 0, "{said}");
    assert!(size(&p.path().join(".parender/cache/objects")) == 0);
    // And the next build makes them again.
    let again = assert_clean_build(&p);
    assert_eq!(
        media_md5(&output_of(&again)),
        media_md5(&video),
        "a rebuild after gc differs"
    );
}

fn media_md5(path: &Path) -> String {
    common::media_md5(path)
}

/// Bug 8: SIGINT 0.2 s into the stitch published the video and exited 0.
#[test]
fn sigint_during_stitch_exits_130_and_publishes_nothing_new() {
    let p = TestProject::new("");
    write_scenes(&p, 2);
    write_narration(&p, "0_s", 60.0, 440);
    let first = assert_clean_build(&p);
    let video = output_of(&first);
    let before = identity(&video);
    let chapters_before = std::fs::read(video.with_extension("chapters.txt")).unwrap();
    // A new narration: everything is muxed again, then stitched.
    write_narration(&p, "0_s", 60.0, 880);
    write_narration(&p, "1_s", 60.0, 660);
    let mut child = spawn_build(&p, &[]);
    // The stitch begins by laying out the audio track (`track.pcm` in the
    // build's scratch folder) and encoding it, which for two minutes of new
    // audio takes about a second; the video is staged only for the closing
    // stream copy.
    let in_stitch = wait_for(&mut child, Duration::from_secs(120), || {
        !find(&p.path().join(".parender/tmp"), &|n: &str| n == "track.pcm").is_empty()
    });
    assert!(in_stitch, "no stitch seen in progress");
    std::thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    assert_eq!(identity(&video), before, "a video was published");
    assert_eq!(
        std::fs::read(video.with_extension("chapters.txt")).unwrap(),
        chapters_before
    );
    assert_eq!(partials(&p), Vec::<PathBuf>::new());
    assert_eq!(
        find(&p.path().join(".parender/tmp"), &|n: &str| n
            .starts_with("build-")),
        Vec::<PathBuf>::new()
    );
    // No ffmpeg of this project is left running.
    let project = p.path().to_string_lossy().into_owned();
    std::thread::sleep(Duration::from_millis(300));
    let ps = String::from_utf8_lossy(&run_tool("ps", &["-eo", "args"])).to_string();
    let left: Vec<&str> = ps
        .lines()
        .filter(|l| l.contains("ffmpeg") && l.contains(&project))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Bug 8: during the held-frame mux of a long narration, SIGTERM acted only
/// when that ffmpeg run ended (~10 s for 10 minutes).
#[test]
fn sigterm_during_mux_exits_130_promptly() {
    let p = TestProject::new("");
    write_scenes(&p, 1);
    write_narration(&p, "0_s", 600.0, 440);
    discover(&p);
    let mut child = spawn_build(&p, &[]);
    let mux_dir = p.path().join(".parender/cache/mux");
    let in_mux = wait_for(&mut child, Duration::from_secs(60), || {
        !find(&mux_dir, &|n: &str| n.starts_with(".tmp-")).is_empty()
    });
    assert!(in_mux, "no mux seen in progress");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    signal(&child, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    let took = signalled.elapsed();
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    assert_eq!(cache_temps(&p), Vec::<PathBuf>::new());
    assert!(!p.path().join("out/dev").exists() || partials(&p).is_empty());
}

/// A 0-byte or non-audio narration file aborted the whole build ("run
/// parender doctor to check ffmpeg"). It is that scene's problem now.
#[test]
fn a_bad_narration_file_builds_the_rest_with_a_warning_naming_it() {
    let p = TestProject::new("");
    write_scenes(&p, 3);
    write_narration(&p, "0_s", 3.0, 440);
    p.write("audio/1_s.wav", "");
    p.write("audio/2_s.mp3", "this is not audio, just text\n");
    for round in 0..2 {
        let out = p.fake(&["build", "--message-format", "json"]);
        TestProject::successful_build(&out);
        let w = warnings(&out);
        let about = |file: &str, what: &str| {
            w.iter()
                .any(|m| m.contains(file) && m.contains(what) && m.contains("without it"))
        };
        assert!(
            about("audio/1_s.wav", "is empty (0 bytes)"),
            "{round}: {w:?}"
        );
        assert!(about("audio/2_s.mp3", "is not audio"), "{round}: {w:?}");
        assert_eq!(w.len(), 2, "{w:?}");
        // Every scene is in the video: 3 s narrated, then 1 s and 1 s.
        let frames = common::av::count_frames(&output_of(&out));
        assert_eq!(frames, (3 + 1 + 1) * 15);
    }
    // Fixed: the warning goes, the narration is in.
    write_narration(&p, "1_s", 2.0, 660);
    let out = assert_clean_build(&p);
    let w = warnings(&out);
    assert!(w.iter().all(|m| !m.contains("audio/1_s.wav")), "{w:?}");
    assert_eq!(common::av::count_frames(&output_of(&out)), (3 + 2 + 1) * 15);
}

/// A scene's own sound (the WAV its render wrote) that is corrupt is left
/// out the same way, with a warning naming the scene.
#[test]
fn a_corrupt_scene_sound_wav_builds_the_scene_silent_with_a_warning() {
    let p = TestProject::new("");
    write_scenes(&p, 2);
    assert_clean_build(&p);
    // Give S1's cached render a sound object that is not a WAV.
    let cache = p.path().join(".parender/cache");
    let garbage = b"RIFF\x00\x00garbage that is not a wave file".repeat(50);
    let hash = blake3::hash(&garbage).to_hex().to_string();
    std::fs::write(cache.join(format!("objects/{hash}.wav")), &garbage).unwrap();
    let mut patched = 0;
    for e in std::fs::read_dir(cache.join("entries")).unwrap() {
        let path = e.unwrap().path();
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if v["scene"] == "scenes/1_s.py:S1" {
            v["sound"] = serde_json::Value::String(hash.clone());
            std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
            patched += 1;
        }
    }
    assert_eq!(patched, 1);
    let out = assert_clean_build(&p);
    assert!(TestProject::scenes_with(&out, "rendered").is_empty());
    let w = warnings(&out);
    assert!(
        w.iter()
            .any(|m| m.starts_with("scenes/1_s.py:S1: its own sound")
                && m.contains("is not audio")
                && m.contains("without it")),
        "{w:?}"
    );
    assert_eq!(common::av::count_frames(&output_of(&out)), 2 * 15);
}

/// The final video was always 0600 (a tempfile's mode), whatever the umask.
#[test]
fn output_mode_follows_umask() {
    use std::os::unix::fs::PermissionsExt;
    let p = TestProject::new("");
    write_scenes(&p, 1);
    for (umask, want) in [("027", 0o640), ("002", 0o664)] {
        // A change, so each build stitches again.
        p.write("scenes/0_s.py", &format!("{}# {umask}\n", scene_source(0)));
        let out = p
            .command(&["build", "--message-format", "json"])
            .env("PARENDER_FAKE_RENDERER", "1")
            .output_with_umask(umask);
        TestProject::successful_build(&out);
        let video = output_of(&out);
        for f in [video.clone(), video.with_extension("chapters.txt")] {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, want, "{} with umask {umask}", f.display());
        }
    }
}

fn scene_source(i: usize) -> String {
    format!(
        "from manim import *\n\n\nclass S{i}(Scene):\n    def construct(self):\n        self.wait(0.2)\n"
    )
}

/// Runs a command with a umask (set in the child before exec).
trait WithUmask {
    fn output_with_umask(&mut self, umask: &str) -> Output;
}

impl WithUmask for std::process::Command {
    fn output_with_umask(&mut self, umask: &str) -> Output {
        use std::os::unix::process::CommandExt;
        let mask = u32::from_str_radix(umask, 8).expect("octal umask");
        // SAFETY: umask(2) is async-signal-safe.
        unsafe {
            self.pre_exec(move || {
                libc::umask(mask as libc::mode_t);
                Ok(())
            });
        }
        self.output().expect("run parender")
    }
}

/// Cosmetic: "Stitching 1 scenes".
#[test]
fn stitching_one_scene_says_one_scene() {
    let p = TestProject::new("");
    write_scenes(&p, 1);
    let out = p.fake(&["build"]);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Stitching 1 scene\n"), "{err}");
    assert!(!err.contains("1 scenes"), "{err}");
}
