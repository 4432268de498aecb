//! The command line (clap): parses, resolves, and runs one command. Errors
//! are rendered here, at the edge, with what to do about them.
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::build::{self, BuildOptions, Services};
use crate::error::Error;
use crate::media::Ffmpeg;
use crate::messages::SceneListing;
use crate::project::Project;
use crate::render::ManimRenderer;
use crate::report::{MessageFormat, Reporter};
use crate::settings::{Overrides, Quality};
use crate::toolchain::Toolchain;

#[derive(Debug, Parser)]
#[command(
    name = "parender",
    version,
    about = "Turns a folder of Manim scenes into one narrated video, fast",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render stale scenes in parallel, pair them with their audio and stitch the video
    Build(BuildArgs),
    /// List the scenes in build order with their audio (a dry view of `build`)
    Scenes(ScenesArgs),
    /// Build, then rebuild on every saved change to a scene's inputs
    Watch(WatchArgs),
    /// Show every scene as fresh, stale (and why) or failed, without rendering
    Status(StatusArgs),
    /// Inspect or trim the render cache
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
        #[arg(long, value_name = "DIR", global = true)]
        project: Option<PathBuf>,
    },
    /// Remove parender's cache (.parender/) and outputs (out/); nothing else
    Clean {
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
    },
    /// Create a new project skeleton
    Init {
        /// Folder for the new project (default: the current folder)
        dir: Option<PathBuf>,
    },
    /// Check Manim, Python, ffmpeg and LaTeX, and say how to fix what is missing
    Doctor {
        #[arg(long, value_name = "DIR")]
        project: Option<PathBuf>,
    },
}

/// Which project, profile and parallelism: shared by `build` and `watch`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Project folder (default: the nearest folder upward with parender.toml)
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    /// Build the release profile (default quality high: 1920x1080 at 60 fps)
    #[arg(long)]
    pub release: bool,
    /// Manim quality, overriding the profile: l m h p k or low medium high production fourk
    #[arg(long, short = 'q', value_name = "Q", value_parser = parse_quality)]
    pub quality: Option<Quality>,
    /// Renders at once (default: profile's `jobs`, else the number of CPUs)
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u32).range(1..=crate::config::MAX_JOBS as i64))]
    pub jobs: Option<u32>,
}

impl ProfileArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            release: self.release,
            quality: self.quality,
            jobs: self.jobs.map(|j| j as usize),
        }
    }
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Write the final video here instead of out/<profile>/<name>.mp4
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write no final video when any scene failed
    #[arg(long)]
    pub strict: bool,
    /// Say why each scene was rendered (what changed) or reused
    #[arg(long)]
    pub explain: bool,
    /// Output format for messages
    #[arg(long, value_enum, default_value = "human", value_name = "FMT")]
    pub message_format: MessageFormat,
    /// Build only these scenes (`file.py`, `file.py:Class` or `Class`); the
    /// video still includes every other scene's last render
    #[arg(value_name = "SCENE")]
    pub scenes: Vec<String>,
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
    #[arg(long, value_enum, default_value = "human", value_name = "FMT")]
    pub message_format: MessageFormat,
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
    #[arg(long, short = 'q', value_name = "Q", value_parser = parse_quality)]
    pub quality: Option<Quality>,
    #[arg(long, value_enum, default_value = "human", value_name = "FMT")]
    pub message_format: MessageFormat,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    crate::config::parse_size(s).ok_or_else(|| "expected a size like 500MB or 2GB".into())
}

#[derive(Debug, Args)]
pub struct ScenesArgs {
    #[arg(long, value_name = "DIR")]
    pub project: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "human", value_name = "FMT")]
    pub message_format: MessageFormat,
}

fn parse_quality(s: &str) -> Result<Quality, String> {
    s.parse().map_err(|_| {
        format!(
            "expected one of {}",
            crate::settings::QUALITY_NAMES.join(", ")
        )
    })
}

pub fn main() -> ExitCode {
    crate::report::init_colors();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARENDER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            Reporter::new(MessageFormat::Human)
                .err(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(3);
        }
    };
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Build(args) => run_build(args).await,
        Command::Scenes(args) => {
            let reporter = Reporter::new(args.message_format);
            match list_scenes(&args, &reporter).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&reporter, e),
            }
        }
        Command::Init { dir } => {
            let reporter = Reporter::new(MessageFormat::Human);
            match crate::init::init(dir.as_deref()) {
                Ok(path) => {
                    reporter.status(
                        "Created",
                        &format!("a parender project in {}", path.display()),
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&reporter, e),
            }
        }
        Command::Doctor { project } => crate::doctor::doctor(project.as_deref()).await,
        Command::Watch(args) => crate::watch::run(args, cancel_on_signals()).await,
        Command::Status(args) => {
            let reporter = Reporter::new(args.message_format);
            match crate::status::status(&args, &reporter).await {
                Ok(code) => code,
                Err(e) => fail(&reporter, e),
            }
        }
        Command::Cache { command, project } => {
            let reporter = Reporter::new(MessageFormat::Human);
            match crate::status::cache(command, project.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&reporter, e),
            }
        }
        Command::Clean { project } => {
            let reporter = Reporter::new(MessageFormat::Human);
            match crate::status::clean(project.as_deref(), &reporter) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&reporter, e),
            }
        }
    }
}

fn fail(reporter: &Reporter, e: Error) -> ExitCode {
    reporter.error(&e);
    ExitCode::from(e.exit_code())
}

/// Ctrl-C and SIGTERM cancel the token; renders stop their process groups.
fn cancel_on_signals() -> CancellationToken {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let sigterm = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = sigterm => {}
        }
        c.cancel();
    });
    cancel
}

async fn run_build(args: BuildArgs) -> ExitCode {
    let mut reporter = Reporter::new(args.message_format);
    reporter.explain = args.explain;
    let reporter = Arc::new(reporter);
    let project = match Project::open(args.profile.project.as_deref()) {
        Ok(p) => p,
        Err(e) => return fail(&reporter, e),
    };
    let services = match services(&project) {
        Ok(s) => s,
        Err(e) => return fail(&reporter, e),
    };
    let opts = BuildOptions {
        overrides: args.profile.overrides(),
        output: args.output,
        strict: args.strict,
        scenes: args.scenes,
        watch: None,
    };
    let cancel = cancel_on_signals();
    match build::build(&project, &opts, &services, &reporter, &cancel).await {
        Ok(outcome) if outcome.success => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => fail(&reporter, e),
    }
}

/// The real renderer and tools for a project (or, with
/// `PARENDER_FAKE_RENDERER=1`, a fast stand-in for Manim, for tests of the
/// cache and the pipeline around it; documented in the README).
pub fn services(project: &Project) -> Result<Services, Error> {
    let tools = Toolchain::resolve(project)?;
    let ffmpeg = Ffmpeg {
        ffmpeg: tools.ffmpeg.clone(),
        ffprobe: tools.ffprobe.clone(),
    };
    let renderer: Arc<dyn crate::render::Renderer> =
        if std::env::var_os("PARENDER_FAKE_RENDERER").is_some_and(|v| v == "1") {
            Arc::new(crate::render::FakeRenderer {
                ffmpeg: ffmpeg.clone(),
            })
        } else {
            Arc::new(ManimRenderer {
                python: tools.python.clone(),
            })
        };
    Ok(Services {
        renderer,
        ffmpeg,
        python: tools.python,
    })
}

async fn list_scenes(args: &ScenesArgs, reporter: &Reporter) -> Result<(), Error> {
    let project = Project::open(args.project.as_deref())?;
    let (python, _) = Toolchain::resolve_python(&project)?;
    let p = crate::build::prepare(
        &project,
        &Overrides::default(),
        &python,
        &CancellationToken::new(),
    )
    .await?;
    let d = &p.discovery;
    for w in &d.warnings {
        reporter.warning(w);
    }
    for b in &d.broken {
        reporter.warning(&format!(
            "{} cannot be loaded, so its scenes are unknown: {}",
            b.file,
            b.error.summary()
        ));
    }
    for (i, s) in d.scenes.iter().enumerate() {
        let sound = p.scene_sound(i);
        if reporter.is_json() {
            let l = SceneListing {
                scene: s.id.0.clone(),
                file: s.file.clone(),
                class: s.class.clone(),
                line: s.line,
                audio: s.audio.as_ref().map(|a| a.display().to_string()),
                scene_sound: sound,
                title: s.title().to_string(),
            };
            if let Ok(line) = serde_json::to_string(&l) {
                reporter.out(&line);
            }
        } else {
            let audio = crate::build::describe_audio(s.audio.as_deref(), sound);
            reporter.out(&format!("{}  {audio}", s.id));
        }
    }
    p.hashes.save();
    Ok(())
}
