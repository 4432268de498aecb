//! `parender completions SHELL` and `parender man [COMMAND]...`: shell
//! completion scripts (clap_complete) and roff man pages (clap_mangen) made
//! from the same clap definitions the command line parses with, printed to
//! stdout so packagers and users put them wherever their system looks.
use std::io::Write;
use std::process::ExitCode;

use clap::Args;
use clap_complete::Shell;

use crate::error::Error;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A subcommand to print the page of (`parender man build` prints
    /// parender-build(1)); without one, parender(1)
    #[arg(value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The completion script for `shell`, for the command line `cmd`.
pub fn completions(shell: Shell, mut cmd: clap::Command) -> Vec<u8> {
    let name = cmd.get_name().to_string();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut out);
    out
}

/// The man page of `cmd` or of its subcommand `path` (`["cache", "gc"]`).
pub fn man(cmd: clap::Command, path: &[String]) -> Result<Vec<u8>, Error> {
    // `build` names the subcommands for their pages (`parender-build`).
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut page = &cmd;
    for name in path {
        page = page
            .get_subcommands()
            .find(|s| s.get_name() == name || s.get_all_aliases().any(|a| a == name))
            .ok_or_else(|| Error::Usage {
                message: format!(
                    "`{}` has no subcommand `{name}`",
                    page.get_display_name().unwrap_or(page.get_name())
                ),
                help: Some(format!(
                    "one of: {}",
                    page.get_subcommands()
                        .filter(|s| !s.is_hide_set())
                        .map(|s| s.get_name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            })?;
    }
    let mut out = Vec::new();
    // Every page's footer names parender and its version, not `gc `.
    let source = format!(
        "{} {}",
        cmd.get_name(),
        cmd.get_version().unwrap_or(env!("CARGO_PKG_VERSION"))
    );
    clap_mangen::Man::new(page.clone())
        .source(source)
        .render(&mut out)
        .map_err(|e| Error::Other(format!("cannot render the man page: {e}")))?;
    Ok(out)
}

/// Writes `bytes` to stdout; a closed stdout (`| head`) is not an error.
pub fn print(bytes: &[u8]) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}
