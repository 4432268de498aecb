//! `parender watch`: build, then rebuild whenever a scene's inputs change.
//!
//! Events are hints, content hashes decide: a debounced batch of relevant
//! file events (or a rescan request) triggers a build, and the build renders
//! only what changed. A change that arrives while a build runs stops the
//! renders whose inputs changed (the others keep going), makes the build skip
//! its stitch, and a new build follows at once: at most one restitch is
//! queued and no edit is lost.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use clap::Args;

use crate::commands::build::ProfileArgs;
use crate::report::MessageFormat;

use crate::commands::build::{self, BuildOptions, BuildOutcome, Services, WatchHooks};
use crate::config::{MANIFEST, parse_duration};
use crate::error::Error;
use crate::messages::Message;
use crate::project::Project;
use crate::report::Reporter;
use crate::serve::Preview;
use crate::serve::state::PageState;
use crate::settings::Overrides;

/// Default quiet period after the last event.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);
/// However busy the file system, a rebuild starts this long after the first event.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// Folders that never hold a scene's inputs (and that tools write to).
const IGNORED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "media",
    ".venv",
    "venv",
    "node_modules",
    "target",
    ".parender",
    ".mypy_cache",
    ".pytest_cache",
];

/// Editors' temporary and backup files.
pub fn is_editor_temp(name: &str) -> bool {
    name == "4913"
        || name.ends_with('~')
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'))
        || (name.starts_with('.') && {
            let ext = name.rsplit('.').next().unwrap_or("");
            ext.len() == 3 && ext.starts_with("sw")
        })
        || name.contains("___jb_")
        || name.ends_with(".tmp")
        || name.ends_with(".swp")
        || name.ends_with(".pyc")
        || name.ends_with(".pyo")
        || is_sed_temp(name)
}

/// `sed -i` writes its output to `sedXXXXXX` (six random letters and
/// digits) beside the file, then renames it over the file.
fn is_sed_temp(name: &str) -> bool {
    name.len() == 9
        && name.starts_with("sed")
        && name[3..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Clears the terminal (`--clear`); a closed stderr is no error.
fn clear_screen() {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(b"\x1b[2J\x1b[H").and_then(|()| e.flush());
}

/// An event that only says a file was opened or read.
fn is_read(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode};
    matches!(kind, notify::EventKind::Access(a) if !matches!(a, AccessKind::Close(AccessMode::Write)))
}

/// Decides which paths matter.
pub struct Filter {
    root: PathBuf,
    own: Vec<PathBuf>,
    globs: GlobSet,
}

impl Filter {
    pub fn new(project: &Project) -> Result<Filter, Error> {
        let mut b = GlobSetBuilder::new();
        for g in &project.config.watch.ignore {
            let glob = Glob::new(g).map_err(|e| Error::Selection {
                message: format!("invalid glob `{g}` in [watch] ignore: {e}"),
                help: Some("globs are relative to the project root, e.g. \"drafts/**\"".into()),
            })?;
            b.add(glob);
        }
        Ok(Filter {
            root: project.root.clone(),
            own: vec![project.state_dir(), project.output_dir()],
            globs: b.build().map_err(|e| Error::Other(e.to_string()))?,
        })
    }

    /// The project-relative path, if a change there can matter.
    pub fn relevant(&self, path: &Path) -> Option<String> {
        if self.own.iter().any(|o| path.starts_with(o)) {
            return None;
        }
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let (name, dirs) = parts.split_last()?;
        if dirs.iter().any(|d| IGNORED_DIRS.contains(&d.as_str())) || is_editor_temp(name) {
            return None;
        }
        let rel = parts.join("/");
        if IGNORED_DIRS.contains(&name.as_str()) || self.globs.is_match(&rel) {
            return None;
        }
        Some(rel)
    }
}

fn watch_error(e: notify::Error, poll: bool) -> Error {
    let enospc = matches!(&e.kind, notify::ErrorKind::MaxFilesWatch)
        || matches!(&e.kind, notify::ErrorKind::Io(io) if io.raw_os_error() == Some(libc::ENOSPC));
    if enospc {
        return Error::Toolchain {
            message: "cannot watch the project: the system's limit of inotify watches is reached".into(),
            help: "raise it: `sudo sysctl fs.inotify.max_user_watches=524288` (persist it in /etc/sysctl.d/), or run `parender watch --poll`".into(),
        };
    }
    Error::Toolchain {
        message: format!("cannot watch the project: {e}"),
        help: if poll {
            "check that the project folder is readable".into()
        } else {
            "try `parender watch --poll` (needed on some network and container file systems)".into()
        },
    }
}

/// Sets up watches: the root itself, and every top-level folder that is not
/// ignored, recursively (so `.venv`, `.git` and build folders cost nothing).
fn watch_tree(
    w: &mut dyn Watcher,
    project: &Project,
    filter: &Filter,
    poll: bool,
) -> Result<(), Error> {
    w.watch(&project.root, RecursiveMode::NonRecursive)
        .map_err(|e| watch_error(e, poll))?;
    let rd = std::fs::read_dir(&project.root).map_err(|e| Error::io(&project.root, e))?;
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() && filter.relevant(&p.join("x")).is_some() {
            w.watch(&p, RecursiveMode::Recursive)
                .map_err(|e| watch_error(e, poll))?;
        }
    }
    Ok(())
}

struct Cycle {
    handle: JoinHandle<Result<BuildOutcome, Error>>,
    hooks: Arc<WatchHooks>,
}

fn start(
    project: &Project,
    overrides: &Overrides,
    services: &Arc<Services>,
    reporter: &Arc<Reporter>,
    cancel: &CancellationToken,
) -> Cycle {
    let hooks = Arc::new(WatchHooks::default());
    let (project, services, reporter, cancel) = (
        project.clone(),
        services.clone(),
        reporter.clone(),
        cancel.clone(),
    );
    let opts = BuildOptions {
        overrides: overrides.clone(),
        watch: Some(hooks.clone()),
        ..Default::default()
    };
    let handle = tokio::spawn(async move {
        let built = build::build(&project, &opts, &services, &reporter, &cancel).await;
        // Warm workers ready before the next edit arrives (a no-op when
        // they run; restarted here after Manim or manim.cfg changed).
        let runner = services.runner.clone();
        tokio::spawn(async move { runner.warm_up().await });
        built
    });
    Cycle { handle, hooks }
}

/// `parender.toml` changed: the new project and filter, and new services
/// (Python, backend, warm workers) when what they are made from changed.
/// A configuration that does not parse keeps the last good one.
fn reload(
    project: &mut Project,
    filter: &mut Filter,
    services: &mut Arc<Services>,
    reporter: &Reporter,
) {
    let p = match Project::open(Some(&project.root)) {
        Ok(p) => p,
        Err(e) => {
            reporter.error(&e);
            reporter.warning("keeping the last good configuration until parender.toml is fixed");
            return;
        }
    };
    match Filter::new(&p) {
        Ok(f) => *filter = f,
        Err(e) => reporter.error(&e),
    }
    let (old, new) = (&project.config, &p.config);
    if (&old.python, &old.manim, old.render.backend)
        != (&new.python, &new.manim, new.render.backend)
    {
        match crate::commands::build::services(&p) {
            Ok(s) => *services = Arc::new(s),
            Err(e) => reporter.error(&e),
        }
    }
    *project = p;
}

/// Stops the in-flight renders whose inputs changed; the others keep going.
async fn supersede(cycle: &Cycle, project: &Project, overrides: &Overrides, services: &Services) {
    cycle
        .hooks
        .superseded
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let inflight: Vec<(String, String, CancellationToken)> = match cycle.hooks.inflight.lock() {
        Ok(m) => m
            .iter()
            .map(|(s, (k, t))| (s.clone(), k.clone(), t.clone()))
            .collect(),
        Err(_) => return,
    };
    if inflight.is_empty() {
        return;
    }
    let fresh = build::prepare(
        project,
        overrides,
        &services.runner,
        &CancellationToken::new(),
    )
    .await;
    for (scene, key, token) in inflight {
        let now = fresh.as_ref().ok().and_then(|p| {
            p.discovery
                .scenes
                .iter()
                .position(|s| s.id.0 == scene)
                .map(|i| p.keys[i].clone())
        });
        // Gone, changed, or unknowable (the project does not load): stop it.
        if now.as_deref() != Some(key.as_str()) {
            token.cancel();
        }
    }
}

fn on_success(cmd: &str, output: &Path, reporter: &Reporter) {
    let spawned = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("PARENDER_OUTPUT", output)
        .stdin(std::process::Stdio::null())
        .spawn();
    match spawned {
        // Reap it in the background; its output goes to our terminal.
        Ok(mut child) => {
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
        Err(e) => reporter.warning(&format!("--on-success `{cmd}` could not start: {e}")),
    }
}

pub async fn run(args: WatchArgs, cancel: CancellationToken) -> ExitCode {
    let reporter = Arc::new(Reporter::new(args.message_format));
    match watch(args, &reporter, cancel).await {
        Ok(code) => code,
        Err(e) => {
            reporter.error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}

/// How long to wait for quiet, from the command line or `parender.toml`,
/// and the polling interval if polling.
fn timing(args: &WatchArgs, project: &Project) -> Result<(Duration, Option<Duration>), Error> {
    let parse = |s: &str, what: &str| {
        parse_duration(s).ok_or_else(|| Error::Selection {
            message: format!("invalid {what} `{s}`"),
            help: Some("write a duration like 100ms, 0.5s or 2s".into()),
        })
    };
    let debounce = match &args.debounce {
        Some(d) => parse(d, "--debounce")?,
        None => project
            .config
            .watch
            .debounce
            .map(|d| d.0)
            .unwrap_or(DEFAULT_DEBOUNCE),
    };
    let poll = args
        .poll
        .as_deref()
        .map(|p| parse(p, "--poll interval"))
        .transpose()?;
    Ok((debounce, poll))
}

type Events = mpsc::UnboundedReceiver<notify::Result<notify::Event>>;

/// A file watcher (inotify, or polling every `poll`) and its events.
fn watcher(poll: Option<Duration>) -> Result<(Box<dyn Watcher + Send>, Events), Error> {
    let (tx, rx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
    let handler = move |res: notify::Result<notify::Event>| {
        let _ = tx.send(res);
    };
    let watcher: Box<dyn Watcher + Send> = match poll {
        Some(interval) => Box::new(
            notify::PollWatcher::new(
                handler,
                notify::Config::default()
                    .with_poll_interval(interval)
                    .with_compare_contents(true),
            )
            .map_err(|e| watch_error(e, true))?,
        ),
        None => Box::new(
            notify::RecommendedWatcher::new(handler, notify::Config::default())
                .map_err(|e| watch_error(e, false))?,
        ),
    };
    Ok((watcher, rx))
}

/// What the watch loop keeps between events.
struct Session<'a> {
    args: &'a WatchArgs,
    reporter: &'a Arc<Reporter>,
    cancel: &'a CancellationToken,
    project: Project,
    filter: Filter,
    services: Arc<Services>,
    overrides: Overrides,
    watcher: Box<dyn Watcher + Send>,
    debounce: Duration,
    polling: bool,
    preview: Option<Preview>,
    /// The build running now, if any.
    cycle: Option<Cycle>,
    /// An edit arrived during the running build: one more follows it.
    rerun: bool,
    /// Changed paths waiting for the quiet period to end.
    pending: BTreeSet<String>,
    quiet_until: Option<Instant>,
    first_event: Option<Instant>,
}

impl Session<'_> {
    /// When the pending changes are built: after the quiet period, and
    /// never later than [`MAX_DELAY`] after the first of them.
    fn deadline(&self) -> Option<Instant> {
        match (self.quiet_until, self.first_event) {
            (Some(q), Some(f)) => Some(q.min(f + MAX_DELAY)),
            (q, _) => q,
        }
    }

    fn start_cycle(&mut self) {
        let (p, o, s) = (&self.project, &self.overrides, &self.services);
        self.cycle = Some(start(p, o, s, self.reporter, self.cancel));
    }

    /// A file event: relevant paths join the pending batch.
    fn on_event(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            // Reads (parender's own hashing among them) change nothing.
            Ok(event) if is_read(&event.kind) => return,
            Ok(event) => event,
            Err(e) => return self.reporter.warning(&format!("file watcher: {e}")),
        };
        let mut any = event.need_rescan();
        for p in &event.paths {
            let Some(rel) = self.filter.relevant(p) else {
                continue;
            };
            // A new top-level folder needs its own watch.
            if p.parent() == Some(self.project.root.as_path()) && p.is_dir() {
                let _ = self.watcher.watch(p, RecursiveMode::Recursive);
            }
            if !self.pending.contains(&rel) {
                // The page shows it at once, before the debounce.
                self.reporter
                    .tap(&Message::FileChanged { path: rel.clone() });
            }
            self.pending.insert(rel);
            any = true;
        }
        if event.need_rescan() {
            // The kernel dropped events: look at everything again.
            self.pending.insert("(rescan)".into());
            let (w, p, f) = (self.watcher.as_mut(), &self.project, &self.filter);
            let _ = watch_tree(w, p, f, self.polling);
        }
        if any {
            self.quiet_until = Some(Instant::now() + self.debounce);
            self.first_event.get_or_insert_with(Instant::now);
        }
    }

    /// The quiet period ended: build the pending changes (or stop the
    /// running build's renders they make stale, and build again after it).
    async fn on_quiet(&mut self) {
        self.quiet_until = None;
        self.first_event = None;
        let paths: Vec<String> = std::mem::take(&mut self.pending).into_iter().collect();
        self.reporter.emit(&Message::WatchChange {
            paths: paths.clone(),
        });
        if self.args.clear && !self.reporter.is_json() {
            clear_screen();
        }
        self.reporter.status("Changed", &paths.join(", "));
        if paths.iter().any(|p| p == MANIFEST) {
            let (p, f, s) = (&mut self.project, &mut self.filter, &mut self.services);
            reload(p, f, s, self.reporter);
        }
        match &self.cycle {
            Some(c) => {
                supersede(c, &self.project, &self.overrides, &self.services).await;
                self.rerun = true;
            }
            None => self.start_cycle(),
        }
    }

    /// The running build ended; `Some` exit code ends `watch`.
    fn on_built(
        &mut self,
        done: Result<Result<BuildOutcome, Error>, JoinError>,
    ) -> Option<ExitCode> {
        self.cycle = None;
        match done {
            Ok(Ok(outcome)) => {
                if let (Some(p), Some(out), Some(o)) =
                    (&self.preview, &outcome.output, &outcome.published)
                {
                    p.published(out, o);
                }
                if outcome.superseded || self.rerun {
                    self.rerun = false;
                    self.start_cycle();
                    return None;
                }
                if outcome.success
                    && let (Some(cmd), Some(out)) = (&self.args.on_success, &outcome.output)
                {
                    on_success(cmd, out, self.reporter);
                }
            }
            Ok(Err(Error::Interrupted)) => return Some(ExitCode::from(130)),
            Ok(Err(e)) => self.reporter.error(&e),
            Err(e) => self
                .reporter
                .error(&Error::Other(format!("the build task failed: {e}"))),
        }
        if self.rerun {
            self.rerun = false;
            self.start_cycle();
        } else {
            let root = self.project.root.display();
            self.reporter
                .status("Watching", &format!("{root} for changes (Ctrl-C to stop)"));
        }
        None
    }
}

async fn watch(
    args: WatchArgs,
    reporter: &Arc<Reporter>,
    cancel: CancellationToken,
) -> Result<ExitCode, Error> {
    let project = Project::open(args.profile.project.as_deref())?;
    let services = Arc::new(crate::commands::build::services(&project)?);
    let (debounce, poll) = timing(&args, &project)?;
    let (mut watcher, mut rx) = watcher(poll)?;
    let filter = Filter::new(&project)?;
    watch_tree(watcher.as_mut(), &project, &filter, poll.is_some())?;
    if args.clear && !reporter.is_json() {
        clear_screen();
    }
    let preview = serve(&args, &project, &services, reporter).await?;
    let mut s = Session {
        args: &args,
        reporter,
        cancel: &cancel,
        overrides: args.profile.overrides(),
        project,
        filter,
        services,
        watcher,
        debounce,
        polling: poll.is_some(),
        preview,
        cycle: None,
        rerun: false,
        pending: BTreeSet::new(),
        quiet_until: None,
        first_event: None,
    };
    s.start_cycle();
    loop {
        let deadline = s.deadline();
        tokio::select! {
            _ = cancel.cancelled() => {
                if let Some(c) = s.cycle.take() {
                    let _ = c.handle.await;
                }
                return Ok(ExitCode::from(130));
            }
            ev = rx.recv() => match ev {
                Some(ev) => s.on_event(ev),
                None => return Err(Error::Other("the file watcher stopped".into())),
            },
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            } => s.on_quiet().await,
            done = async {
                match s.cycle.as_mut() {
                    Some(c) => (&mut c.handle).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(code) = s.on_built(done) {
                    return Ok(code);
                }
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Poll the file system instead of using inotify (network and container
    /// file systems), every INTERVAL (default 500ms)
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, default_missing_value = "500ms")]
    pub poll: Option<String>,
    /// Quiet period after the last change before rebuilding (default: `[watch] debounce`, else 100ms)
    #[arg(long, value_name = "DURATION")]
    pub debounce: Option<String>,
    /// Clear the screen before each rebuild
    #[arg(long)]
    pub clear: bool,
    /// Run this (with `sh -c`) after each successful rebuild; the video's path is in $PARENDER_OUTPUT
    #[arg(long, value_name = "CMD")]
    pub on_success: Option<String>,
    /// Serve a live preview page (the latest video, the scenes' status) on
    /// ADDR: PORT or HOST:PORT (default 127.0.0.1 and a free port)
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:0")]
    pub serve: Option<String>,
    /// With --serve: open the page in the default browser
    #[arg(long, requires = "serve")]
    pub open: bool,
    #[arg(long, value_enum, default_value = "human", value_name = "FMT")]
    pub message_format: MessageFormat,
}

/// `--serve`: starts the preview server and says where it is.
async fn serve(
    args: &WatchArgs,
    project: &Project,
    services: &Services,
    reporter: &Reporter,
) -> Result<Option<Preview>, Error> {
    let Some(addr) = &args.serve else {
        return Ok(None);
    };
    let addr = crate::serve::parse_addr(addr).map_err(|message| Error::Selection {
        message: format!("--serve: {message}"),
        help: None,
    })?;
    let state = PageState::new(&project.name, &project.relative(&project.output_dir()));
    let cache = project.state_dir().join("cache");
    let preview = Preview::start(addr, state, services.ffmpeg.clone(), &cache, reporter).await?;
    if !addr.ip().is_loopback() {
        reporter.warning(&format!(
            "the preview is served on {addr}, not only to this machine: anyone who can reach it sees the video"
        ));
    }
    reporter.emit(&Message::ServeStarted {
        url: preview.url.clone(),
    });
    reporter.status("Serving", &format!("the preview at {}", preview.url));
    if args.open
        && let Err(e) = std::process::Command::new("xdg-open")
            .arg(&preview.url)
            .spawn()
    {
        reporter.warning(&format!(
            "--open: cannot start a browser (xdg-open: {e}); open {} yourself",
            preview.url
        ));
    }
    Ok(Some(preview))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn editor_temp_files() {
        for t in [
            "4913",
            "scene.py~",
            ".scene.py.swp",
            ".scene.py.swx",
            "#scene.py#",
            ".#scene.py",
            "scene.py___jb_tmp___",
            "scene.py___jb_old___",
            ".scene.py.tmp",
            "common.cpython-311.pyc",
            "sedA1b2C3",
            "sed0TQfAa",
        ] {
            assert!(is_editor_temp(t), "{t}");
        }
        for f in [
            "scene.py",
            "logo.svg",
            "01_intro.wav",
            "manim.cfg",
            ".gitignore",
            "sed.py",
            "sedimentary",
        ] {
            assert!(!is_editor_temp(f), "{f}");
        }
    }

    #[test]
    fn filter_ignores_own_folders_tools_and_globs() {
        let root = PathBuf::from("/p");
        let project = Project {
            root: root.clone(),
            manifest: root.join(MANIFEST),
            config: Config::parse(
                "[watch]\nignore = [\"drafts/**\", \"*.log\"]\n",
                Path::new("p.toml"),
            )
            .unwrap(),
            name: "p".into(),
        };
        let f = Filter::new(&project).unwrap();
        assert_eq!(
            f.relevant(&root.join("scenes/a.py")).as_deref(),
            Some("scenes/a.py")
        );
        assert_eq!(
            f.relevant(&root.join("parender.toml")).as_deref(),
            Some("parender.toml")
        );
        for ignored in [
            ".parender/cache/x.json",
            "out/dev/p.mp4",
            "scenes/__pycache__/a.cpython-311.pyc",
            "media/videos/a.mp4",
            ".git/index",
            "drafts/x.py",
            "run.log",
            "scenes/4913",
        ] {
            assert_eq!(f.relevant(&root.join(ignored)), None, "{ignored}");
        }
        assert_eq!(f.relevant(Path::new("/elsewhere/a.py")), None);
    }
}
