//! Placeholder cards for `watch`: a scene that fails and has never rendered
//! is shown as a dark card naming it and its error, so the rest of the video
//! keeps its timing (the mux holds the card for as long as its narration).
use std::path::Path;

use crate::analyze::hashcache::HashCache;
use crate::cache::store::{Entry, now_unix};
use crate::error::Error;
use crate::ffmpeg::{Ffmpeg, VideoInfo};
use crate::scene::{Scene, SceneError};
use crate::settings::BuildSettings;

/// Seconds a card lasts before any hold for narration.
const CARD_SECONDS: u32 = 2;

/// Renders (or reuses) the card for `scene` failing with `error`, in the
/// format of the other scenes (`like`), under `dir`.
pub async fn card(
    ff: &Ffmpeg,
    scene: &Scene,
    error: &SceneError,
    settings: &BuildSettings,
    like: Option<&VideoInfo>,
    hashes: &HashCache,
    dir: &Path,
) -> Result<Entry, Error> {
    let r = &settings.render;
    let timescale = like
        .map(|i| i.tb_den / i.tb_num.max(1))
        .unwrap_or(r.fps as u64 * 1024);
    let text = format!("{}\n\nfailed: {}", scene.id, error.summary());
    let id = blake3::hash(
        format!(
            "card-v1\0{text}\0{}x{}@{}\0{timescale}",
            r.width, r.height, r.fps
        )
        .as_bytes(),
    )
    .to_hex();
    let out = dir.join(format!("{}.mp4", &id[..32]));
    if hashes.hash(&out)?.is_none() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let textfile = dir.join(format!("{}.txt", &id[..32]));
        std::fs::write(&textfile, &text).map_err(|e| Error::io(&textfile, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".mp4")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        let font = (r.height / 24).max(12);
        let filter = format!(
            "drawtext=textfile='{}':fontcolor=white:fontsize={font}:x=(w-text_w)/2:y=(h-text_h)/2:line_spacing={}",
            textfile.display().to_string().replace('\'', ""),
            font / 2
        );
        let source = format!(
            "color=c=0x1e1e2e:s={}x{}:r={}:d={CARD_SECONDS}",
            r.width, r.height, r.fps
        );
        let mut cmd = tokio::process::Command::new(&ff.ffmpeg);
        cmd.args([
            "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &source, "-vf", &filter,
        ])
        .args(crate::ffmpeg::manim_x264_args(timescale))
        .args(["-f", "mp4"])
        .arg(tmp.path());
        // Own process group, dies with parender, killed with it if dropped.
        let status = crate::procs::output(cmd)
            .await
            .map_err(|e| Error::io(&ff.ffmpeg, e))?;
        if !status.status.success() {
            return Err(Error::Media {
                tool: "ffmpeg",
                what: out.display().to_string(),
                message: crate::procs::tail_lines(&status.stderr, 4),
            });
        }
        tmp.persist(&out).map_err(|e| Error::io(&out, e.error))?;
        let _ = std::fs::remove_file(&textfile);
    } else if let Ok(f) = std::fs::File::options().write(true).open(&out) {
        // Reused: a use, for `cache gc`'s least-recently-used order.
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    let info = ff.probe_video(&out).await?;
    let video_hash = hashes.hash(&out)?.unwrap_or_default();
    Ok(Entry {
        key: format!("placeholder-{}", &id[..32]),
        scene: scene.id.clone(),
        profile: settings.profile.name().into(),
        video_hash,
        duration: info.seconds(),
        info,
        render_seconds: 0.0,
        created: now_unix(),
        log_tail: String::new(),
        inputs: None,
        sound: None,
        subtitles: None,
        video: out,
        sound_file: None,
        subtitles_file: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::settings::Overrides;

    #[tokio::test]
    async fn a_reused_card_counts_as_used() {
        let t = tempfile::tempdir().unwrap();
        let ff = crate::ffmpeg::testing::on_path();
        let scene = Scene::new("scenes/a.py", "A", crate::config::DEFAULT_TIMEOUT);
        let settings = BuildSettings::resolve(&Config::default(), &Overrides::default());
        let error = SceneError::plain("boom");
        let hashes = HashCache::default();
        let make = || card(&ff, &scene, &error, &settings, None, &hashes, t.path());
        let first = make().await.unwrap();
        assert_eq!(first.info.frames, 2 * settings.render.fps as u64);
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        let f = std::fs::File::options()
            .write(true)
            .open(&first.video)
            .unwrap();
        f.set_modified(old).unwrap();
        let again = make().await.unwrap();
        assert_eq!(again.video, first.video);
        assert_eq!(again.video_hash, first.video_hash);
        let used = std::fs::metadata(&again.video).unwrap().modified().unwrap();
        assert!(
            used > old + std::time::Duration::from_secs(3600),
            "{used:?}"
        );
    }
}
