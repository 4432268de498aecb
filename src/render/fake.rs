//! [`FakeRenderer`]: a stand-in for Manim in tests of the pipeline around it.
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Progress, RenderFailure, RenderFuture, RenderJob, Rendered, Renderer};
use crate::scene::SceneError;

/// A fast, deterministic stand-in for Manim, for tests of everything
/// around rendering (selected with `PARENDER_FAKE_RENDERER=1`). It renders
/// one second of a solid colour derived from the render's key, with the key
/// in the file's metadata, so equal outputs mean equal inputs. It sleeps
/// `PARENDER_FAKE_RENDER_SECONDS` first (to test edits and kills during a
/// render) and fails when the scene file contains `parender-fake: fail`.
pub struct FakeRenderer {
    pub ffmpeg: crate::ffmpeg::Ffmpeg,
}

impl FakeRenderer {
    async fn run(
        &self,
        job: &RenderJob,
        progress: Progress<'_>,
        cancel: &CancellationToken,
    ) -> Result<Rendered, RenderFailure> {
        let fail = |m: String| RenderFailure::Failed {
            error: SceneError::plain(m),
            traceback: String::new(),
            log_tail: String::new(),
        };
        let delay: f64 = std::env::var("PARENDER_FAKE_RENDER_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0);
        progress(0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs_f64(delay)) => {}
            _ = cancel.cancelled() => return Err(RenderFailure::Cancelled),
        }
        let source =
            std::fs::read_to_string(job.project_root.join(&job.scene.file)).unwrap_or_default();
        if let Some(n) = source
            .lines()
            .position(|l| l.contains("parender-fake: fail"))
        {
            return Err(RenderFailure::Failed {
                error: SceneError {
                    file: Some(job.scene.file.clone()),
                    line: Some(n as u32 + 1),
                    message: "RuntimeError: fake failure".into(),
                },
                traceback: String::new(),
                log_tail: String::new(),
            });
        }
        let stem = Path::new(&job.scene.file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = job
            .media_dir
            .join("videos")
            .join(stem)
            .join(job.settings.folder_name());
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        let out = dir.join(format!("{}.mp4", job.scene.class));
        let colour = &job.key[..6];
        let src = format!(
            "color=c=0x{colour}:s={}x{}:r={}:d=1",
            job.settings.width, job.settings.height, job.settings.fps
        );
        let status = tokio::process::Command::new(&self.ffmpeg.ffmpeg)
            .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", &src])
            .args([
                "-c:v",
                "libx264",
                "-profile:v",
                "high",
                "-pix_fmt",
                "yuv420p",
            ])
            .args(["-video_track_timescale", "15360", "-metadata"])
            .arg(format!("comment={}", job.key))
            .arg(&out)
            .kill_on_drop(true)
            .status()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !status.success() {
            return Err(fail(format!("ffmpeg failed: {status}")));
        }
        Ok(Rendered {
            video: out,
            sound: None,
            subtitles: None,
            log_tail: format!("fake render of {}", job.key),
            probed: None,
            stopped_at: None,
            resumed_time: None,
        })
    }
}

impl Renderer for FakeRenderer {
    fn render<'a>(
        &'a self,
        job: &'a RenderJob,
        progress: Progress<'a>,
        cancel: &'a CancellationToken,
    ) -> RenderFuture<'a> {
        Box::pin(self.run(job, progress, cancel))
    }
}
