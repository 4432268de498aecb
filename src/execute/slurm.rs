//! [`SlurmRunner`]: each run is one Slurm job step, `srun ... PYTHON -c
//! SCRIPT ARGS`, in the project folder, which must be on a file system the
//! nodes share (same path everywhere). The render driver writes the video
//! and its JSON-lines report into the project's `.parender/` there, so the
//! outcome is judged exactly as for a local render; `srun`'s exit status is
//! the task's, and its stdout/stderr carry the task's.
//!
//! - `srun` rather than `sbatch --wait`: it starts as soon as the allocation
//!   is granted and streams the output, where `sbatch --wait` polls.
//! - The run's timeout bounds the whole step, waiting in the queue included;
//!   `--time` is the same timeout rounded up to whole minutes, so Slurm ends
//!   the step too if parender cannot.
//! - On timeout or cancellation `srun` gets SIGTERM (it then cancels its
//!   step), and `scancel --name` (each step's job name is unique to the run)
//!   makes sure the job ends on the cluster even if `srun` did not get to
//!   it; a run whose future is dropped does the same from `Drop`.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::analyze::toolchain::PINNED_MANIM;
use crate::config::ExecutorConfig;
use crate::procs::{self, Finished, Outcome};
use crate::python::{PYTHON_ENV, PythonRun, RunScript};

/// The prefix of every job name parender gives its steps.
pub const JOB_PREFIX: &str = "parender-";

/// How long `parender doctor`'s test step may take, queue included.
const CHECK_STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the controller gets to answer `scontrol ping` and `sinfo`.
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(15);

/// How long `scancel` may take.
const SCANCEL_TIMEOUT: Duration = Duration::from_secs(15);

const INSTALL_CLIENT: &str = "run parender where the Slurm client commands work (a login node), \
     or install them with the cluster's slurm.conf (Debian/Ubuntu: `apt install slurm-client munge`; \
     set SLURM_CONF if slurm.conf is not in /etc/slurm); or set [executor] kind = \"local\"";

pub struct SlurmRunner {
    python: PathBuf,
    config: ExecutorConfig,
}

/// What is wrong with the cluster, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trouble {
    problem: String,
    fix: String,
}

impl Trouble {
    fn new(problem: impl Into<String>, fix: impl Into<String>) -> Trouble {
        Trouble {
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    fn into_io(self) -> std::io::Error {
        std::io::Error::other(format!("{} (fix: {})", self.problem, self.fix))
    }
}

/// A job name no other run of any parender on this machine uses.
fn job_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{JOB_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `--time` for a run of `timeout`: whole minutes, rounded up, at least one
/// (and at most a year, which Slurm still accepts).
pub fn time_limit_minutes(timeout: Duration) -> u64 {
    const YEAR: u64 = 365 * 24 * 60;
    let secs = timeout
        .as_secs()
        .saturating_add(u64::from(timeout.subsec_nanos() > 0));
    secs.div_ceil(60).clamp(1, YEAR)
}

/// `srun`'s arguments for `run` as the step `job_name`: parender's
/// options, then `[executor] options` (srun takes the last of a repeated
/// option, so these can override parender's), then `PYTHON -c SCRIPT ARGS`.
pub fn srun_args(
    config: &ExecutorConfig,
    python: &Path,
    run: &PythonRun,
    job_name: &str,
) -> Vec<OsString> {
    let mut chdir = OsString::from("--chdir=");
    chdir.push(&run.cwd);
    let mut args: Vec<OsString> = vec![
        "--ntasks=1".into(),
        format!("--cpus-per-task={}", config.cpus.unwrap_or(1).max(1)).into(),
        format!("--time={}", time_limit_minutes(run.timeout)).into(),
        format!("--job-name={job_name}").into(),
        chdir,
        // parender's environment, PYTHON_ENV and the run's own included.
        "--export=ALL".into(),
    ];
    if let Some(p) = &config.partition {
        args.extend(["-p".into(), p.into()]);
    }
    if let Some(a) = &config.account {
        args.extend(["-A".into(), a.into()]);
    }
    args.extend(config.options.iter().map(OsString::from));
    args.push(python.as_os_str().to_owned());
    args.push("-c".into());
    args.push(run.script.clone().into());
    args.extend(run.args.iter().cloned());
    args
}

/// A Slurm client command, or what to do when it is missing.
fn tool(name: &str) -> Result<PathBuf, Trouble> {
    which::which(name).map_err(|_| {
        Trouble::new(
            format!("the Slurm command `{name}` is not on PATH"),
            INSTALL_CLIENT,
        )
    })
}

/// Moves `srun`'s own summary of the task's end ("srun: error: NODE: task 0:
/// Exited with exit code 1") to the front, so the last line of the output is
/// the task's own (what a failed render shows).
fn tidy_stderr(stderr: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(stderr);
    let summary = |l: &str| l.starts_with("srun: error: ") && l.contains(": task ");
    let (front, rest): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| summary(l));
    if front.is_empty() || rest.is_empty() {
        return stderr.to_vec();
    }
    let mut out = String::new();
    for l in front.into_iter().chain(rest) {
        out.push_str(l);
        out.push('\n');
    }
    out.into_bytes()
}

/// When `srun` failed before the task ran (no allocation, no controller,
/// no configuration), what went wrong and what to do.
fn refused(stderr: &[u8]) -> Option<Trouble> {
    let text = String::from_utf8_lossy(stderr);
    // Only srun's own lines: the task may print anything.
    let line = text.lines().find(|l| {
        l.starts_with("srun: fatal:")
            || (l.starts_with("srun: error: ")
                && (l.contains("Unable to allocate resources")
                    || l.contains("Unable to create step")
                    || l.contains("Unable to contact slurm controller")
                    || l.contains("Invalid account")
                    || l.contains("Invalid partition")))
    })?;
    let what = line
        .trim_start_matches("srun: ")
        .trim_start_matches("error: ")
        .trim_start_matches("fatal: ")
        .trim();
    let fix = if line.contains("partition") {
        "set [executor] partition to a partition `sinfo` lists (or remove it for the default)"
            .to_string()
    } else if line.contains("account") {
        "set [executor] account to an account you may charge (`sacctmgr show assoc user=$USER`), \
         or remove it"
            .to_string()
    } else if line.contains("configuration source")
        || line.contains("controller")
        || line.contains("Connection refused")
    {
        "start the controller and the nodes' daemons (`systemctl start slurmctld` on the \
         controller, `systemctl start slurmd` on the nodes), and make sure SLURM_CONF (or \
         /etc/slurm/slurm.conf) names this cluster; `parender doctor` checks it"
            .to_string()
    } else {
        "check the [executor] settings in parender.toml against `sinfo`, and run `parender doctor`"
            .to_string()
    };
    Some(Trouble::new(format!("Slurm refused the step: {what}"), fix))
}

/// The partition renders go to (the configured one, else the cluster's
/// default) and how many of its nodes are idle, from `sinfo -h -o
/// "%P|%t|%D"`; or why renders cannot run there.
fn partition_summary(sinfo: &str, configured: Option<&str>) -> Result<(String, u64), Trouble> {
    // (partition, default, state, nodes)
    let rows: Vec<(&str, bool, &str, u64)> = sinfo
        .lines()
        .filter_map(|l| {
            let mut f = l.split('|');
            let p = f.next()?.trim();
            let state = f.next()?.trim();
            let nodes = f.next()?.trim().parse().ok()?;
            Some((p.trim_end_matches('*'), p.ends_with('*'), state, nodes))
        })
        .collect();
    let mut names: Vec<&str> = Vec::new();
    for r in &rows {
        if !names.contains(&r.0) {
            names.push(r.0);
        }
    }
    let listed = if names.is_empty() {
        "(none: `sinfo` lists no partition)".to_string()
    } else {
        names.join(", ")
    };
    let partition = match configured {
        Some(p) if names.contains(&p) => p,
        Some(p) => {
            return Err(Trouble::new(
                format!("the partition `{p}` does not exist on this cluster"),
                format!("set [executor] partition to one of: {listed}"),
            ));
        }
        None => match rows.iter().find(|r| r.1) {
            Some(r) => r.0,
            None => {
                return Err(Trouble::new(
                    "the cluster has no default partition",
                    format!("set [executor] partition to one of: {listed}"),
                ));
            }
        },
    };
    let mine = || rows.iter().filter(|r| r.0 == partition);
    // A trailing `*` means the node does not respond; the other marks
    // (power saving, reboots, reservations) leave it able to run jobs.
    let count = |states: &[&str]| -> u64 {
        mine()
            .filter(|r| {
                !r.2.ends_with('*')
                    && states
                        .contains(&r.2.trim_end_matches(['~', '#', '!', '%', '$', '@', '^', '-']))
            })
            .map(|r| r.3)
            .sum()
    };
    let idle = count(&["idle"]);
    if count(&["idle", "mix", "alloc", "comp", "resv", "plnd"]) == 0 {
        let states: Vec<String> = mine().map(|r| format!("{} {}", r.3, r.2)).collect();
        return Err(Trouble::new(
            format!(
                "no node of partition `{partition}` can run jobs (nodes: {})",
                states.join(", ")
            ),
            "start slurmd on the nodes, then `scontrol update nodename=NODE state=resume`; \
             `sinfo -R` says why nodes are down",
        ));
    }
    Ok((partition.to_string(), idle))
}

/// The output of a Slurm client command that must succeed within
/// [`CONTROLLER_TIMEOUT`], or what it said instead.
async fn ask(program: &str, args: &[&str]) -> Result<String, String> {
    let path = tool(program).map_err(|t| t.problem)?;
    let mut cmd = Command::new(path);
    cmd.args(args);
    let out = match tokio::time::timeout(CONTROLLER_TIMEOUT, procs::output(cmd)).await {
        Err(_) => {
            return Err(format!(
                "`{program}` got no answer within {} s",
                CONTROLLER_TIMEOUT.as_secs()
            ));
        }
        Ok(Err(e)) => return Err(format!("cannot run `{program}`: {e}")),
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    // `scontrol ping` says "Slurmctld(primary) at HOST is DOWN" on stdout.
    let why = [procs::tail_lines(&out.stderr, 1), stdout]
        .into_iter()
        .find_map(|t| {
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("`{program}` exited with {}", out.status));
    Err(why)
}

/// Cancels the job named `name` (every step of it), waiting up to
/// [`SCANCEL_TIMEOUT`]. Best effort: the step may already be gone.
async fn scancel(name: &str) {
    let Ok(scancel) = which::which("scancel") else {
        return;
    };
    let mut cmd = Command::new(scancel);
    cmd.arg(format!("--name={name}"))
        .arg(format!("--user={}", current_uid()));
    let _ = tokio::time::timeout(SCANCEL_TIMEOUT, procs::output(cmd)).await;
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory.
    unsafe { libc::getuid() }
}

/// Cancels the step if the run is dropped before it ended.
struct CancelOnDrop(Option<String>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(name) = self.0.take() else {
            return;
        };
        let Ok(scancel) = which::which("scancel") else {
            return;
        };
        // Started now, so it runs even if parender exits next; not awaited
        // (a thread reaps it, so it leaves no zombie).
        let child = std::process::Command::new(scancel)
            .arg(format!("--name={name}"))
            .arg(format!("--user={}", current_uid()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            std::thread::spawn(move || child.wait());
        }
    }
}

impl SlurmRunner {
    pub fn new(config: &ExecutorConfig, python: &Path) -> SlurmRunner {
        SlurmRunner {
            python: python.to_path_buf(),
            config: config.clone(),
        }
    }

    /// Runs `run` as one job step; a step Slurm refused is an error that
    /// says what to do.
    async fn step(&self, run: &PythonRun, cancel: &CancellationToken) -> Result<Finished, Trouble> {
        let srun = tool("srun")?;
        let name = job_name();
        let mut cmd = Command::new(srun);
        cmd.args(srun_args(&self.config, &self.python, run, &name))
            .current_dir(&run.cwd)
            .envs(PYTHON_ENV.iter().copied())
            .envs(run.env.iter().map(|(k, v)| (k, v)));
        let mut guard = CancelOnDrop(Some(name.clone()));
        let result = procs::run_group(cmd, run.timeout, cancel).await;
        guard.0 = None;
        let mut finished = result.map_err(|e| {
            Trouble::new(
                format!("cannot start `srun`: {e}"),
                "check that `srun --version` works here",
            )
        })?;
        match finished.outcome {
            Outcome::Exited(status) => {
                if !status.success()
                    && let Some(t) = refused(&finished.stderr)
                {
                    return Err(t);
                }
            }
            Outcome::TimedOut | Outcome::Cancelled => scancel(&name).await,
        }
        finished.stderr = tidy_stderr(&finished.stderr);
        Ok(finished)
    }

    /// `sinfo`'s partitions, one `PARTITION|STATE|NODES` line each (the
    /// default partition's name ends in `*`). `scontrol ping` first: it
    /// answers at once when the controller is down, where `sinfo` retries
    /// for seconds.
    async fn sinfo(&self) -> Result<String, Trouble> {
        let down = |why: String| {
            Trouble::new(
                format!("the Slurm controller does not answer: {why}"),
                "start it (`systemctl start slurmctld` on the controller, `systemctl start \
                 slurmd` on the nodes), and make sure SLURM_CONF (or /etc/slurm/slurm.conf) \
                 names this cluster",
            )
        };
        ask("scontrol", &["ping"]).await.map_err(down)?;
        ask("sinfo", &["-h", "-o", "%P|%t|%D"]).await.map_err(down)
    }

    pub async fn check(&self) -> Result<String, (String, String)> {
        self.check_inner().await.map_err(|t| (t.problem, t.fix))
    }

    async fn check_inner(&self) -> Result<String, Trouble> {
        tool("srun")?;
        if let Some(conf) = std::env::var_os("SLURM_CONF")
            && !Path::new(&conf).is_file()
        {
            return Err(Trouble::new(
                format!(
                    "SLURM_CONF names {}, which is not a file",
                    Path::new(&conf).display()
                ),
                "set SLURM_CONF to the cluster's slurm.conf, or unset it to use /etc/slurm/slurm.conf",
            ));
        }
        let sinfo = self.sinfo().await?;
        let (partition, idle) = partition_summary(&sinfo, self.config.partition.as_deref())?;
        let version = self.manim_on_nodes().await?;
        Ok(format!(
            "slurm: partition {partition}, {idle} node{} idle, manim {version} on the nodes",
            if idle == 1 { "" } else { "s" }
        ))
    }

    /// Manim's version as a tiny step on the nodes sees it.
    async fn manim_on_nodes(&self) -> Result<String, Trouble> {
        let run = PythonRun {
            script: "import manim; print(manim.__version__)".into(),
            args: Vec::new(),
            env: Vec::new(),
            // Exists on every node; the project folder may not be shared yet.
            cwd: PathBuf::from("/"),
            timeout: CHECK_STEP_TIMEOUT,
        };
        let finished = self.step(&run, &CancellationToken::new()).await?;
        let py = self.python.display();
        let status = match finished.outcome {
            Outcome::Exited(s) => s,
            _ => {
                return Err(Trouble::new(
                    format!(
                        "a test step (`{py} -c \"import manim\"`) did not finish within {} s",
                        CHECK_STEP_TIMEOUT.as_secs()
                    ),
                    "see why it waits with `squeue` (and `sinfo -R` for nodes that are down)",
                ));
            }
        };
        let stdout = String::from_utf8_lossy(&finished.stdout);
        let version = stdout.lines().last().unwrap_or("").trim().to_string();
        if status.success() && !version.is_empty() {
            return Ok(version);
        }
        let err = String::from_utf8_lossy(&finished.stderr).to_string();
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        if err.contains("No module named") {
            Err(Trouble::new(
                format!("the nodes' Python `{py}` cannot import manim: {last}"),
                format!(
                    "install manim into the Python the nodes run: `{py} -m pip install \
                     manim=={PINNED_MANIM}`, on a file system the nodes share (same path)"
                ),
            ))
        } else if err.contains("No such file") || err.contains("execve") {
            Err(Trouble::new(
                format!("the nodes cannot run the project's Python `{py}`: {last}"),
                "put the project's Python (its venv) on a file system the nodes share, at the \
                 same path, or set `python` in parender.toml to a Python every node has",
            ))
        } else {
            Err(Trouble::new(
                format!("a test step (`{py} -c \"import manim\"`) failed ({status}): {last}"),
                "run it by hand with `srun` to see why",
            ))
        }
    }
}

impl RunScript for SlurmRunner {
    fn python(&self) -> &Path {
        &self.python
    }
    fn run<'a>(
        &'a self,
        run: &'a PythonRun,
        cancel: &'a CancellationToken,
    ) -> futures::future::BoxFuture<'a, std::io::Result<Finished>> {
        Box::pin(async move { self.step(run, cancel).await.map_err(Trouble::into_io) })
    }
    fn slots(&self) -> futures::future::BoxFuture<'_, Option<usize>> {
        Box::pin(async move {
            let mut args = vec!["-h", "-o", "%C"];
            if let Some(p) = &self.config.partition {
                args.extend(["-p", p.as_str()]);
            }
            let cpus = total_cpus(&ask("sinfo", &args).await.ok()?)?;
            let per_run = self.config.cpus.unwrap_or(1).max(1) as usize;
            Some(cpus / per_run).filter(|n| *n > 0)
        })
    }
}

/// The total of `sinfo -o %C`'s `allocated/idle/other/total` CPU counts (one
/// line per partition).
fn total_cpus(sinfo: &str) -> Option<usize> {
    let totals: Vec<usize> = sinfo
        .lines()
        .filter_map(|l| l.trim().rsplit('/').next()?.parse().ok())
        .collect();
    (!totals.is_empty()).then(|| totals.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_cpus_are_sinfos_totals() {
        assert_eq!(total_cpus("0/2/0/2\n"), Some(2));
        assert_eq!(total_cpus("10/54/0/64\n3/5/0/8\n"), Some(72));
        assert_eq!(total_cpus(""), None);
        assert_eq!(total_cpus("n/a\n"), None);
    }

    fn run(timeout: Duration) -> PythonRun {
        PythonRun {
            script: "print(1)".into(),
            args: vec!["render".into(), "scenes/a b.py".into()],
            env: vec![("X".into(), "1".into())],
            cwd: PathBuf::from("/shared/project"),
            timeout,
        }
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn time_limit_rounds_up_to_whole_minutes() {
        let m = |s: f64| time_limit_minutes(Duration::from_secs_f64(s));
        assert_eq!(m(0.0), 1);
        assert_eq!(m(0.5), 1);
        assert_eq!(m(60.0), 1);
        assert_eq!(m(60.001), 2);
        assert_eq!(m(61.0), 2);
        assert_eq!(m(120.0), 2);
        assert_eq!(m(3600.0), 60);
        assert_eq!(time_limit_minutes(Duration::MAX), 365 * 24 * 60);
    }

    #[test]
    fn srun_args_with_defaults() {
        let config = ExecutorConfig::default();
        let args = srun_args(
            &config,
            Path::new("/venv/bin/python"),
            &run(Duration::from_secs(90)),
            "parender-7-0",
        );
        assert_eq!(
            strings(&args),
            [
                "--ntasks=1",
                "--cpus-per-task=1",
                "--time=2",
                "--job-name=parender-7-0",
                "--chdir=/shared/project",
                "--export=ALL",
                "/venv/bin/python",
                "-c",
                "print(1)",
                "render",
                "scenes/a b.py",
            ]
        );
    }

    #[test]
    fn srun_args_with_partition_account_cpus_and_options() {
        let config = ExecutorConfig {
            partition: Some("gpu".into()),
            account: Some("lab".into()),
            options: vec!["--qos=short".into(), "--mem=2G".into()],
            cpus: Some(4),
            ..ExecutorConfig::default()
        };
        let args = strings(&srun_args(
            &config,
            Path::new("py"),
            &run(Duration::from_secs(600)),
            "parender-1-2",
        ));
        assert_eq!(
            args[..12],
            [
                "--ntasks=1",
                "--cpus-per-task=4",
                "--time=10",
                "--job-name=parender-1-2",
                "--chdir=/shared/project",
                "--export=ALL",
                "-p",
                "gpu",
                "-A",
                "lab",
                "--qos=short",
                "--mem=2G",
            ]
        );
        assert_eq!(args[12..15], ["py", "-c", "print(1)"]);
        // Zero CPUs is not a request Slurm takes.
        let zero = ExecutorConfig {
            cpus: Some(0),
            ..ExecutorConfig::default()
        };
        let args = strings(&srun_args(
            &zero,
            Path::new("py"),
            &run(Duration::ZERO),
            "n",
        ));
        assert!(args.contains(&"--cpus-per-task=1".to_string()), "{args:?}");
    }

    #[test]
    fn job_names_are_unique_and_marked() {
        let a = job_name();
        let b = job_name();
        assert_ne!(a, b);
        assert!(a.starts_with(&format!("{JOB_PREFIX}{}-", std::process::id())));
    }

    #[test]
    fn the_tasks_last_line_stays_last() {
        let err = b"srun: error: node1: task 0: Exited with exit code 1\nTraceback\nNameError: x\n";
        assert_eq!(
            String::from_utf8_lossy(&tidy_stderr(err)),
            "srun: error: node1: task 0: Exited with exit code 1\nTraceback\nNameError: x\n"
        );
        let err = b"Traceback\nNameError: x\nsrun: error: node1: task 0: Exited with exit code 1\n";
        assert_eq!(
            String::from_utf8_lossy(&tidy_stderr(err)),
            "srun: error: node1: task 0: Exited with exit code 1\nTraceback\nNameError: x\n"
        );
        let only = b"srun: error: node1: task 0: Killed\n";
        assert_eq!(tidy_stderr(only), only);
    }

    #[test]
    fn the_partition_and_its_idle_nodes() {
        let sinfo = "debug*|idle|2\ndebug*|alloc|1\ngpu|mix|1\ngpu|idle*|3\nold|down*|4\n";
        assert_eq!(
            partition_summary(sinfo, None).unwrap(),
            ("debug".to_string(), 2)
        );
        // Not responding (`*`) is not idle.
        assert_eq!(
            partition_summary(sinfo, Some("gpu")).unwrap(),
            ("gpu".to_string(), 0)
        );
        // Powered down (`~`) still takes jobs.
        assert_eq!(
            partition_summary("cloud|idle~|5\n", Some("cloud")).unwrap(),
            ("cloud".to_string(), 5)
        );
        let t = partition_summary(sinfo, Some("nope")).unwrap_err();
        assert_eq!(
            t.problem,
            "the partition `nope` does not exist on this cluster"
        );
        assert_eq!(t.fix, "set [executor] partition to one of: debug, gpu, old");
        let t = partition_summary(sinfo, Some("old")).unwrap_err();
        assert!(t.problem.contains("(nodes: 4 down*)"), "{t:?}");
        assert!(t.fix.contains("slurmd"), "{t:?}");
        let t = partition_summary("a|idle|1\n", None).unwrap_err();
        assert_eq!(t.problem, "the cluster has no default partition");
        assert!(t.fix.ends_with("one of: a"), "{t:?}");
    }

    #[test]
    fn refusals_say_what_to_do() {
        let t = refused(
            b"srun: error: Unable to allocate resources: Invalid partition name specified\n",
        )
        .unwrap();
        assert_eq!(
            t.problem,
            "Slurm refused the step: Unable to allocate resources: Invalid partition name specified"
        );
        assert!(t.fix.contains("[executor] partition"), "{t:?}");
        let t = refused(b"srun: error: fetch_config: DNS SRV lookup failed\nsrun: fatal: Could not establish a configuration source\n").unwrap();
        assert!(t.fix.contains("slurmctld"), "{t:?}");
        // A task that failed by itself is the render's failure, not Slurm's.
        assert!(refused(b"srun: error: n1: task 0: Exited with exit code 1\n").is_none());
        assert!(refused(b"NameError: name 'x' is not defined\n").is_none());
    }
}
