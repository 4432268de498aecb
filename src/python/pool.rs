//! Warm render workers: Python processes that imported Manim once and fork a
//! child per request, so a render (or a discovery) skips the cold start and
//! `import manim` (0.6–2 s each) and still runs exactly the code the CLI
//! renderer runs.
//!
//! A worker is `python -c <worker.py>` started in the project root (Manim
//! reads `manim.cfg` from there at import: a changed `manim.cfg`, or another
//! Manim, needs a new pool). Each request names a script (the render driver,
//! the discovery script), its arguments and environment; the worker forks a
//! child that sets up the state `python -c SCRIPT ARGS...` would start in and
//! runs it. Scene modules are imported only in children, never in the
//! worker. The child leads its own process group, dies with its worker,
//! carries [`procs::TREE_VAR`] and writes its output to files; parender
//! supervises it with [`procs::supervise_foreign`] (timeouts, cancellation,
//! descendants), just as [`procs::run_group`] supervises a CLI render, so a
//! crash, leak or hang ends only that child.
//!
//! The protocol (JSON lines on the worker's stdin and stdout) is described at
//! the top of `python/worker.py`.
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::{PYTHON_ENV, PythonRun};
use crate::procs::{self, Finished, Outcome};

const WORKER_PY: &str = include_str!("../../python/worker.py");

/// How long a worker may take to import Manim (2 s is typical; a loaded
/// machine or a cold disk cache takes longer).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// [`START_TIMEOUT`], or `PARENDER_WARM_START_TIMEOUT` (seconds) when set:
/// a machine where importing Manim is slower still can wait longer, and a
/// value of 0 skips the warm workers (renders fall back to fresh processes).
fn start_timeout() -> Duration {
    std::env::var("PARENDER_WARM_START_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .unwrap_or(START_TIMEOUT)
}

/// How long a worker may take to answer a request with the child's pid
/// (milliseconds, normally).
const FORK_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a worker's own stderr is kept for error messages.
const KEEP_STDERR: usize = 16 * 1024;

impl PythonRun {
    /// The worker's request for this run (see `python/worker.py`).
    fn request(&self, id: u64, token: &str, out: &Path, err: &Path) -> Value {
        let mut env: serde_json::Map<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), os_json(v)))
            .collect();
        env.insert(procs::TREE_VAR.into(), token.into());
        json!({
            "id": id,
            "script": self.script,
            "argv": self.args.iter().map(|a| os_json(a)).collect::<Vec<_>>(),
            "env": env,
            "cwd": os_json(self.cwd.as_os_str()),
            "stdout": os_json(out.as_os_str()),
            "stderr": os_json(err.as_os_str()),
        })
    }
}

/// A string for the worker: itself if it is UTF-8, else its bytes in hex
/// (the worker decodes them as Python decodes its own argv).
fn os_json(s: &OsStr) -> Value {
    match s.to_str() {
        Some(t) => Value::String(t.into()),
        None => {
            let hex: String = s.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            json!({ "hex": hex })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("cannot start `{}`: {source}", python.display())]
    Spawn {
        python: PathBuf,
        source: std::io::Error,
    },
    #[error("`{}` cannot import Manim: {error}{}", python.display(), with_tail(stderr))]
    NoManim {
        python: PathBuf,
        error: String,
        stderr: String,
    },
    #[error("`{}` did not finish importing Manim within {}{}",
        python.display(), crate::config::human_duration(*after), with_tail(stderr))]
    NotReady {
        python: PathBuf,
        after: Duration,
        stderr: String,
    },
    #[error("the warm worker `{}` ended before it was ready: {source}{}",
        python.display(), with_tail(stderr))]
    Ended {
        python: PathBuf,
        source: std::io::Error,
        stderr: String,
    },
}

fn with_tail(stderr: &str) -> String {
    if stderr.trim().is_empty() {
        String::new()
    } else {
        format!("\n{}", stderr.trim_end())
    }
}

/// A line from a worker.
#[derive(Debug, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Reply {
    Ready {
        manim: String,
    },
    Failed {
        error: String,
    },
    Forked {
        id: u64,
        pid: i32,
    },
    Exited {
        id: u64,
        code: Option<i32>,
        signal: Option<i32>,
    },
    Error {
        message: String,
    },
}

/// One `python -c <worker.py>` process.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    replies: Lines<BufReader<ChildStdout>>,
    /// The end of its stderr (what Manim's import printed, or why it died).
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: tokio::task::JoinHandle<()>,
    next_id: u64,
    manim: String,
}

/// Reads `r` to its end, keeping its last [`KEEP_STDERR`] bytes in `kept`.
async fn keep_tail(mut r: tokio::process::ChildStderr, kept: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 8192];
    while let Ok(n @ 1..) = r.read(&mut buf).await {
        let mut k = kept.lock().unwrap_or_else(|p| p.into_inner());
        k.extend_from_slice(&buf[..n]);
        let cut = k.len().saturating_sub(KEEP_STDERR);
        k.drain(..cut);
    }
}

impl Worker {
    /// Starts a worker in `root` and waits until it has imported Manim.
    async fn start(python: &Path, root: &Path) -> Result<Worker, WarmError> {
        let mut w = Worker::spawn(python, root)?;
        let limit = start_timeout();
        let ready = tokio::time::timeout(limit, w.next_reply()).await;
        let python = python.to_path_buf();
        match ready {
            Ok(Ok(Reply::Ready { manim })) => {
                w.manim = manim;
                return Ok(w);
            }
            Err(_) => {
                let stderr = w.stderr_now();
                return Err(WarmError::NotReady {
                    python,
                    after: limit,
                    stderr,
                });
            }
            _ => {}
        }
        // It is exiting: let its last words reach the tail.
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut w.stderr_done).await;
        let stderr = w.stderr_now();
        Err(match ready {
            Ok(Ok(Reply::Failed { error })) => WarmError::NoManim {
                python,
                error,
                stderr,
            },
            Ok(Err(source)) => WarmError::Ended {
                python,
                source,
                stderr,
            },
            _ => WarmError::Ended {
                python,
                source: protocol("a reply before it was ready"),
                stderr,
            },
        })
    }

    /// The process, contained as every child of parender is: its own
    /// process group, dying with parender (through the thread that spawns
    /// it: call this from a runtime thread, which lives as long as the pool).
    fn spawn(python: &Path, root: &Path) -> Result<Worker, WarmError> {
        let mut cmd = Command::new(python);
        cmd.arg("-c")
            .arg(WORKER_PY)
            .current_dir(root)
            .envs(PYTHON_ENV.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        procs::contain(&mut cmd);
        let spawn_error = |source| WarmError::Spawn {
            python: python.to_path_buf(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_error)?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(spawn_error(std::io::Error::other("no pipes to the worker")));
        };
        let kept = Arc::new(Mutex::new(Vec::new()));
        Ok(Worker {
            child,
            stdin,
            replies: BufReader::new(stdout).lines(),
            stderr_done: tokio::spawn(keep_tail(stderr, kept.clone())),
            stderr: kept,
            next_id: 0,
            manim: String::new(),
        })
    }

    fn stderr_now(&self) -> String {
        let kept = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        procs::tail_lines(&kept, 20)
    }

    /// Itself, unless it has exited (killed while idle).
    fn if_alive(mut self) -> Option<Worker> {
        matches!(self.child.try_wait(), Ok(None)).then_some(self)
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The next reply; the end of its stdout means the worker is gone.
    async fn next_reply(&mut self) -> std::io::Result<Reply> {
        loop {
            let Some(line) = self.replies.next_line().await? else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the warm worker ended{}", with_tail(&self.stderr_now())),
                ));
            };
            if !line.trim().is_empty() {
                return serde_json::from_str(&line)
                    .map_err(|e| protocol(&format!("{e} in {line:?}")));
            }
        }
    }

    /// Sends `run` and returns the forked child's request id and pid.
    async fn fork(
        &mut self,
        run: &PythonRun,
        token: &str,
        out: &Path,
        err: &Path,
    ) -> std::io::Result<(u64, i32)> {
        self.next_id += 1;
        let id = self.next_id;
        let mut line = run.request(id, token, out, err).to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        let reply = tokio::time::timeout(FORK_TIMEOUT, self.next_reply())
            .await
            .map_err(|_| protocol("no child forked in time"))??;
        match reply {
            Reply::Forked { id: i, pid } if i == id => Ok((id, pid)),
            Reply::Error { message, .. } => Err(std::io::Error::other(message)),
            other => Err(protocol(&format!("{other:?} instead of `forked`"))),
        }
    }

    /// The exit status of request `id`'s child, once the worker reaped it.
    async fn exited(&mut self, id: u64) -> std::io::Result<ExitStatus> {
        match self.next_reply().await? {
            Reply::Exited {
                id: i,
                code,
                signal,
            } if i == id => Ok(exit_status(code, signal)),
            other => Err(protocol(&format!("{other:?} instead of `exited`"))),
        }
    }
}

/// A wait status from the worker's report of one.
fn exit_status(code: Option<i32>, signal: Option<i32>) -> ExitStatus {
    match (code, signal) {
        (_, Some(sig)) => ExitStatus::from_raw(sig & 0x7f),
        (code, None) => ExitStatus::from_raw((code.unwrap_or(1) & 0xff) << 8),
    }
}

fn protocol(what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("warm worker protocol: {what}"),
    )
}

/// Warm workers, one per job slot. Every request gets an idle worker (or
/// waits for one); a worker that died, or whose request was abandoned half
/// way, is replaced by a fresh one at the next request. Dropping the pool
/// kills the workers, and their children with them.
pub struct WarmPool {
    python: PathBuf,
    root: PathBuf,
    manim: String,
    /// Idle workers; `None` marks a slot whose worker must be started anew.
    slots: Mutex<Vec<Option<Worker>>>,
    /// One permit per slot.
    permits: Semaphore,
    /// The children's stdout and stderr files.
    logs: Logs,
    next_log: AtomicU64,
}

/// A worker checked out of the pool; back into it when dropped.
struct Lease<'a> {
    pool: &'a WarmPool,
    worker: Option<Worker>,
    /// A request is under way: dropped now, the worker's state is unknown,
    /// so it is killed and replaced.
    busy: bool,
    _permit: SemaphorePermit<'a>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let back = if self.busy { None } else { self.worker.take() };
        self.pool.lock_slots().push(back);
    }
}

impl Lease<'_> {
    async fn run(
        &mut self,
        run: &PythonRun,
        out: &Path,
        err: &Path,
        cancel: &CancellationToken,
    ) -> std::io::Result<Outcome> {
        let Some(worker) = self.worker.as_mut() else {
            return Err(std::io::Error::other("no warm worker"));
        };
        let token = procs::tree_token();
        self.busy = true;
        let (id, pid) = worker.fork(run, &token, out, err).await?;
        let exited = worker.exited(id);
        let outcome = procs::supervise_foreign(pid, &token, exited, run.timeout, cancel).await?;
        self.busy = false;
        Ok(outcome)
    }
}

/// Where the children's output goes; removed with the pool.
enum Logs {
    Locked(crate::fsutil::LockedTempDir),
    Plain(tempfile::TempDir),
}

impl Logs {
    fn path(&self) -> &Path {
        match self {
            Logs::Locked(d) => d.path(),
            Logs::Plain(d) => d.path(),
        }
    }
}

impl WarmPool {
    /// Starts `size` workers (at least one) in `root` and waits until all of
    /// them have imported Manim. Fails if any cannot, saying why (with the
    /// end of its stderr), or if they report different Manim versions. The
    /// children's output goes to a folder in `scratch` (the project's
    /// `.parender/tmp`), locked while the pool lives, so a build removes it
    /// if the pool's process was killed; in the system's temp folder only
    /// when `scratch` cannot be written (a read-only project).
    pub async fn start(
        python: &Path,
        root: &Path,
        size: usize,
        scratch: &Path,
    ) -> Result<WarmPool, WarmError> {
        let started =
            futures::future::join_all((0..size.max(1)).map(|_| Worker::start(python, root))).await;
        let workers = started.into_iter().collect::<Result<Vec<_>, _>>()?;
        let manim = workers.first().map(|w| w.manim.clone()).unwrap_or_default();
        let logs = match crate::fsutil::locked_tempdir(scratch, "build-warm-") {
            Ok(d) => Logs::Locked(d),
            Err(_) => Logs::Plain(
                tempfile::Builder::new()
                    .prefix("parender-warm-")
                    .tempdir()
                    .map_err(|source| WarmError::Spawn {
                        python: python.to_path_buf(),
                        source,
                    })?,
            ),
        };
        Ok(WarmPool {
            python: python.to_path_buf(),
            root: root.to_path_buf(),
            manim,
            permits: Semaphore::new(workers.len()),
            slots: Mutex::new(workers.into_iter().map(Some).collect()),
            logs,
            next_log: AtomicU64::new(0),
        })
    }

    /// The Manim version the workers imported.
    pub fn manim_version(&self) -> &str {
        &self.manim
    }

    pub fn python(&self) -> &Path {
        &self.python
    }

    /// The pids of the idle workers (for tests and diagnostics).
    pub fn idle_worker_pids(&self) -> Vec<u32> {
        self.lock_slots()
            .iter()
            .flatten()
            .filter_map(Worker::pid)
            .collect()
    }

    /// Runs `run` in a child of an idle worker, as [`procs::run_group`] runs a
    /// command: the same outcomes, the end of its stdout and stderr. An
    /// `Err` means the worker failed (it is replaced), not the script.
    pub async fn run_script(
        &self,
        run: &PythonRun,
        cancel: &CancellationToken,
    ) -> std::io::Result<Finished> {
        let mut lease = self.checkout().await?;
        let n = self.next_log.fetch_add(1, Ordering::Relaxed);
        let out = self.logs.path().join(format!("{n}.out"));
        let err = self.logs.path().join(format!("{n}.err"));
        let outcome = lease.run(run, &out, &err, cancel).await;
        let finished = outcome.map(|outcome| Finished {
            outcome,
            stdout: procs::file_tail(&out),
            stderr: procs::file_tail(&err),
        });
        let _ = std::fs::remove_file(&out);
        let _ = std::fs::remove_file(&err);
        finished
    }

    fn lock_slots(&self) -> MutexGuard<'_, Vec<Option<Worker>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle, live worker: a fresh one if its slot's worker is gone.
    async fn checkout(&self) -> std::io::Result<Lease<'_>> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(std::io::Error::other)?;
        let slot = self.lock_slots().pop().flatten().and_then(Worker::if_alive);
        // Holds the slot from here: if starting a worker fails (or this
        // future is dropped), the slot goes back empty.
        let mut lease = Lease {
            pool: self,
            worker: None,
            busy: false,
            _permit: permit,
        };
        lease.worker = match slot {
            Some(w) => Some(w),
            None => Some(self.fresh_worker().await?),
        };
        Ok(lease)
    }

    async fn fresh_worker(&self) -> std::io::Result<Worker> {
        let w = Worker::start(&self.python, &self.root)
            .await
            .map_err(std::io::Error::other)?;
        if w.manim != self.manim {
            return Err(std::io::Error::other(format!(
                "Manim changed from {} to {} while the warm workers ran",
                self.manim, w.manim
            )));
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_that_are_not_utf8_travel_as_hex() {
        assert_eq!(os_json(OsStr::new("a b")), json!("a b"));
        let raw = OsStr::from_bytes(b"x\xff");
        assert_eq!(os_json(raw), json!({"hex": "78ff"}));
    }

    #[test]
    fn a_request_carries_the_tree_mark_and_the_run() {
        let run = PythonRun {
            script: "print(1)".into(),
            args: vec!["a".into()],
            env: vec![("K".into(), "v".into())],
            cwd: "/p".into(),
            timeout: Duration::from_secs(1),
        };
        let r = run.request(7, "tok", Path::new("/o"), Path::new("/e"));
        assert_eq!(r["id"], 7);
        assert_eq!(r["argv"], json!(["a"]));
        assert_eq!(r["env"]["K"], "v");
        assert_eq!(r["env"][procs::TREE_VAR], "tok");
        assert_eq!(
            (r["cwd"].as_str(), r["stdout"].as_str()),
            (Some("/p"), Some("/o"))
        );
    }

    #[test]
    fn exit_replies_become_statuses() {
        let reply: Reply =
            serde_json::from_str(r#"{"id":1,"event":"exited","signal":11}"#).unwrap();
        let Reply::Exited { code, signal, .. } = reply else {
            panic!("{reply:?}");
        };
        assert_eq!(exit_status(code, signal).signal(), Some(11));
        assert_eq!(exit_status(Some(3), None).code(), Some(3));
        assert_eq!(exit_status(Some(0), None).code(), Some(0));
    }
}
