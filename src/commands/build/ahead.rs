//! The start of the final video's audio track, encoded while the last
//! scenes still render.
//!
//! Stitching encodes the whole track's AAC (in chunks that are kept, see
//! [`crate::media::aac`]) after the last render. But once the first scenes
//! of the video are muxed, the track's start is known: whatever the later
//! scenes bring, it begins with those scenes' audio. So each time the run
//! of muxed scenes at the start of the video grows, its whole chunks are
//! encoded on the side, at a low priority; the stitch after the last render
//! then finds them kept and encodes only the rest.
use std::path::PathBuf;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::SubtitleMode;
use crate::ffmpeg::Ffmpeg;
use crate::media::mux::Segment;
use crate::media::stitch::{self, Stitcher};

pub(super) struct TrackAhead {
    starts: Starts,
    start: watch::Sender<Vec<Segment>>,
    /// Set once the renders are over: nothing new is started.
    over: CancellationToken,
    encoder: JoinHandle<()>,
}

impl TrackAhead {
    /// For a video of `scenes` scenes; chunks are kept in `kept` (the
    /// stitch's), encoded with `ffmpeg` in `work`, `jobs` at once.
    pub fn new(
        scenes: usize,
        ffmpeg: Ffmpeg,
        kept: PathBuf,
        work: PathBuf,
        jobs: usize,
        cancel: CancellationToken,
    ) -> TrackAhead {
        let (start, latest) = watch::channel(Vec::new());
        let over = CancellationToken::new();
        let encoder = tokio::spawn(encode_starts(
            Encoder {
                ffmpeg,
                kept,
                work,
                jobs,
                cancel,
            },
            latest,
            over.clone(),
        ));
        TrackAhead {
            starts: Starts::new(scenes),
            start,
            over,
            encoder,
        }
    }

    /// Scene `i` is muxed into `segment`: a new start goes to the encoder.
    pub fn muxed(&mut self, i: usize, segment: Segment) {
        if let Some(start) = self.starts.muxed(i, segment) {
            self.start.send_replace(start);
        }
    }

    /// Once the renders are over: waits for an encode that is under way
    /// (the stitch would do the same work again), starts none.
    pub async fn finish(self) {
        self.over.cancel();
        let _ = self.encoder.await;
    }
}

/// The run of muxed scenes at the start of a video of `known.len()`.
struct Starts {
    /// Each scene's segment, by index, once its mux is done.
    known: Vec<Option<Segment>>,
    /// How many scenes the latest start had.
    sent: usize,
}

impl Starts {
    fn new(scenes: usize) -> Starts {
        Starts {
            known: vec![None; scenes],
            sent: 0,
        }
    }

    /// Scene `i` is muxed into `segment`: the new start if that lengthens
    /// the run of muxed scenes from the first on, but not to the whole
    /// video (which the stitch encodes, to its end).
    fn muxed(&mut self, i: usize, segment: Segment) -> Option<Vec<Segment>> {
        *self.known.get_mut(i)? = Some(segment);
        let run = self.known.iter().take_while(|s| s.is_some()).count();
        (run > self.sent && run < self.known.len()).then(|| {
            self.sent = run;
            self.known[..run].iter().flatten().cloned().collect()
        })
    }
}

/// What [`encode_starts`] needs, owned.
struct Encoder {
    ffmpeg: Ffmpeg,
    kept: PathBuf,
    work: PathBuf,
    jobs: usize,
    cancel: CancellationToken,
}

/// Encodes each new start of the track, the latest first, until `over`.
/// Failures are not reported: the stitch encodes what is missing and says
/// why if it fails too.
async fn encode_starts(
    e: Encoder,
    mut latest: watch::Receiver<Vec<Segment>>,
    over: CancellationToken,
) {
    let stitcher = Stitcher {
        ffmpeg: &e.ffmpeg,
        subtitles: SubtitleMode::None,
        work: &e.work,
        aac_chunks: &e.kept,
        jobs: e.jobs,
    };
    loop {
        tokio::select! {
            biased;
            _ = over.cancelled() => return,
            _ = e.cancel.cancelled() => return,
            changed = latest.changed() => if changed.is_err() { return },
        }
        let start = latest.borrow_and_update().clone();
        match stitch::encode_start(&stitcher, start, &e.cancel).await {
            Ok(n) => tracing::debug!(chunks = n, "audio encoded ahead"),
            Err(err) => tracing::debug!(%err, "audio not encoded ahead"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffmpeg::VideoInfo;
    use crate::scene::SceneId;

    fn seg(name: &str) -> Segment {
        Segment {
            scene: SceneId(name.into()),
            pieces: vec![],
            info: VideoInfo::fixture(15, 30),
            frames: 30,
            audio: None,
            clipped: 0,
            problems: vec![],
        }
    }

    fn names(start: Option<Vec<Segment>>) -> Option<Vec<String>> {
        start.map(|s| s.into_iter().map(|s| s.scene.0).collect())
    }

    #[test]
    fn a_start_is_the_run_of_muxed_scenes_from_the_first_short_of_the_whole() {
        let mut s = Starts::new(4);
        // Muxed out of order (longest first): nothing until the first.
        assert_eq!(names(s.muxed(2, seg("c"))), None);
        assert_eq!(names(s.muxed(1, seg("b"))), None);
        assert_eq!(
            names(s.muxed(0, seg("a"))),
            Some(vec!["a".into(), "b".into(), "c".into()])
        );
        // The last one makes the whole video: the stitch's to encode.
        assert_eq!(names(s.muxed(3, seg("d"))), None);
        let mut s = Starts::new(3);
        assert_eq!(names(s.muxed(0, seg("a"))), Some(vec!["a".into()]));
        assert_eq!(
            names(s.muxed(1, seg("b"))),
            Some(vec!["a".into(), "b".into()])
        );
        // Out of range: ignored.
        assert_eq!(names(s.muxed(7, seg("x"))), None);
    }
}
