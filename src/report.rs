//! Telling people and scripts what happened: cargo-like status lines and
//! progress bars on stderr for people, or one JSON object per line on stdout
//! (`--message-format json`, see [`crate::messages`]).
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::error::Error;
use crate::messages::{Message, SceneStatus};
use crate::scene::SceneError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MessageFormat {
    Human,
    Json,
}

/// Colours follow the terminal and `NO_COLOR`.
pub fn init_colors() {
    if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
        console::set_colors_enabled(false);
        console::set_colors_enabled_stderr(false);
    }
}

/// One scene's outcome, as reported.
pub struct Finished<'a> {
    pub scene: &'a str,
    pub status: SceneStatus,
    pub seconds: f64,
    pub error: Option<&'a SceneError>,
    /// The user's frames of the traceback, or the log tail.
    pub detail: Option<&'a str>,
    pub why: &'a [String],
}

pub struct Reporter {
    format: MessageFormat,
    /// `--explain`: say why each scene was rendered or reused.
    pub explain: bool,
    multi: MultiProgress,
    overall: Mutex<Option<ProgressBar>>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Whether progress bars are drawn (a terminal on stderr).
    live: bool,
    /// stdout or stderr was closed (`| head -1`): reporting there stops,
    /// the build goes on.
    stdout_closed: AtomicBool,
    stderr_closed: AtomicBool,
    /// Every message, as its JSON line, whatever the format (the preview
    /// page of `watch --serve` listens here).
    tap: std::sync::OnceLock<tokio::sync::broadcast::Sender<String>>,
}

/// Writes one line, unless an earlier write failed; a failure (a closed
/// pipe) stops further writes instead of panicking like `println!`.
fn write_line(closed: &AtomicBool, mut w: impl Write, line: &str) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    if writeln!(w, "{line}").and_then(|()| w.flush()).is_err() {
        closed.store(true, Ordering::Relaxed);
    }
}

impl Reporter {
    pub fn new(format: MessageFormat) -> Reporter {
        let live = format == MessageFormat::Human && console::Term::stderr().is_term();
        let target = if live {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Reporter {
            format,
            explain: false,
            multi: MultiProgress::with_draw_target(target),
            overall: Mutex::new(None),
            bars: Mutex::new(HashMap::new()),
            live,
            stdout_closed: AtomicBool::new(false),
            stderr_closed: AtomicBool::new(false),
            tap: std::sync::OnceLock::new(),
        }
    }

    /// A line on stdout (JSON messages, listings).
    pub fn out(&self, line: &str) {
        write_line(&self.stdout_closed, std::io::stdout().lock(), line);
    }

    /// A line on stderr, as is (summaries).
    pub fn err(&self, line: &str) {
        write_line(&self.stderr_closed, std::io::stderr().lock(), line);
    }

    pub fn is_json(&self) -> bool {
        self.format == MessageFormat::Json
    }

    /// Sends every message from now on to `tx` too, in either format.
    pub fn set_tap(&self, tx: tokio::sync::broadcast::Sender<String>) {
        let _ = self.tap.set(tx);
    }

    /// The message to the tap alone (the preview page), never on stdout.
    /// Serialized only when a page listens.
    pub fn tap(&self, m: &Message) {
        if let Some(t) = self.tap.get().filter(|t| t.receiver_count() > 0)
            && let Ok(line) = serde_json::to_string(m)
        {
            let _ = t.send(line);
        }
    }

    /// The message on stdout (`--message-format json`) and to the tap.
    pub fn emit(&self, m: &Message) {
        self.tap(m);
        if self.is_json()
            && let Ok(line) = serde_json::to_string(m)
        {
            self.out(&line);
        }
    }

    /// A cargo-style line: a right-aligned verb, then the message.
    pub fn status(&self, verb: &str, message: &str) {
        if self.is_json() {
            return;
        }
        let line = format!("{} {message}", style(format!("{verb:>12}")).green().bold());
        self.line(&line);
    }

    fn line(&self, line: &str) {
        if self.live {
            let _ = self.multi.println(line);
        } else {
            self.err(line);
        }
    }

    pub fn warning(&self, message: &str) {
        self.emit(&Message::Warning {
            message: message.to_string(),
        });
        if !self.is_json() {
            self.line(&format!("{}: {message}", style("warning").yellow().bold()));
        }
    }

    pub fn start_progress(&self, total: usize) {
        if !self.live || total == 0 {
            return;
        }
        let bar = self.multi.add(ProgressBar::new(total as u64));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>12.cyan.bold} [{bar:30}] {pos}/{len} scenes {elapsed}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix("Building");
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut o) = self.overall.lock() {
            *o = Some(bar);
        }
    }

    pub fn scene_started(&self, scene: &str, why: &[String]) {
        self.emit(&Message::SceneStarted {
            scene: scene.to_string(),
            why: why.to_vec(),
        });
        if !self.live || self.explain {
            self.status("Rendering", &self.with_why(scene, why));
            if !self.live {
                return;
            }
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner:.cyan} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(scene.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut b) = self.bars.lock() {
            b.insert(scene.to_string(), bar);
        }
    }

    pub fn scene_progress(&self, scene: &str, animation: u32) {
        self.emit(&Message::SceneProgress {
            scene: scene.to_string(),
            animation,
        });
        if let Ok(b) = self.bars.lock()
            && let Some(bar) = b.get(scene)
        {
            bar.set_message(format!("{scene} (animation {})", animation + 1));
        }
    }

    fn with_why(&self, scene: &str, why: &[String]) -> String {
        if self.explain && !why.is_empty() {
            format!("{scene} ({})", why.join(", "))
        } else {
            scene.to_string()
        }
    }

    pub fn scene_finished(&self, f: &Finished) {
        let (scene, status, seconds, error, detail) =
            (f.scene, f.status, f.seconds, f.error, f.detail);
        if let Ok(mut b) = self.bars.lock()
            && let Some(bar) = b.remove(scene)
        {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        if let Ok(o) = self.overall.lock()
            && let Some(bar) = o.as_ref()
        {
            bar.inc(1);
        }
        self.emit(&Message::SceneFinished {
            scene: scene.to_string(),
            status,
            seconds: (seconds * 1000.0).round() / 1000.0,
            error: error.cloned(),
            why: f.why.to_vec(),
        });
        if self.is_json() {
            return;
        }
        match status {
            SceneStatus::Rendered => self.status("Rendered", &format!("{scene} in {seconds:.1}s")),
            SceneStatus::Cached if self.explain => {
                self.status("Fresh", &self.with_why(scene, f.why))
            }
            SceneStatus::Cached => self.status("Fresh", &format!("{scene} (cached)")),
            SceneStatus::Failed => {
                let e = error
                    .cloned()
                    .unwrap_or_else(|| SceneError::plain("failed"));
                let mut text = format!(
                    "{} {scene}",
                    style(format!("{:>12}", "Failed")).red().bold()
                );
                if let (Some(f), Some(l)) = (&e.file, e.line) {
                    text.push_str(&format!("\n{:>12} {f}:{l}", style("-->").blue().bold()));
                }
                text.push_str(&format!("\n{:>12} {}", "", e.message));
                if let Some(d) = detail.filter(|d| !d.trim().is_empty()) {
                    for l in d.lines() {
                        text.push_str(&format!("\n{:>12} {}", "", style(l).dim()));
                    }
                }
                self.line(&text);
            }
        }
    }

    pub fn finish_progress(&self) {
        if let Ok(mut o) = self.overall.lock()
            && let Some(bar) = o.take()
        {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }

    /// A fatal error, with what to do about it.
    pub fn error(&self, err: &Error) {
        self.finish_progress();
        let mut text = format!("{}: {err}", style("error").red().bold());
        if let Error::Config(c) = err {
            text.push_str(&format!(
                "\n  {} {}",
                style("-->").blue().bold(),
                c.location()
            ));
            if let Some((line, col, snippet)) = c.snippet() {
                let w = line.to_string().len();
                text.push_str(&format!(
                    "\n {:w$} |\n {line} | {snippet}\n {:w$} | {}^",
                    "",
                    "",
                    " ".repeat(col.saturating_sub(1))
                ));
            }
        }
        if let Error::Discovery { detail, .. } = err
            && !detail.is_empty()
        {
            for l in detail.lines() {
                text.push_str(&format!("\n  {l}"));
            }
        }
        if let Some(help) = err.help() {
            text.push_str(&format!("\n  {} {help}", style("= help:").cyan().bold()));
        }
        self.emit(&Message::Error {
            message: err.to_string(),
            location: match err {
                Error::Config(c) => Some(c.location()),
                _ => None,
            },
            help: err.help(),
        });
        self.err(&text);
    }
}

/// The frames of a Python traceback that are in the user's own files, with
/// their source lines, and the exception line: what a user needs, without
/// the frames inside Manim.
pub fn user_traceback(traceback: &str, root: &Path) -> String {
    let root = root.display().to_string();
    let lines: Vec<&str> = traceback.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim_start().starts_with("File \"") {
            let mine = l.contains(&root) && !l.contains("/.venv/") && !l.contains("site-packages");
            if mine {
                out.push(l.trim().replace(&format!("{root}/"), ""));
                if let Some(next) = lines.get(i + 1)
                    && !next.trim_start().starts_with("File \"")
                {
                    out.push(format!("  {}", next.trim()));
                    i += 1;
                }
            }
        }
        i += 1;
    }
    out.join("\n")
}

pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Timer {
        Timer(Instant::now())
    }
    pub fn secs(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// Reports `e` and gives the exit code it calls for.
pub fn fail(reporter: &Reporter, e: Error) -> std::process::ExitCode {
    reporter.error(&e);
    std::process::ExitCode::from(e.exit_code())
}

/// `1.2 MB`: a byte count for people (decimal units).
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.1} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::human_duration;

    #[test]
    fn a_closed_output_stops_reporting_without_panicking() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let closed = AtomicBool::new(false);
        write_line(&closed, Closed, "x");
        assert!(closed.load(Ordering::Relaxed));
        let mut kept = Vec::new();
        write_line(&closed, &mut kept, "y");
        assert!(kept.is_empty(), "nothing is written after a failure");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(human_duration(Duration::from_secs(600)), "10m00s");
    }

    #[test]
    fn traceback_keeps_user_frames() {
        let tb = "Traceback (most recent call last):\n  File \"/p/.venv/lib/python3.11/site-packages/manim/scene/scene.py\", line 10, in render\n    self.construct()\n  File \"/p/scenes/a.py\", line 7, in construct\n    common.boom()\n  File \"/p/scenes/common.py\", line 3, in boom\n    return x + 1\nNameError: name 'x' is not defined\n";
        let out = user_traceback(tb, Path::new("/p"));
        assert_eq!(
            out,
            "File \"scenes/a.py\", line 7, in construct\n  common.boom()\nFile \"scenes/common.py\", line 3, in boom\n  return x + 1"
        );
    }
}
