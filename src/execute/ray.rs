//! [`RayRunner`]: each run is one Ray task.
//!
//! On first use one long-lived local client (`python/ray_client.py`, run by
//! the project's Python in its own process group, dying with parender)
//! connects to the cluster (`ray.init`, the project root shipped as the
//! job's content-addressed `working_dir`: no shared file system) and talks
//! JSON lines with parender. Each run becomes one request and one
//! `@ray.remote(num_cpus = cpus, max_retries = 0)` task, many in flight at
//! once. On the worker, the task runs the script the way local renders do:
//! forked from a warm helper (`python/worker.py`, kept by the Ray worker
//! process for its later tasks) that imported Manim once, in the unpacked
//! copy of the project, every argument and environment value under the local
//! root moved to the same place under that copy. The files the run created
//! or changed under the collected paths (the media folder, the report) come
//! back with its exit status and output tails; the client writes them under
//! the local root and names the local root wherever the copy's path shows in
//! the output or the report. Cancellation and the backstop timeout are
//! `ray.cancel(force = True)`, which ends the Ray worker, its helper and the
//! render the helper forked.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::ExecutorConfig;
use crate::procs::{self, Finished, GroupGuard, Outcome};
use crate::python::{PYTHON_ENV, PythonRun, RunScript};

const CLIENT_PY: &str = include_str!("../../python/ray_client.py");
const WORKER_PY: &str = include_str!("../../python/worker.py");

/// How long the client may take to connect to the cluster.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `check` waits for its Manim probe task (a first worker with a
/// new working directory imports Ray and Manim).
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a cancelled run waits for Ray to confirm the task is gone.
const CANCEL_WAIT: Duration = Duration::from_secs(10);
/// Not shipped to the cluster (gitignore patterns relative to the root).
const EXCLUDES: &[&str] = &[
    "/.parender",
    "/out",
    ".git",
    "/.venv",
    "/venv",
    "__pycache__",
    "*.pyc",
    "node_modules",
];

pub struct RayRunner {
    python: PathBuf,
    config: ExecutorConfig,
    root: PathBuf,
    scratch: PathBuf,
    /// Started on first use; started again if it exited after connecting
    /// (a restarted head under `parender watch`). A failure to connect is
    /// kept: every render of this build would wait for it again.
    client: tokio::sync::Mutex<Option<Started>>,
    next_id: AtomicU64,
}

/// The client, or why it could not connect: (what is wrong, how to fix it).
type Started = Result<Arc<Client>, (String, String)>;

/// What the client said once connected.
struct Ready {
    ray: String,
    cpus: u64,
    address: String,
}

/// The running client: requests go through `tx` to its stdin, answers are
/// routed by id to `pending`.
struct Client {
    tx: mpsc::UnboundedSender<String>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    /// Cleared when its output ends.
    alive: Arc<AtomicBool>,
    ready: Ready,
    log: PathBuf,
    _child: Child,
    _group: GroupGuard,
}

impl Client {
    /// Sends `request` (its `id` set to `id`) and returns where its answer
    /// will come.
    fn request(&self, id: u64, mut request: Value) -> std::io::Result<oneshot::Receiver<Value>> {
        request["id"] = json!(id);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if self.tx.send(request.to_string()).is_err() {
            lock(&self.pending).remove(&id);
            return Err(self.gone());
        }
        Ok(rx)
    }

    fn cancel(&self, id: u64) {
        let _ = self.tx.send(json!({"op": "cancel", "id": id}).to_string());
    }

    fn gone(&self) -> std::io::Error {
        std::io::Error::other(format!(
            "the Ray client exited; its log: {}",
            log_tail(&self.log)
        ))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read(log).unwrap_or_default();
    let tail = procs::tail_lines(&text, 6);
    if tail.is_empty() {
        format!("{} (empty)", log.display())
    } else {
        format!("{}:\n{tail}", log.display())
    }
}

/// Cancels a run whose future is dropped before its answer came.
struct CancelOnDrop<'a> {
    client: &'a Client,
    id: u64,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        lock(&self.client.pending).remove(&self.id);
        if self.armed {
            self.client.cancel(self.id);
        }
    }
}

impl RayRunner {
    pub fn new(config: &ExecutorConfig, python: &Path, root: &Path, scratch: &Path) -> RayRunner {
        RayRunner {
            python: python.to_path_buf(),
            config: config.clone(),
            root: root.to_path_buf(),
            scratch: scratch.to_path_buf(),
            client: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
        }
    }

    fn address(&self) -> String {
        self.config
            .address
            .clone()
            .unwrap_or_else(|| "auto".to_string())
    }

    /// The client, started and connected on first use.
    async fn client(&self) -> Result<Arc<Client>, (String, String)> {
        let mut slot = self.client.lock().await;
        match &*slot {
            Some(Ok(c)) if c.alive.load(Ordering::Relaxed) => return Ok(c.clone()),
            Some(Err(e)) => return Err(e.clone()),
            _ => {}
        }
        let started = self.start().await.map(Arc::new);
        *slot = Some(started.clone());
        started
    }

    async fn start(&self) -> Result<Client, (String, String)> {
        let address = self.address();
        let fix_address = format!(
            "start the cluster (`ray start --head` on its head node) or correct `[executor] address` \
             in parender.toml (now {address}; `host:port` of the head, port 6379 by default, or \
             `ray://host:10001` for Ray Client)"
        );
        let Some(root) = self.root.to_str() else {
            return Err((
                format!(
                    "the project path {} is not UTF-8, which the Ray executor cannot ship",
                    self.root.display()
                ),
                "move the project to a UTF-8 path".into(),
            ));
        };
        let Some(scratch) = self.scratch.to_str() else {
            return Err((
                format!("{} is not UTF-8", self.scratch.display()),
                "move the project to a UTF-8 path".into(),
            ));
        };
        if let Err(e) = std::fs::create_dir_all(&self.scratch) {
            return Err((
                format!("cannot create {}: {e}", self.scratch.display()),
                "make the project folder writable".into(),
            ));
        }
        let log = self.scratch.join("ray-client.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| {
                (
                    format!("cannot write {}: {e}", log.display()),
                    "make the project folder writable".to_string(),
                )
            })?;
        let mut cmd = Command::new(&self.python);
        cmd.arg("-c")
            .arg(CLIENT_PY)
            .current_dir(&self.root)
            .envs(PYTHON_ENV.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log_file);
        procs::contain(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            (
                format!("cannot run Python `{}`: {e}", self.python.display()),
                "check `python` in parender.toml (`parender doctor` shows which one is used)"
                    .to_string(),
            )
        })?;
        let group = GroupGuard::new(&child);
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(("the Ray client has no pipes".into(), String::new()));
        };
        let hello = json!({
            "address": self.config.address,
            "cpus": self.config.cpus.unwrap_or(1),
            "root": root,
            "scratch": scratch,
            "excludes": excludes(&self.root, &self.scratch),
            "worker": WORKER_PY,
            "python_env": PYTHON_ENV.iter().copied().collect::<HashMap<_, _>>(),
        });
        let mut lines = BufReader::new(stdout).lines();
        let first = async {
            stdin.write_all(format!("{hello}\n").as_bytes()).await?;
            stdin.flush().await?;
            lines.next_line().await
        };
        let first = match tokio::time::timeout(CONNECT_TIMEOUT, first).await {
            Err(_) => {
                return Err((
                    format!(
                        "the Ray cluster at {address} did not answer within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                    fix_address,
                ));
            }
            Ok(Err(e)) => {
                return Err((
                    format!("the Ray client failed: {e}; {}", log_tail(&log)),
                    fix_address,
                ));
            }
            Ok(Ok(None)) => {
                return Err((
                    format!(
                        "the Ray client exited before connecting; {}",
                        log_tail(&log)
                    ),
                    fix_address,
                ));
            }
            Ok(Ok(Some(line))) => line,
        };
        let ready = parse_ready(&first, &self.python).map_err(|(problem, fix)| {
            let fix = if fix.is_empty() { fix_address } else { fix };
            (problem, fix)
        })?;
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                if stdin
                    .write_all(format!("{line}\n").as_bytes())
                    .await
                    .is_err()
                    || stdin.flush().await.is_err()
                {
                    break;
                }
            }
        });
        let routes = pending.clone();
        let alive = Arc::new(AtomicBool::new(true));
        let still = alive.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(answer) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                let Some(id) = answer["id"].as_u64() else {
                    continue;
                };
                if let Some(waiter) = lock(&routes).remove(&id) {
                    let _ = waiter.send(answer);
                }
            }
            // The client is gone: every waiter hears it.
            still.store(false, Ordering::Relaxed);
            lock(&routes).clear();
        });
        Ok(Client {
            tx,
            pending,
            alive,
            ready,
            log,
            _child: child,
            _group: group,
        })
    }

    pub async fn check(&self) -> Result<String, (String, String)> {
        let client = self.client().await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rx = client
            .request(id, json!({"op": "probe"}))
            .map_err(|e| (e.to_string(), String::new()))?;
        let mut guard = CancelOnDrop {
            client: &client,
            id,
            armed: false,
        };
        let answer = tokio::time::timeout(PROBE_TIMEOUT, rx).await;
        guard.armed = false;
        let install = format!(
            "install Manim on every node of the cluster, in the Python the workers run, the same \
             version as in `{}`",
            self.python.display()
        );
        let Ready { ray, cpus, address } = &client.ready;
        match answer {
            Err(_) => Err((
                format!(
                    "ray {ray} at {address} answered, but a task did not start within {} s",
                    PROBE_TIMEOUT.as_secs()
                ),
                "check the cluster with `ray status`: are there free CPUs?".into(),
            )),
            Ok(Err(_)) => Err((client.gone().to_string(), String::new())),
            Ok(Ok(answer)) => match answer["manim"].as_str() {
                Some(manim) => Ok(format!(
                    "ray {ray}, {cpus} CPUs in the cluster at {address}; Manim {manim} on the workers"
                )),
                None => Err((
                    format!(
                        "a task on the cluster at {address} could not import Manim: {}",
                        answer["error"].as_str().unwrap_or("no answer")
                    ),
                    install,
                )),
            },
        }
    }

    async fn run_on_ray(
        &self,
        run: &PythonRun,
        cancel: &CancellationToken,
    ) -> std::io::Result<Finished> {
        let client = self
            .client()
            .await
            .map_err(|(problem, fix)| std::io::Error::other(format!("{problem} (fix: {fix})")))?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut rx = client.request(id, request(run, &self.root))?;
        let mut guard = CancelOnDrop {
            client: &client,
            id,
            armed: true,
        };
        // The task enforces the timeout from its start; this backstop also
        // covers a task that never got a CPU.
        let backstop = run.timeout.saturating_mul(2) + Duration::from_secs(60);
        let stopped = tokio::select! {
            answer = &mut rx => {
                guard.armed = false;
                return match answer {
                    Ok(answer) => finished(&answer).map_err(std::io::Error::other),
                    Err(_) => Err(client.gone()),
                };
            }
            _ = cancel.cancelled() => Outcome::Cancelled,
            _ = tokio::time::sleep(backstop) => Outcome::TimedOut,
        };
        client.cancel(id);
        guard.armed = false;
        // Ray confirms once the task's worker (and so the render) is gone.
        let _ = tokio::time::timeout(CANCEL_WAIT, rx).await;
        Ok(Finished {
            outcome: stopped,
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }
}

impl RunScript for RayRunner {
    fn python(&self) -> &Path {
        &self.python
    }
    fn run<'a>(
        &'a self,
        run: &'a PythonRun,
        cancel: &'a CancellationToken,
    ) -> futures::future::BoxFuture<'a, std::io::Result<Finished>> {
        Box::pin(self.run_on_ray(run, cancel))
    }
    fn slots(&self) -> futures::future::BoxFuture<'_, Option<usize>> {
        Box::pin(async move {
            let client = self.client().await.ok()?;
            let per_run = self.config.cpus.unwrap_or(1).max(1) as u64;
            usize::try_from(client.ready.cpus / per_run)
                .ok()
                .filter(|n| *n > 0)
        })
    }
}

/// What is not shipped: [`EXCLUDES`], and parender's state folder (the
/// scratch folder's parent, where the upload's zip is written) when it is
/// inside the root under another name (`PARENDER_CACHE_DIR`): the zip must
/// never pack itself.
fn excludes(root: &Path, scratch: &Path) -> Vec<String> {
    let mut all: Vec<String> = EXCLUDES.iter().map(|e| e.to_string()).collect();
    let state = scratch.parent().unwrap_or(scratch);
    for dir in [state, scratch] {
        if let Ok(rel) = dir.strip_prefix(root)
            && let Some(rel) = rel.to_str()
            && !rel.is_empty()
        {
            all.push(format!("/{rel}"));
        }
    }
    all
}

/// The client's first line: connected, or why not.
fn parse_ready(line: &str, python: &Path) -> Result<Ready, (String, String)> {
    let v: Value = serde_json::from_str(line).map_err(|_| {
        (
            format!("the Ray client said something unexpected: {line}"),
            format!("check that `{} -c 'import ray'` works", python.display()),
        )
    })?;
    match v["event"].as_str() {
        Some("ready") => Ok(Ready {
            ray: v["ray"].as_str().unwrap_or("?").to_string(),
            cpus: v["cpus"].as_u64().unwrap_or(0),
            address: v["address"].as_str().unwrap_or("?").to_string(),
        }),
        _ => Err((
            v["error"].as_str().unwrap_or(line).to_string(),
            v["fix"].as_str().unwrap_or("").to_string(),
        )),
    }
}

/// Where a local folder is found in the task's working directory: the
/// project root is the working directory itself (`rel` empty); a folder to
/// bring back that is outside the root (the media folder when
/// `PARENDER_CACHE_DIR` puts the state elsewhere) gets a place of its own.
#[derive(Debug, Clone, PartialEq)]
struct Mount {
    local: PathBuf,
    rel: String,
}

/// The mounts of a run that brings back `collect`: the root, and each
/// collected path outside it (one not inside another).
fn mounts(root: &Path, collect: &[PathBuf]) -> Vec<Mount> {
    let mut outside: Vec<&PathBuf> = collect
        .iter()
        .filter(|c| c.is_absolute() && !c.starts_with(root))
        .collect();
    outside.sort_by_key(|c| c.as_os_str().len());
    let mut mounts: Vec<Mount> = Vec::new();
    for c in outside {
        if mounts.iter().any(|m| c.starts_with(&m.local)) {
            continue;
        }
        let digest = blake3::hash(c.as_os_str().as_bytes()).to_hex();
        mounts.push(Mount {
            local: c.clone(),
            rel: format!(".parender/ray-out/{}", &digest[..16]),
        });
    }
    mounts.push(Mount {
        local: root.to_path_buf(),
        rel: String::new(),
    });
    mounts
}

/// A value for the task: a path under a mount as `{"rel": …}` (relative to
/// the task's working directory), else the value as it is (`{"s": …}`, or
/// `{"hex": …}` when it is not UTF-8).
fn value(v: &OsStr, mounts: &[Mount]) -> Value {
    let path = Path::new(v);
    if path.is_absolute() {
        for m in mounts {
            if let Ok(rest) = path.strip_prefix(&m.local)
                && let Some(rest) = rest.to_str()
            {
                let rel = match (m.rel.as_str(), rest) {
                    (base, "") => base.to_string(),
                    ("", rest) => rest.to_string(),
                    (base, rest) => format!("{base}/{rest}"),
                };
                return json!({ "rel": rel });
            }
        }
    }
    match v.to_str() {
        Some(s) => json!({ "s": s }),
        None => json!({ "hex": hex(v.as_bytes()) }),
    }
}

/// The client's request for `run`: what to bring back (the folder after
/// `--media_dir` and the file `PARENDER_REPORT` names), the folders to
/// create first (those and the report's folder), and its arguments,
/// environment and working directory moved to their places in the task's
/// copy of `root` (see [`Mount`]).
fn request(run: &PythonRun, root: &Path) -> Value {
    let mut collect: Vec<PathBuf> = Vec::new();
    let mut args = run.args.iter();
    while let Some(a) = args.next() {
        if a == "--media_dir"
            && let Some(dir) = args.next()
        {
            collect.push(dir.into());
        }
    }
    collect.retain(|c| c.is_absolute());
    // The media folder exists before the run, as the driver's caller made it
    // here; the report's folder too.
    let mut dirs = collect.clone();
    for (k, v) in &run.env {
        let report = Path::new(v);
        if k == "PARENDER_REPORT" && report.is_absolute() {
            collect.push(report.to_path_buf());
            dirs.extend(report.parent().map(Path::to_path_buf));
        }
    }
    let mounts = mounts(root, &collect);
    let env: serde_json::Map<String, Value> = run
        .env
        .iter()
        .map(|(k, v)| (k.clone(), value(v, &mounts)))
        .collect();
    json!({
        "op": "run",
        "script": run.script,
        "argv": run.args.iter().map(|a| value(a, &mounts)).collect::<Vec<_>>(),
        "env": env,
        "cwd": value(run.cwd.as_os_str(), &mounts),
        "collect": collect.iter().map(|c| value(c.as_os_str(), &mounts)).collect::<Vec<_>>(),
        "dirs": dirs.iter().map(|c| value(c.as_os_str(), &mounts)).collect::<Vec<_>>(),
        "mounts": mounts
            .iter()
            .map(|m| json!({"local": m.local.to_string_lossy(), "rel": m.rel}))
            .collect::<Vec<_>>(),
        "timeout": run.timeout.as_secs_f64(),
    })
}

/// How the run ended, from the client's answer: `Err` when Ray could not
/// run it at all.
fn finished(answer: &Value) -> Result<Finished, String> {
    if let Some(error) = answer["error"].as_str() {
        return Err(format!("on Ray: {error}"));
    }
    let bytes = |key: &str| unhex(answer[key].as_str().unwrap_or(""));
    let outcome = if answer["cancelled"] == true {
        Outcome::Cancelled
    } else if answer["timed_out"] == true {
        Outcome::TimedOut
    } else if let Some(code) = answer["code"].as_i64() {
        Outcome::Exited(ExitStatus::from_raw(((code & 0xff) as i32) << 8))
    } else if let Some(signal) = answer["signal"].as_i64() {
        Outcome::Exited(ExitStatus::from_raw((signal & 0x7f) as i32))
    } else {
        return Err(format!(
            "the Ray client answered without a status: {answer}"
        ));
    };
    Ok(Finished {
        outcome,
        stdout: bytes("stdout"),
        stderr: bytes("stderr"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex digits to bytes; whatever is not a pair of hex digits is skipped.
fn unhex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks_exact(2)
        .filter_map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    fn run(args: &[&str], env: &[(&str, &str)], cwd: &str) -> PythonRun {
        PythonRun {
            script: "print(1)".into(),
            args: args.iter().map(OsString::from).collect(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), OsString::from(v)))
                .collect(),
            cwd: cwd.into(),
            timeout: Duration::from_millis(2500),
        }
    }

    #[test]
    fn paths_under_the_root_move_under_the_working_dir() {
        let root = Path::new("/home/u/talk");
        let r = request(
            &run(
                &[
                    "render",
                    "scenes/a.py",
                    "A",
                    "--media_dir",
                    "/home/u/talk/.parender/media/dev/ab",
                    "/home/u/talkative/x",
                    "/elsewhere",
                ],
                &[
                    (
                        "PARENDER_REPORT",
                        "/home/u/talk/.parender/media/dev/ab/r.jsonl",
                    ),
                    ("PARENDER_SEED", "7"),
                ],
                "/home/u/talk",
            ),
            root,
        );
        assert_eq!(r["op"], "run");
        assert_eq!(r["timeout"], 2.5);
        assert_eq!(r["cwd"], json!({"rel": ""}));
        assert_eq!(
            r["argv"],
            json!([
                {"s": "render"},
                {"s": "scenes/a.py"},
                {"s": "A"},
                {"s": "--media_dir"},
                {"rel": ".parender/media/dev/ab"},
                // A sibling that shares the root's name as a prefix is not under it.
                {"s": "/home/u/talkative/x"},
                {"s": "/elsewhere"},
            ])
        );
        assert_eq!(
            r["env"]["PARENDER_REPORT"],
            json!({"rel": ".parender/media/dev/ab/r.jsonl"})
        );
        assert_eq!(r["env"]["PARENDER_SEED"], json!({"s": "7"}));
        assert_eq!(
            r["collect"],
            json!([
                {"rel": ".parender/media/dev/ab"},
                {"rel": ".parender/media/dev/ab/r.jsonl"},
            ])
        );
        assert_eq!(r["mounts"], json!([{"local": "/home/u/talk", "rel": ""}]));
        assert_eq!(
            r["dirs"],
            json!([{"rel": ".parender/media/dev/ab"}, {"rel": ".parender/media/dev/ab"}])
        );
    }

    #[test]
    fn a_media_dir_outside_the_root_gets_a_place_in_the_working_dir() {
        let root = Path::new("/p");
        let r = request(
            &run(
                &["--media_dir", "/cache/media/dev/ab"],
                &[("PARENDER_REPORT", "/cache/media/dev/ab/r.jsonl")],
                "/p",
            ),
            root,
        );
        let place = r["mounts"][0]["rel"].as_str().unwrap().to_string();
        assert!(place.starts_with(".parender/ray-out/"), "{place}");
        assert_eq!(r["mounts"][0]["local"], "/cache/media/dev/ab");
        assert_eq!(r["mounts"][1], json!({"local": "/p", "rel": ""}));
        assert_eq!(r["argv"][1], json!({ "rel": place }));
        assert_eq!(
            r["env"]["PARENDER_REPORT"],
            json!({"rel": format!("{place}/r.jsonl")})
        );
        assert_eq!(
            r["collect"],
            json!([{ "rel": place }, {"rel": format!("{place}/r.jsonl")}])
        );
    }

    #[test]
    fn relative_paths_are_not_collected_and_bytes_stay_bytes() {
        let root = Path::new("/p");
        let mut r = run(&["--media_dir", "m"], &[], "/p/sub");
        r.args.push(OsString::from_vec(vec![b'a', 0xff]));
        let r = request(&r, root);
        assert_eq!(r["collect"], json!([]));
        assert_eq!(r["cwd"], json!({"rel": "sub"}));
        assert_eq!(r["argv"][2], json!({"hex": "61ff"}));
    }

    #[test]
    fn answers_become_outcomes() {
        let f = finished(&json!({"id": 1, "code": 3, "timed_out": false,
            "stdout": hex(b"out"), "stderr": hex(b"err\xff")}))
        .unwrap();
        assert!(matches!(f.outcome, Outcome::Exited(s) if s.code() == Some(3)));
        assert_eq!(f.stdout, b"out");
        assert_eq!(f.stderr, b"err\xff");
        let f = finished(&json!({"id": 1, "code": 0, "stdout": "", "stderr": ""})).unwrap();
        assert!(matches!(f.outcome, Outcome::Exited(s) if s.success()));
        let f = finished(&json!({"id": 1, "signal": 9})).unwrap();
        assert!(matches!(f.outcome, Outcome::Exited(s) if s.signal() == Some(9)));
        let f = finished(&json!({"id": 1, "signal": 9, "timed_out": true})).unwrap();
        assert!(matches!(f.outcome, Outcome::TimedOut));
        let f = finished(&json!({"id": 1, "cancelled": true})).unwrap();
        assert!(matches!(f.outcome, Outcome::Cancelled));
        let e = finished(&json!({"id": 1, "error": "RuntimeEnvSetupError: too big"})).unwrap_err();
        assert!(e.contains("too big"), "{e}");
        assert!(finished(&json!({"id": 1})).is_err());
    }

    #[test]
    fn the_first_line_says_connected_or_why_not() {
        let py = Path::new("/venv/bin/python");
        let r = parse_ready(
            r#"{"event":"ready","ray":"2.60.0","cpus":4,"address":"h:6379"}"#,
            py,
        )
        .unwrap();
        assert_eq!(
            (r.ray.as_str(), r.cpus, r.address.as_str()),
            ("2.60.0", 4, "h:6379")
        );
        let (problem, fix) = parse_ready(
            r#"{"event":"failed","error":"Ray is not installed","fix":"pip install ray"}"#,
            py,
        )
        .err()
        .unwrap();
        assert_eq!(
            (problem.as_str(), fix.as_str()),
            ("Ray is not installed", "pip install ray")
        );
        assert!(parse_ready("Traceback", py).is_err());
    }

    #[test]
    fn the_state_folder_is_never_shipped() {
        let root = Path::new("/p");
        let e = excludes(root, Path::new("/p/cache/tmp"));
        assert!(e.contains(&"/cache".to_string()), "{e:?}");
        assert!(e.contains(&"/cache/tmp".to_string()), "{e:?}");
        let e = excludes(root, Path::new("/elsewhere/tmp"));
        assert_eq!(e.len(), EXCLUDES.len());
        assert!(e.contains(&"/.parender".to_string()));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(b"\x00a\xff")), b"\x00a\xff");
        assert_eq!(unhex("zz41"), b"A");
    }
}
