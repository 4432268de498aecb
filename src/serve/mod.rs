//! The live preview of `parender watch --serve`: a page (embedded, no build
//! step) that plays the latest video, a timeline of the scenes with their
//! status, and the build's messages as server-sent events.
//!
//! Only these are served: the page, `/state`, `/events`, the latest video
//! (`/video.mp4`, with range requests), its WebVTT subtitles and one
//! thumbnail per scene (`/thumb/<n>.jpg`, by position). No path from a
//! request reaches the filesystem; there is no listing.
pub mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tokio::sync::broadcast;
use tower::ServiceExt;

use crate::error::Error;
use crate::ffmpeg::Ffmpeg;
use crate::media::publish::Outcome;
use crate::media::stitch::side_file;
use crate::report::Reporter;
use state::PageState;

const PAGE: &str = include_str!("page.html");

/// The files behind the page's URLs, as of the latest publication.
#[derive(Debug, Default, Clone)]
struct Files {
    video: Option<PathBuf>,
    vtt: Option<PathBuf>,
    /// Each scene's render and its middle, by position: the thumbnail.
    scenes: Vec<(PathBuf, f64)>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<PageState>>,
    files: Arc<Mutex<Files>>,
    page: broadcast::Sender<String>,
    ffmpeg: Ffmpeg,
    thumbs: PathBuf,
}

/// A running preview server.
pub struct Preview {
    shared: Shared,
    pub url: String,
}

/// `8000`, `:8000`, `0.0.0.0:8000`, `[::1]:8000` → a socket address on
/// 127.0.0.1 unless a host is given.
pub fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    let full = if t.parse::<u16>().is_ok() {
        format!("127.0.0.1:{t}")
    } else if let Some(port) = t.strip_prefix(':') {
        format!("127.0.0.1:{port}")
    } else {
        t.to_string()
    };
    full.parse().map_err(|_| {
        format!("`{text}` is not an address: give PORT or HOST:PORT, e.g. 127.0.0.1:8000")
    })
}

impl Preview {
    /// Binds `addr` and serves in the background; every message `reporter`
    /// emits from now on reaches the page. `cache` is `.parender/cache`.
    pub async fn start(
        addr: SocketAddr,
        state: PageState,
        ffmpeg: Ffmpeg,
        cache: &Path,
        reporter: &Reporter,
    ) -> Result<Preview, Error> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Other(format!("cannot serve the preview on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Other(e.to_string()))?;
        let (page, _) = broadcast::channel(1024);
        let shared = Shared {
            state: Arc::new(Mutex::new(state)),
            files: Arc::new(Mutex::new(Files::default())),
            page,
            ffmpeg,
            thumbs: cache.join("thumbs"),
        };
        let (tap, taps) = broadcast::channel(1024);
        reporter.set_tap(tap);
        tokio::spawn(relay(taps, shared.clone()));
        let app = router(shared.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let host = match bound.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        Ok(Preview {
            shared,
            url: format!("http://{host}:{}/", bound.port()),
        })
    }

    /// A new video was published at `output`.
    pub fn published(&self, output: &Path, o: &Outcome) {
        // The WebVTT the stitch writes beside the SRT.
        let vtt = o.subtitles.as_ref().map(|_| side_file(output, "vtt"));
        let vtt = vtt.filter(|v| v.is_file());
        if let Ok(mut f) = self.shared.files.lock() {
            *f = Files {
                video: Some(output.to_path_buf()),
                vtt: vtt.clone(),
                scenes: o
                    .placed
                    .iter()
                    .map(|p| (p.video.clone(), p.video_seconds / 2.0))
                    .collect(),
            };
        }
        if let Ok(mut s) = self.shared.state.lock() {
            s.output = output.display().to_string();
            let key = o.key.get(..12).unwrap_or(&o.key).to_string();
            s.published(o, vtt.is_some(), |i| format!("/thumb/{i}.jpg?v={key}"));
        }
        let _ = self.shared.page.send(STATE_CHANGED.to_string());
    }
}

const STATE_CHANGED: &str = r#"{"reason":"state"}"#;

/// Applies the build's messages to the page state, then passes them on to
/// the pages, each followed by a `state` event.
async fn relay(mut taps: broadcast::Receiver<String>, shared: Shared) {
    loop {
        let line = match taps.recv().await {
            Ok(line) => line,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if let (Ok(m), Ok(mut s)) = (serde_json::from_str(&line), shared.state.lock()) {
            s.apply(&m);
        }
        let _ = shared.page.send(line);
        let _ = shared.page.send(STATE_CHANGED.to_string());
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/state", get(page_state))
        .route("/events", get(events))
        .route("/video.mp4", get(video))
        .route("/subtitles.vtt", get(subtitles))
        .route("/thumb/{name}", get(thumbnail))
        .with_state(shared)
}

async fn page_state(State(s): State<Shared>) -> Response {
    match s.state.lock() {
        Ok(state) => axum::Json(state.clone()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn events(State(s): State<Shared>) -> impl IntoResponse {
    let rx = s.page.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(line) => return Some((Ok::<_, Infallible>(Event::default().data(line)), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `path` as the response to `req` (ranges, `Last-Modified`), never cached.
async fn serve_file(path: Option<PathBuf>, req: Request) -> Response {
    let Some(path) = path else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tower_http::services::ServeFile::new(path)
        .oneshot(req)
        .await
    {
        Ok(mut r) => {
            let no_store = HeaderValue::from_static("no-store");
            r.headers_mut().insert(header::CACHE_CONTROL, no_store);
            r.into_response()
        }
        Err(e) => match e {},
    }
}

async fn video(State(s): State<Shared>, req: Request) -> Response {
    let path = s.files.lock().ok().and_then(|f| f.video.clone());
    serve_file(path, req).await
}

async fn subtitles(State(s): State<Shared>, req: Request) -> Response {
    let path = s.files.lock().ok().and_then(|f| f.vtt.clone());
    serve_file(path, req).await
}

/// `/thumb/3.jpg`: the fourth scene's thumbnail, a frame from the middle of
/// its render (its first frame is usually still empty), extracted once per
/// render (kept under `.parender/cache/thumbs/`).
async fn thumbnail(
    State(s): State<Shared>,
    UrlPath(name): UrlPath<String>,
    req: Request,
) -> Response {
    let index = name
        .strip_suffix(".jpg")
        .and_then(|n| n.parse::<usize>().ok());
    let source = index.and_then(|i| s.files.lock().ok().and_then(|f| f.scenes.get(i).cloned()));
    let Some((source, at)) = source else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match thumbnail_of(&s.ffmpeg, &source, at, &s.thumbs).await {
        Ok(jpg) => serve_file(Some(jpg), req).await,
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The thumbnail of `video` (its frame at `at` seconds), extracted if it
/// is not kept yet.
async fn thumbnail_of(ff: &Ffmpeg, video: &Path, at: f64, dir: &Path) -> Result<PathBuf, Error> {
    let meta = std::fs::metadata(video).map_err(|e| Error::io(video, e))?;
    let stamp = format!(
        "{}\n{}\n{:?}\n{at:.3}",
        video.display(),
        meta.len(),
        meta.modified().ok()
    );
    let jpg = dir.join(format!(
        "{}.jpg",
        &blake3::hash(stamp.as_bytes()).to_hex()[..32]
    ));
    if !jpg.is_file() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = crate::fsutil::locked_tempfile(dir, ".tmp-", ".jpg")?;
        ff.thumbnail(video, at, tmp.path()).await?;
        tmp.persist(&jpg).map_err(|e| Error::io(&jpg, e.error))?;
    }
    Ok(jpg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback() {
        assert_eq!(parse_addr("8000").unwrap().to_string(), "127.0.0.1:8000");
        assert_eq!(parse_addr(":0").unwrap().to_string(), "127.0.0.1:0");
        assert_eq!(parse_addr("0.0.0.0:80").unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(parse_addr("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert!(parse_addr("localhost:x").unwrap_err().contains("HOST:PORT"));
    }
}
