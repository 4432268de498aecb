mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::browser::Browser;

#[test]
fn probe() {
    assert!(Browser::available(), "no chromium");
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let mut b = Browser::start(dir.path()).unwrap();
    println!("start: {:?}", t.elapsed());
    let t = Instant::now();
    b.open("data:text/html,<body><script>window.keys=[];setTimeout(()=>window.done=42,300);addEventListener('keydown',e=>keys.push([e.key,e.code,e.keyCode]))</script><h1>hello</h1></body>").unwrap();
    println!("open: {:?}", t.elapsed());
    assert_eq!(b.eval("1+1").unwrap(), 2);
    println!("eval undefined: {:?}", b.eval("undefined"));
    println!("eval throw: {:?}", b.eval("nope.x"));
    println!(
        "eval promise: {:?}",
        b.eval("new Promise(r=>setTimeout(()=>r('p'),100))")
    );
    let t = Instant::now();
    let v = b.wait_for("window.done", Duration::from_secs(5)).unwrap();
    println!("wait_for: {v} after {:?}", t.elapsed());
    println!(
        "wait_for timeout: {:?}",
        b.wait_for("window.never", Duration::from_millis(200))
    );
    b.press(" ").unwrap();
    b.press("n").unwrap();
    b.press("ArrowRight").unwrap();
    let keys = b.eval("keys").unwrap();
    println!("keys: {keys}");
    assert_eq!(keys[0][0], " ");
    assert_eq!(keys[1][0], "n");
    let shot = dir.path().join("shot.png");
    b.screenshot(&shot).unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    println!("screenshot {} bytes", png.len());
    println!("bad url: {:?}", b.open("file:///nonexistent/x.html"));

    // Video.
    let d = dir.path();
    let st = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
        ])
        .arg(d.join("v.mp4"))
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=15",
            "-f",
            "lavfi",
            "-i",
            "sine=d=2",
            "-t",
            "2",
            "-c:v",
            "libvpx-vp9",
            "-c:a",
            "libopus",
        ])
        .arg(d.join("v.webm"))
        .status()
        .unwrap();
    assert!(st.success());
    for (name, file, ty) in [
        (
            "mp4",
            "v.mp4",
            r#"video/mp4; codecs="avc1.64001e, mp4a.40.2""#,
        ),
        ("webm", "v.webm", r#"video/webm; codecs="vp9, opus""#),
    ] {
        let html = d.join(format!("{name}.html"));
        std::fs::write(
            &html,
            format!("<video src=\"{file}\" muted autoplay></video>"),
        )
        .unwrap();
        b.open(&format!("file://{}", html.display())).unwrap();
        println!(
            "{name} canPlayType: {:?}",
            b.eval(&format!(
                "document.querySelector('video').canPlayType({ty:?})"
            ))
        );
        let t = Instant::now();
        let r = b.wait_for(
            "document.querySelector('video').currentTime > 0.5",
            Duration::from_secs(10),
        );
        println!("{name} plays: {r:?} after {:?}; state {:?}", t.elapsed(),
            b.eval("(v=>({t:v.currentTime,err:v.error&&v.error.message,rs:v.readyState,w:v.videoWidth,paused:v.paused}))(document.querySelector('video'))"));
    }
    std::fs::write(
        d.join("audio.html"),
        "<video src=\"v.mp4\" autoplay></video>",
    )
    .unwrap();
    b.open(&format!("file://{}", d.join("audio.html").display()))
        .unwrap();
    println!("unmuted: {:?}", b.wait_for("(v=>v.currentTime>0.5 && [v.currentTime, v.webkitAudioDecodedByteCount, v.webkitVideoDecodedByteCount])(document.querySelector('video'))", Duration::from_secs(10)));
    let pid = String::from_utf8_lossy(
        &Command::new("pgrep")
            .args([
                "-o",
                "-f",
                &dir.path().join("chromium/profile").display().to_string(),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    println!(
        "browser fds: {}",
        String::from_utf8_lossy(
            &Command::new("ls")
                .args(["-l", &format!("/proc/{pid}/fd")])
                .output()
                .unwrap()
                .stdout
        )
    );
    println!(
        "pgid check: {}",
        String::from_utf8_lossy(
            &Command::new("ps")
                .args(["-o", "pid,pgid,sid,comm", "-g", &pid])
                .output()
                .unwrap()
                .stdout
        )
    );
    let profile = dir.path().join("chromium/profile");
    let pat = profile.display().to_string();
    println!(
        "running before drop: {}",
        String::from_utf8_lossy(
            &Command::new("pgrep")
                .args(["-c", "-f", &pat])
                .output()
                .unwrap()
                .stdout
        )
        .trim()
    );
    let t = Instant::now();
    drop(b);
    println!("drop: {:?}", t.elapsed());
    let out = Command::new("pgrep")
        .args(["-a", "-f", &pat])
        .output()
        .unwrap();
    println!(
        "left after drop: [{}]",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    println!(
        "files: {}",
        String::from_utf8_lossy(
            &Command::new("find")
                .arg(d)
                .args(["-maxdepth", "3"])
                .output()
                .unwrap()
                .stdout
        )
    );
    println!(
        "log: {}",
        std::fs::read_to_string(d.join("chromium/chromium.log")).unwrap()
    );
}

#[test]
fn killed() {
    let dir2 = tempfile::tempdir().unwrap();
    let mut c = Browser::start(dir2.path()).unwrap();
    let t = Instant::now();
    c.open("data:text/html,x").unwrap();
    println!("second open {:?}", t.elapsed());
    let pid2 = String::from_utf8_lossy(
        &Command::new("pgrep")
            .args([
                "-o",
                "-f",
                &dir2.path().join("chromium/profile").display().to_string(),
            ])
            .output()
            .unwrap()
            .stdout,
    )
    .trim()
    .to_string();
    Command::new("kill").args(["-9", &pid2]).status().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    println!("after kill: {:?}", c.eval("1"));
    println!("after kill again: {:?}", c.eval("1"));
    let t = Instant::now();
    drop(c);
    println!("drop after kill {:?}", t.elapsed());
    let out = Command::new("pgrep")
        .args(["-a", "-f", &dir2.path().display().to_string()])
        .output()
        .unwrap();
    println!(
        "left after kill+drop: [{}]",
        String::from_utf8_lossy(&out.stdout)
    );
}
