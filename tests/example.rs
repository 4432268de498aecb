//! End-to-end: the bundled example lecture (7 scenes, a shared helper
//! module, MathTex, narration in ogg and m4a, one silent scene) builds with
//! real Manim and ffmpeg, in parallel, into a video whose streams and
//! lengths hold to the frame; a second build comes from the cache.
mod common;

use common::av::probe;
use std::path::Path;
use std::process::Command;

use common::{TestProject, run_tool, text};
use serde_json::Value;

fn audio_seconds(file: &Path) -> f64 {
    probe(file, "a:0", "format=duration")
        .first()
        .and_then(|d| d.parse().ok())
        .expect("audio duration")
}

fn build(repo: &Path, cache: &Path, output: &Path) -> (std::process::Output, Vec<Value>) {
    let out = Command::new(env!("CARGO_BIN_EXE_parender"))
        .args(["build", "--jobs", "2", "--message-format", "json", "-o"])
        .arg(output)
        .arg("--project")
        .arg(repo)
        .env("PARENDER_CACHE_DIR", cache)
        .env("NO_COLOR", "1")
        .output()
        .expect("run parender");
    let lines = TestProject::json_lines(&out);
    (out, lines)
}

#[test]
fn bundled_example_builds_in_parallel_and_in_sync() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let video = work.path().join("lecture.mp4");
    let (out, lines) = build(repo, &cache, &video);
    assert!(out.status.success(), "{}", text(&out));

    let started = lines
        .iter()
        .find(|v| v["reason"] == "build-started")
        .unwrap();
    assert_eq!(started["scenes"], 7);
    assert_eq!(started["jobs"], 2);
    // Two renders were in flight at once: the second scene started before
    // the first finished.
    let kinds: Vec<&str> = lines
        .iter()
        .map(|v| v["reason"].as_str().unwrap())
        .collect();
    let first_finish = kinds.iter().position(|k| *k == "scene-finished").unwrap();
    let starts_before = kinds[..first_finish]
        .iter()
        .filter(|k| **k == "scene-started")
        .count();
    assert_eq!(starts_before, 2, "{kinds:?}");
    let done = lines
        .iter()
        .find(|v| v["reason"] == "build-finished")
        .unwrap();
    assert_eq!(done["rendered"], 7, "{}", text(&out));
    assert_eq!(done["failed"], 0);

    // One H.264 854x480@15 stream, one AAC 48 kHz stereo stream.
    assert_eq!(
        probe(&video, "v", "stream=codec_name,width,height,r_frame_rate"),
        vec!["h264", "854", "480", "15/1"]
    );
    assert_eq!(
        probe(&video, "a", "stream=codec_name,sample_rate,channels"),
        vec!["aac", "48000", "2"]
    );
    let frames: u64 = probe(&video, "v:0", "stream=nb_read_packets")[0]
        .parse()
        .unwrap();
    let v_dur: f64 = probe(&video, "v:0", "stream=duration")[0].parse().unwrap();
    let a_dur: f64 = probe(&video, "a:0", "stream=duration")[0].parse().unwrap();
    let reported = done["duration"].as_f64().unwrap();
    let frame = 1.0 / 15.0;
    assert!(
        (frames as f64 / 15.0 - reported).abs() < 1e-3,
        "{frames} frames vs {reported} s"
    );
    assert!(
        (v_dur - reported).abs() <= frame,
        "video {v_dur} s vs {reported} s"
    );
    assert!(
        (a_dur - reported).abs() <= frame,
        "audio {a_dur} s vs {reported} s"
    );
    // Each segment is at least as long as its narration.
    let audio_dir = repo.join("examples/lecture/audio");
    let narration: f64 = std::fs::read_dir(&audio_dir)
        .unwrap()
        .map(|e| audio_seconds(&e.unwrap().path()))
        .sum();
    assert!(
        reported >= narration,
        "{reported} s of video for {narration} s of narration"
    );

    // One chapter per scene, titled in parender.toml, listed beside the
    // video; the outro's caption in the subtitles, at the outro's start.
    let titles = probe(&video, "v:0", "chapter_tags=title");
    assert_eq!(titles.len(), 7, "{titles:?}");
    assert_eq!(titles[0], "Odd numbers make squares");
    assert_eq!(titles[6], "Summary");
    let list = std::fs::read_to_string(work.path().join("lecture.chapters.txt")).unwrap();
    assert!(
        list.starts_with("0:00 Odd numbers make squares\n"),
        "{list}"
    );
    assert_eq!(list.lines().count(), 7, "{list}");
    let starts = probe(&video, "v:0", "chapter=start_time");
    let outro_start: f64 = starts[6].parse().unwrap();
    let srt = std::fs::read_to_string(work.path().join("lecture.srt")).unwrap();
    let cue_start = srt
        .lines()
        .nth(1)
        .and_then(|l| l.split(" --> ").next())
        .unwrap();
    let (hms, millis) = cue_start.split_once(',').unwrap();
    let secs: Vec<f64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let cue = secs[0] * 3600.0 + secs[1] * 60.0 + secs[2] + millis.parse::<f64>().unwrap() / 1000.0;
    assert!(
        (cue - outro_start).abs() <= 0.001,
        "cue at {cue} s, outro at {outro_start} s:\n{srt}"
    );
    assert!(srt.contains("Thanks for watching!"), "{srt}");
    assert_eq!(
        done["subtitles"].as_str().map(Path::new),
        Some(work.path().join("lecture.srt").as_path())
    );

    // Again: everything from the cache, and the same frames.
    let again = work.path().join("again.mp4");
    let (out, lines) = build(repo, &cache, &again);
    assert!(out.status.success(), "{}", text(&out));
    let done = lines
        .iter()
        .find(|v| v["reason"] == "build-finished")
        .unwrap();
    assert_eq!(done["cached"], 7);
    assert_eq!(done["rendered"], 0);
    let md5 = |p: &Path| {
        run_tool(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-i",
                p.to_str().unwrap(),
                "-map",
                "0:v",
                "-f",
                "md5",
                "-",
            ],
        )
    };
    assert_eq!(md5(&video), md5(&again));
}
