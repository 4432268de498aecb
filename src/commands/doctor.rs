//! `parender doctor`: checks every tool a build needs and prints the exact
//! command that fixes what is missing.
use std::path::Path;
use std::process::ExitCode;

use console::style;
use tokio::process::Command;

use crate::analyze::toolchain::{InstalledEnv, PINNED_MANIM, PROBE_TIMEOUT, Toolchain};
use crate::project::Project;

const APT: &str = "apt-get install -y --no-install-recommends";

/// `println!` that ignores a closed stdout (`parender doctor | head -1`)
/// instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// The first line a tool prints, if it runs and succeeds within
/// [`PROBE_TIMEOUT`] (a hanging interpreter must not hang `doctor`).
async fn first_line(prog: &Path, args: &[&str]) -> Option<String> {
    let run = Command::new(prog).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(PROBE_TIMEOUT, run).await.ok()?.ok()?;
    if !out.status.success() {
        return None;
    }
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// Which render backend the project uses, and whether its warm workers
/// start (a note, not a failure: renders then run the CLI way).
async fn render_backend(project: &Project, python: &Path) {
    if project.config.render.backend == crate::config::Backend::Cli {
        say!(
            "{} render backend: cli (a fresh Python per render; `[render] backend`)",
            style("  ok").green().bold()
        );
        return;
    }
    let t = std::time::Instant::now();
    match crate::python::WarmPool::start(python, &project.root, 1, &project.state_dir().join("tmp"))
        .await
    {
        Ok(pool) => say!(
            "{} render backend: warm (a worker imported Manim {} in {:.1}s; each render forks from it)",
            style("  ok").green().bold(),
            pool.manim_version(),
            t.elapsed().as_secs_f64()
        ),
        Err(e) => say!(
            "{} render backend: the warm workers cannot start, so renders run the cli way: {e}",
            style("note").yellow().bold()
        ),
    }
}

/// Whether the configured cluster (`[executor]`) answers.
async fn executor(c: &mut Checks, project: &Project, python: &Path) {
    let config = &project.config.executor;
    let scratch = project.state_dir().join("tmp");
    let Some(answer) = crate::execute::check(config, python, &project.root, &scratch).await else {
        return;
    };
    let what = format!("executor ({:?})", config.kind).to_lowercase();
    match answer {
        Ok(detail) => c.ok(&what, &detail),
        Err((problem, fix)) => c.bad(&what, &problem, &fix),
    }
}

/// Whether the shared remote cache (`[cache] remote`) answers: a small
/// object written, read back and deleted.
async fn remote_cache(c: &mut Checks, project: &Project) {
    let Some(url) = &project.config.cache.remote else {
        return;
    };
    let remote = match crate::cache::remote::Remote::open(url, &project.state_dir().join("cache")) {
        Ok(r) => r,
        Err(e) => {
            let fix = match &e {
                crate::error::Error::Toolchain { help, .. } => help.clone(),
                _ => "fix `[cache] remote` in parender.toml".into(),
            };
            return c.bad("remote cache", &e.to_string(), &fix);
        }
    };
    match remote.check().await {
        Ok(detail) => c.ok("remote cache", &detail),
        Err((problem, fix)) => c.bad("remote cache", &problem, &fix),
    }
}

struct Checks {
    failures: usize,
}

impl Checks {
    fn ok(&self, what: &str, detail: &str) {
        say!("{} {what}: {detail}", style("  ok").green().bold());
    }
    fn bad(&mut self, what: &str, detail: &str, fix: &str) {
        self.failures += 1;
        say!("{} {what}: {detail}", style("FAIL").red().bold());
        say!("       fix: {}", style(fix).cyan());
    }
}

pub async fn doctor(project_dir: Option<&Path>) -> ExitCode {
    let mut c = Checks { failures: 0 };
    let project = Project::open(project_dir).ok();
    // Python and Manim.
    let python = match &project {
        Some(p) => Toolchain::resolve_python(p),
        None => match std::env::current_exe()
            .ok()
            .and_then(|exe| InstalledEnv::of_executable(&exe))
        {
            Some(env) => Ok((
                env.python.clone(),
                format!("{} (no project here)", env.why()),
            )),
            None => which::which("python3")
                .map(|p| (p, "python3 on PATH (no project here)".to_string()))
                .map_err(|_| crate::error::Error::Other("python3 not found".into())),
        },
    };
    let venv_fix = format!(
        "python3 -m venv .venv && .venv/bin/pip install manim=={PINNED_MANIM}   (or: scripts/setup.sh)"
    );
    match &python {
        Ok((py, src)) => {
            match first_line(
                py,
                &["-c", "import platform; print(platform.python_version())"],
            )
            .await
            {
                Some(v) => c.ok("python", &format!("{v} at {} (from {src})", py.display())),
                None => c.bad(
                    "python",
                    &format!("{} does not run", py.display()),
                    &venv_fix,
                ),
            }
            match first_line(
                py,
                &[
                    "-c",
                    "import importlib.metadata as m; print(m.version('manim'))",
                ],
            )
            .await
            {
                Some(v) if v == PINNED_MANIM => c.ok("manim", &v),
                Some(v) => {
                    c.ok(
                        "manim",
                        &format!("{v} (parender is tested with {PINNED_MANIM})"),
                    );
                }
                None => c.bad(
                    "manim",
                    &format!("not installed for {}", py.display()),
                    &format!("{} -m pip install manim=={PINNED_MANIM}", py.display()),
                ),
            }
        }
        Err(e) => c.bad("python", &e.to_string(), &venv_fix),
    }
    if let (Some(p), Ok((py, _))) = (&project, &python) {
        render_backend(p, py).await;
        executor(&mut c, p, py).await;
    }
    if let Some(p) = &project {
        remote_cache(&mut c, p).await;
    }
    // ffmpeg and ffprobe.
    for tool in ["ffmpeg", "ffprobe"] {
        match which::which(tool) {
            Ok(p) => match first_line(&p, &["-version"]).await {
                Some(v) => c.ok(tool, &v),
                None => c.bad(tool, "does not run", &format!("{APT} ffmpeg")),
            },
            Err(_) => c.bad(tool, "not found on PATH", &format!("{APT} ffmpeg")),
        }
    }
    // LaTeX for MathTex/Tex.
    let tex_fix = format!(
        "{APT} texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended texlive-science dvisvgm"
    );
    for tool in ["latex", "dvisvgm"] {
        match which::which(tool) {
            Ok(p) => match first_line(&p, &["--version"]).await {
                Some(v) => c.ok(tool, &v),
                None => c.bad(tool, "does not run", &tex_fix),
            },
            Err(_) => c.bad(
                tool,
                "not found on PATH (needed by MathTex and Tex)",
                &tex_fix,
            ),
        }
    }
    match which::which("kpsewhich") {
        Ok(k) => match first_line(&k, &["standalone.cls"]).await {
            Some(p) => c.ok("LaTeX standalone class", &p),
            None => c.bad(
                "LaTeX standalone class",
                "standalone.cls not found",
                &format!("{APT} texlive-latex-extra"),
            ),
        },
        Err(_) => c.bad("LaTeX standalone class", "kpsewhich not found", &tex_fix),
    }
    match &project {
        Some(p) => c.ok("project", &p.root.display().to_string()),
        None => say!(
            "{} project: no parender.toml here (run `parender init`)",
            style("note").yellow().bold()
        ),
    }
    if c.failures == 0 {
        say!("everything parender needs is here");
        ExitCode::SUCCESS
    } else {
        say!(
            "{} problem{} found",
            c.failures,
            if c.failures == 1 { "" } else { "s" }
        );
        ExitCode::from(1)
    }
}
