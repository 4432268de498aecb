//! The command line (clap): parses, resolves, and runs one command. Errors
//! are rendered here, at the edge, with what to do about them.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::commands::build::{self, BuildArgs};
use crate::commands::completions::{CompletionsArgs, ManArgs};
use crate::commands::scenes::{ScenesArgs, list_scenes};
use crate::commands::status::{CacheCommand, StatusArgs};
use crate::commands::watch::WatchArgs;
use crate::report::{MessageFormat, Reporter, fail};

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
    /// Print a shell completion script (`parender completions bash > ...`)
    Completions(CompletionsArgs),
    /// Print the man page in roff (`parender man > parender.1`)
    Man(ManArgs),
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
        Command::Build(args) => build::run(args, cancel_on_signals()).await,
        Command::Scenes(args) => {
            let reporter = Reporter::new(args.message_format);
            match list_scenes(&args, &reporter).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&reporter, e),
            }
        }
        Command::Init { dir } => {
            let reporter = Reporter::new(MessageFormat::Human);
            match crate::commands::init::init(dir.as_deref()) {
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
        Command::Doctor { project } => crate::commands::doctor::doctor(project.as_deref()).await,
        Command::Watch(args) => crate::commands::watch::run(args, cancel_on_signals()).await,
        Command::Status(args) => {
            let reporter = Reporter::new(args.message_format);
            match crate::commands::status::status(&args, &reporter).await {
                Ok(code) => code,
                Err(e) => fail(&reporter, e),
            }
        }
        Command::Cache { command, project } => {
            let reporter = Reporter::new(MessageFormat::Human);
            match crate::commands::status::cache(command, project.as_deref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&reporter, e),
            }
        }
        Command::Completions(args) => crate::commands::completions::print(
            &crate::commands::completions::completions(args.shell, Cli::command()),
        ),
        Command::Man(args) => {
            match crate::commands::completions::man(Cli::command(), &args.command) {
                Ok(page) => crate::commands::completions::print(&page),
                Err(e) => fail(&Reporter::new(MessageFormat::Human), e),
            }
        }
        Command::Clean { project } => {
            let reporter = Reporter::new(MessageFormat::Human);
            match crate::commands::status::clean(project.as_deref(), &reporter) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&reporter, e),
            }
        }
    }
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
