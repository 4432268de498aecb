//! `parender status`, `parender cache stats|gc` and `parender clean`: what
//! the cache knows, without rendering anything.
use std::path::Path;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::config::Quality;
use crate::report::MessageFormat;

use crate::analyze::toolchain::Toolchain;
use crate::cache::store::{LocalStore, Lookup, Store};
use crate::commands::build::{BuildStats, prepare, stats_path, why_stale};
use crate::error::Error;
use crate::messages::Message;
use crate::project::Project;
use crate::report::Reporter;
use crate::report::human_size;
use crate::settings::Overrides;

/// A line on stdout (stderr): a closed pipe ends the output, not the command.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Default size `parender cache gc` trims the cache to.
pub const DEFAULT_MAX_SIZE: u64 = 2_000_000_000;

pub async fn status(args: &StatusArgs, reporter: &Reporter) -> Result<ExitCode, Error> {
    let project = Project::open(args.project.as_deref())?;
    let (python, _) = Toolchain::resolve_python(&project)?;
    let overrides = Overrides {
        release: args.release,
        quality: args.quality,
        jobs: None,
    };
    let p = prepare(
        &project,
        &overrides,
        &crate::python::Runner::cold(&python),
        &CancellationToken::new(),
    )
    .await?;
    let mut stale = 0;
    for (i, scene) in p.discovery.scenes.iter().enumerate() {
        let (state, why, error) = match p.store.get(&p.keys[i])? {
            Lookup::Hit(_) => ("fresh", vec![], None),
            other => {
                stale += 1;
                let corrupt = match &other {
                    Lookup::Corrupt(c) => Some(c.as_str()),
                    _ => None,
                };
                match p.store.failure(&p.keys[i]) {
                    Some(e) => (
                        "failed",
                        vec!["its last render failed".to_string()],
                        Some(e),
                    ),
                    None => ("stale", why_stale(&p, i, corrupt), None),
                }
            }
        };
        if reporter.is_json() {
            reporter.emit(&Message::SceneStatus {
                scene: scene.id.0.clone(),
                status: state.into(),
                why,
                error,
                scene_sound: p.scene_sound(i),
            });
        } else {
            let detail = match (&error, why.is_empty()) {
                (Some(e), _) => format!(" ({})", e.summary()),
                (None, false) => format!(" ({})", why.join(", ")),
                (None, true) => String::new(),
            };
            let sound = match p.scene_sound(i) {
                Some(true) => " [sound from the scene]",
                _ => "",
            };
            say!("{state:>6}  {}{detail}{sound}", scene.id);
        }
    }
    for b in &p.discovery.broken {
        stale += 1;
        if reporter.is_json() {
            reporter.emit(&Message::SceneStatus {
                scene: format!(
                    "{}:{}",
                    b.file,
                    b.classes.first().map(String::as_str).unwrap_or("<module>")
                ),
                status: "failed".into(),
                why: vec![format!("{} cannot be loaded", b.file)],
                error: Some(b.error.clone()),
                scene_sound: None,
            });
        } else {
            say!("failed  {} ({})", b.file, b.error.summary());
        }
    }
    p.hashes.save();
    Ok(if stale == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn cache(command: CacheCommand, project: Option<&Path>) -> Result<(), Error> {
    let project = Project::open(project)?;
    let state = project.state_dir();
    let hashes = std::sync::Arc::new(crate::analyze::hashcache::HashCache::load(
        state.join("hashes.json"),
    ));
    let store = LocalStore::open(state.join("cache"), hashes);
    match command {
        CacheCommand::Stats => {
            let usage = store.usage()?;
            let videos = crate::cache::store::Usage::total(&usage);
            let builds: Vec<BuildStats> = std::fs::read(stats_path(&project))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            let last = &builds[builds.len().saturating_sub(10)..];
            let (hit, miss) = last
                .iter()
                .fold((0, 0), |(h, m), b| (h + b.cached, m + b.rendered));
            say!("cache:      {}", state.display());
            say!(
                "entries:    {} renders ({} of video)",
                usage.len(),
                human_size(videos)
            );
            say!(
                "on disk:    {} (with muxed audio, Manim's media folders and memos)",
                human_size(crate::fsutil::dir_size(&state))
            );
            if hit + miss > 0 {
                say!(
                    "hit rate:   {:.0}% over the last {} build{} ({hit} cached, {miss} rendered)",
                    100.0 * hit as f64 / (hit + miss) as f64,
                    last.len(),
                    if last.len() == 1 { "" } else { "s" }
                );
            } else {
                say!("hit rate:   no builds yet");
            }
            if let Some(url) = &project.config.cache.remote {
                let r = crate::cache::remote::load_stats(&state.join("cache"));
                say!("remote:     {url}");
                say!(
                    "  lookups:  {} hits, {} misses, {} rejected (failed their hash check)",
                    r.hits,
                    r.misses,
                    r.rejected
                );
                say!(
                    "  bytes:    {} down, {} up in {} uploads; unavailable {} time{}",
                    human_size(r.bytes_down),
                    human_size(r.bytes_up),
                    r.uploads,
                    r.errors,
                    if r.errors == 1 { "" } else { "s" }
                );
            }
        }
        CacheCommand::Gc { max_size } => {
            let limit = max_size
                .or(project.config.cache_max_size.map(|s| s.0))
                .unwrap_or(DEFAULT_MAX_SIZE);
            let mut r = store.gc(limit, Some(&state), || {
                say_err!(
                    "waiting for the builds using the cache (a build or watch) to finish; gc never removes what they hold"
                )
            })?;
            // Partial videos and side files killed builds left in out/<profile>/.
            if let Ok(rd) = std::fs::read_dir(project.output_dir()) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        let swept = crate::fsutil::remove_abandoned(&e.path(), |n| {
                            n.starts_with('.') && n.ends_with(".partial")
                        });
                        r.temps += swept.removed;
                        r.freed += swept.bytes;
                    }
                }
            }
            let n = |count: usize, one: &str, many: &str| {
                format!("{count} {}", if count == 1 { one } else { many })
            };
            say!(
                "removed {}, {}, {}, {} and {}: {} freed; the cache holds {} (limit {})",
                n(r.entries, "entry", "entries"),
                n(r.muxes, "mux", "muxes"),
                n(r.cards, "placeholder card", "placeholder cards"),
                n(r.media, "media folder", "media folders"),
                n(r.temps, "abandoned temp file", "abandoned temp files"),
                human_size(r.freed),
                human_size(r.left),
                human_size(limit)
            );
        }
    }
    Ok(())
}

/// Removes `.parender/` and the output folder, and nothing else.
pub fn clean(project: Option<&Path>, reporter: &Reporter) -> Result<(), Error> {
    let project = Project::open(project)?;
    // A build or watch using the cache would fail half-way: refuse, and
    // hold the lock while removing so none starts meanwhile.
    let users = project.state_dir().join("cache").join("users.lock");
    let _held = match std::fs::File::open(&users) {
        Ok(f) => match f.try_lock() {
            Ok(()) => Some(f),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Other(format!(
                    "a build or watch is using {}; stop it, then clean",
                    project.state_dir().display()
                )));
            }
            Err(std::fs::TryLockError::Error(_)) => None,
        },
        Err(_) => None,
    };
    for dir in [project.state_dir(), project.output_dir()] {
        // Never remove the project itself or anything above it.
        if project.root.starts_with(&dir) {
            return Err(Error::Other(format!(
                "refusing to remove {}: it contains the project",
                dir.display()
            )));
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            reporter.status("Removed", &dir.display().to_string());
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries, size, and how well the cache served the last builds
    Stats,
    /// Evict least recently used renders until the cache fits
    Gc {
        /// Size to trim to, e.g. 500MB or 2GB (default: `cache_max_size`, else 2GB)
        #[arg(long, value_name = "SIZE", value_parser = parse_size_arg)]
        max_size: Option<u64>,
    },
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    #[arg(long)]
    pub release: bool,
    #[arg(long, short = 'q', value_name = "Q", value_parser = crate::commands::build::parse_quality)]
    pub quality: Option<Quality>,
    #[arg(long, value_enum, default_value = "human", value_name = "FMT")]
    pub message_format: MessageFormat,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    crate::config::parse_size(s).ok_or_else(|| "expected a size like 500MB or 2GB".into())
}
