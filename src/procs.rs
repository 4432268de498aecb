//! Child processes that are stopped as a whole, with everything they started.
//!
//! [`run_group`] (renders) ends a child and all its descendants when it
//! exits, times out, is cancelled, or when the future running it is dropped:
//!
//! - The child leads its own process group: SIGTERM, then after [`GRACE`]
//!   SIGKILL, reach every process that stayed in the group.
//! - It dies with parender: `PR_SET_PDEATHSIG(SIGKILL)` is set in the child
//!   before `exec` (and it gives up at once if parender is already gone).
//! - Descendants that left the group (`setsid`, Python's
//!   `start_new_session=True`, a double fork) are found in two ways, each of
//!   which can only name descendants of this very run:
//!   1. The child's environment carries [`TREE_VAR`]`=<token>`, a token unique
//!      to the run (parender's pid and start time, a counter), which every
//!      descendant inherits through fork and exec. At the end, each process
//!      younger than the child whose initial environment
//!      (`/proc/PID/environ`) holds this exact entry is killed, wherever it
//!      was re-parented.
//!   2. The child is made a child subreaper (`PR_SET_CHILD_SUBREAPER`, kept
//!      across `exec`), so while it runs, orphans of its descendants are
//!      re-parented to it instead of to init: its whole tree stays below it.
//!      Every [`SCAN_EVERY`], and just before it is stopped, parender walks
//!      /proc (each process's parent) from the child down and remembers every
//!      descendant by pid and start time. Those still alive with the same start
//!      time at the end are killed too: this catches a descendant that cleared
//!      its environment.
//!
//!   A process is signalled through a pidfd opened before its start time is
//!   checked again, so a recycled pid is never signalled. Nothing outside the
//!   run's own tree is touched: not other renders, not what the user (or a
//!   test) runs, not parender's ancestors (all older than the child).
//! - Output is read while the child runs. Once it has exited and its
//!   descendants are ended, the pipes get at most [`DRAIN_GRACE`] (never past
//!   the timeout) to reach end-of-file, and cancellation cuts that short: a
//!   process that still holds them cannot delay the run.
//!
//! Parender itself is deliberately not a child subreaper: the orphans of all
//! its children (say a `watch --on-success` command that starts a player in
//! the background) would become its own children, impossible to attribute,
//! and left as zombies that nothing reaps (tokio only waits for the
//! processes it spawned). Making each run's child the subreaper keeps the
//! same tree under watch without that cost.
//!
//! What can escape: a descendant that both clears its environment and is
//! born and orphaned less than [`SCAN_EVERY`] before the child exits; and,
//! when parender itself is killed with SIGKILL, whatever the child started
//! (the child itself dies with parender; nothing is left to end the rest).
//!
//! [`output`] runs short tools (ffmpeg, ffprobe) to the end: in their own
//! process group, dying with parender, and with the whole group killed when
//! the caller stops waiting (a cancelled build drops the future). [`contain`]
//! and [`GroupGuard`] do the same for a command whose output is streamed.
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// At most this much of a child's stdout and stderr is kept (the end of it).
const KEEP_BYTES: usize = 256 * 1024;

/// How long a group gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

/// How long output pipes may stay open after the child exited and its
/// descendants were ended.
pub const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// How often a running child's process tree is recorded.
pub const SCAN_EVERY: Duration = Duration::from_millis(500);

/// The environment variable that marks every process of one run.
pub const TREE_VAR: &str = "PARENDER_PROCESS_TREE";

#[derive(Debug)]
pub enum Outcome {
    Exited(ExitStatus),
    TimedOut,
    Cancelled,
}

#[derive(Debug)]
pub struct Finished {
    pub outcome: Outcome,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Reads `r` to its end, keeping the last `KEEP_BYTES`. Once `stop` fires it
/// still takes what is already buffered, then stops instead of waiting.
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(mut r: R, stop: CancellationToken) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut after_stop = 0usize;
    loop {
        let n = tokio::select! {
            biased;
            read = r.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = stop.cancelled() => break,
        };
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * KEEP_BYTES {
            let cut = kept.len() - KEEP_BYTES;
            kept.drain(..cut);
        }
        // A writer that never pauses must not keep the reader forever.
        if stop.is_cancelled() {
            after_stop += n;
            if after_stop > KEEP_BYTES {
                break;
            }
        }
    }
    if kept.len() > KEEP_BYTES {
        let cut = kept.len() - KEEP_BYTES;
        kept.drain(..cut);
    }
    kept
}

/// Makes `cmd` lead its own process group, die with parender
/// (`PR_SET_PDEATHSIG`, kill -9 included) and be killed when its `Child` is
/// dropped. For a command run without [`output`] (one whose stdout is
/// streamed), hold a [`GroupGuard`] too, so dropping the future kills its
/// whole group.
pub fn contain(cmd: &mut Command) {
    contain_with(cmd, false);
}

/// [`contain`]; with `subreaper`, orphans of the child's descendants are
/// re-parented to it while it runs.
fn contain_with(cmd: &mut Command, subreaper: bool) {
    cmd.process_group(0).kill_on_drop(true);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only prctl and getppid run in the child, both async-signal-safe
    // system calls; nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // Parender died before the prctl: nobody waits for this child.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            if subreaper {
                // Best effort: without it, the environment mark still works.
                libc::prctl(
                    libc::PR_SET_CHILD_SUBREAPER,
                    1 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                );
            }
            Ok(())
        });
    }
}

fn kill_group(pgid: i32, sig: i32) {
    if pgid > 1 {
        // SAFETY: killpg only sends a signal; a stale id fails with ESRCH.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

/// One process as /proc shows it.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: i32,
    ppid: i32,
    /// Start time in clock ticks since boot: with the pid, it names one
    /// process for good.
    start: u64,
    zombie: bool,
}

fn stat(pid: i32) -> Option<Proc> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = s.get(s.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Proc {
        pid,
        ppid: f.get(1)?.parse().ok()?,
        start: f.get(19)?.parse().ok()?,
        zombie: matches!(*f.first()?, "Z" | "X"),
    })
}

fn processes() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(stat)
        .collect()
}

/// Whether `pid`'s initial environment holds exactly `entry` (`NAME=value`).
fn carries(pid: i32, entry: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|e| e == entry))
}

/// Sends `sig` to the process `p` names, if it is still that process (same
/// start time) once a pidfd pins it. Never parender itself or pid 1.
fn signal(p: &Proc, sig: i32) -> bool {
    if p.pid <= 1 || p.pid == std::process::id() as i32 {
        return false;
    }
    let same = || stat(p.pid).is_some_and(|q| q.start == p.start && !q.zombie);
    // SAFETY: pidfd_open returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, p.pid, 0) };
    if fd < 0 {
        let old_kernel = std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS);
        // SAFETY: kill only sends a signal.
        return old_kernel && same() && unsafe { libc::kill(p.pid, sig) } == 0;
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if !same() {
        return false;
    }
    // SAFETY: sends a signal through a descriptor we own; no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        ) == 0
    }
}

fn alive(pid: i32, start: u64) -> bool {
    stat(pid).is_some_and(|q| q.start == start && !q.zombie)
}

/// A run's child and everything it started.
struct Tree {
    /// The child's pid, which is also its process group.
    root: i32,
    root_start: u64,
    /// Once the child is reaped its pid may name another process: no more
    /// walks from it.
    root_reaped: bool,
    /// `TREE_VAR=token`, as it appears in /proc/PID/environ.
    mark: Vec<u8>,
    /// Descendants seen below the child: pid → start time.
    seen: HashMap<i32, u64>,
    ended: bool,
}

impl Tree {
    fn new(root: i32, token: &str) -> Tree {
        Tree {
            root,
            // Until read, 0 keeps every process a candidate for the mark;
            // the mark alone still names only this run's.
            root_start: stat(root).map_or(0, |p| p.start),
            root_reaped: false,
            mark: format!("{TREE_VAR}={token}").into_bytes(),
            seen: HashMap::new(),
            ended: false,
        }
    }

    /// Remembers every live process below the child (by parent pid).
    fn record(&mut self) {
        if self.root_reaped {
            return;
        }
        let procs = processes();
        if !procs
            .iter()
            .any(|p| p.pid == self.root && p.start == self.root_start)
        {
            return;
        }
        let mut children: HashMap<i32, Vec<&Proc>> = HashMap::new();
        for p in &procs {
            children.entry(p.ppid).or_default().push(p);
        }
        let mut visited = HashSet::from([self.root]);
        let mut stack = vec![self.root];
        while let Some(pid) = stack.pop() {
            for c in children.get(&pid).into_iter().flatten() {
                if c.start >= self.root_start && visited.insert(c.pid) {
                    if !c.zombie {
                        self.seen.insert(c.pid, c.start);
                    }
                    stack.push(c.pid);
                }
            }
        }
    }

    /// Live processes of this run other than the child: those remembered
    /// (same start time) and those younger than the child that carry its mark.
    fn strays(&self) -> Vec<Proc> {
        processes()
            .into_iter()
            .filter(|p| {
                !p.zombie
                    // The child itself, until reaped, is the group's to stop.
                    && (self.root_reaped || p.pid != self.root)
                    && p.start >= self.root_start
                    && (self.seen.get(&p.pid) == Some(&p.start) || carries(p.pid, &self.mark))
            })
            .collect()
    }

    /// Kills the group and every stray, again while new ones appear (a stray
    /// may fork while being killed); then waits (briefly) until they are gone
    /// and reaps any that had become parender's children.
    async fn end(&mut self) {
        kill_group(self.root, libc::SIGKILL);
        let mut killed: HashMap<i32, u64> = HashMap::new();
        for _ in 0..10 {
            let new: Vec<Proc> = self
                .strays()
                .into_iter()
                .filter(|p| killed.get(&p.pid) != Some(&p.start))
                .collect();
            if new.is_empty() {
                break;
            }
            for p in new {
                if signal(&p, libc::SIGKILL) {
                    killed.insert(p.pid, p.start);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let until = Instant::now() + Duration::from_secs(1);
        while killed.iter().any(|(&pid, &start)| alive(pid, start)) && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.reap(&killed);
        self.ended = true;
    }

    /// Reaps the killed processes that are zombie children of parender (only
    /// if something made it a subreaper): none of them is a process tokio
    /// spawned, so no one else waits for them.
    fn reap(&self, killed: &HashMap<i32, u64>) {
        let me = std::process::id() as i32;
        for (&pid, &start) in killed {
            if stat(pid).is_some_and(|q| q.ppid == me && q.start == start && q.zombie) {
                // SAFETY: reaps one exited child of ours; its pid cannot be
                // reused before it is reaped.
                unsafe {
                    libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
                }
            }
        }
    }
}

impl Drop for Tree {
    /// The run was abandoned (its future dropped): kill everything, without
    /// waiting.
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.record();
        kill_group(self.root, libc::SIGKILL);
        for p in self.strays() {
            signal(&p, libc::SIGKILL);
        }
    }
}

/// A token no other run (of this or any other parender) carries.
fn new_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let me = std::process::id() as i32;
    let start = stat(me).map_or(0, |p| p.start);
    format!("{me}.{start}.{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Stops a running child and its tree: SIGTERM to the group and every known
/// descendant, up to `GRACE` for the child to exit, then SIGKILL.
async fn stop(child: &mut Child, tree: &mut Tree) {
    tree.record();
    kill_group(tree.root, libc::SIGTERM);
    for p in tree.strays() {
        signal(&p, libc::SIGTERM);
    }
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        tree.record();
        kill_group(tree.root, libc::SIGKILL);
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    tree.root_reaped = true;
}

/// Runs `cmd` in a new process group with stdout and stderr captured, until it
/// exits, `timeout` passes or `cancel` fires. Everything it started, in its
/// group or not, is killed before this returns (see the module docs), and the
/// timeout and `cancel` bound the whole call, reading its output included.
pub async fn run_group(
    mut cmd: Command,
    timeout: Duration,
    cancel: &CancellationToken,
) -> std::io::Result<Finished> {
    let deadline = deadline_after(timeout);
    let token = new_token();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env(TREE_VAR, &token);
    // If parender itself dies (kill -9), the render dies with it instead of
    // writing on into a media folder the next build will use.
    contain_with(&mut cmd, true);
    let mut child = cmd.spawn()?;
    let Some(root) = child.id() else {
        return Err(std::io::Error::other(
            "the child was reaped before it was seen",
        ));
    };
    // Dropped before `child` if this future is dropped: kills the tree while
    // the child's pid is still its own.
    let mut tree = Tree::new(root as i32, &token);
    let stop_reading = CancellationToken::new();
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(read_tail(o, stop_reading.clone())));
    let err = child
        .stderr
        .take()
        .map(|e| tokio::spawn(read_tail(e, stop_reading.clone())));

    let mut scan = tokio::time::interval_at(Instant::now() + SCAN_EVERY, SCAN_EVERY);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut outcome = loop {
        tokio::select! {
            status = child.wait() => {
                tree.root_reaped = true;
                break Outcome::Exited(status?);
            }
            _ = tokio::time::sleep_until(deadline) => {
                stop(&mut child, &mut tree).await;
                break Outcome::TimedOut;
            }
            _ = cancel.cancelled() => {
                stop(&mut child, &mut tree).await;
                break Outcome::Cancelled;
            }
            _ = scan.tick() => tree.record(),
        }
    };
    // Anything the child left running, in its group or not, goes too.
    tree.end().await;

    let now = Instant::now();
    let limit = match outcome {
        Outcome::Exited(_) => (now + DRAIN_GRACE).min(deadline.max(now)),
        _ => now + DRAIN_GRACE,
    };
    let collect = async {
        let stdout = match out {
            Some(h) => h.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let stderr = match err {
            Some(h) => h.await.unwrap_or_default(),
            None => Vec::new(),
        };
        (stdout, stderr)
    };
    tokio::pin!(collect);
    let exited = matches!(outcome, Outcome::Exited(_));
    let (stdout, stderr) = tokio::select! {
        biased;
        both = &mut collect => both,
        _ = tokio::time::sleep_until(limit) => {
            stop_reading.cancel();
            collect.await
        }
        _ = cancel.cancelled(), if exited => {
            stop_reading.cancel();
            outcome = Outcome::Cancelled;
            collect.await
        }
    };
    Ok(Finished {
        outcome,
        stdout,
        stderr,
    })
}

/// Kills the process group a [`contain`]ed child leads when dropped.
pub struct GroupGuard(Option<i32>);

impl GroupGuard {
    pub fn new(child: &Child) -> GroupGuard {
        GroupGuard(child.id().map(|p| p as i32))
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            kill_group(pgid, libc::SIGKILL);
        }
    }
}

/// Runs `cmd` to the end with its whole stdout and stderr captured and stdin
/// empty, in its own process group that dies with parender
/// (`PR_SET_PDEATHSIG`). If the future is dropped before the end (the caller
/// was cancelled), the whole group is killed.
pub async fn output(mut cmd: Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    contain(&mut cmd);
    let child = cmd.spawn()?;
    let _group = GroupGuard::new(&child);
    child.wait_with_output().await
}

/// A fresh mark for a process parender does not spawn itself (a warm
/// worker's forked child): give it `TREE_VAR=<token>` in its environment,
/// then supervise it with [`supervise_foreign`].
pub fn tree_token() -> String {
    new_token()
}

/// [`run_group`] for a process that another process forked and reaps (a warm
/// worker's child): `pid` leads its own process group, set itself up as
/// [`contain`] would (death signal, subreaper) and carries
/// `TREE_VAR=token`; `exited` resolves with its status once its parent has
/// reaped it. On timeout or `cancel` the group and the known descendants get
/// SIGTERM, then SIGKILL after [`GRACE`], and `exited` is still awaited, so
/// the parent is ready for more work when this returns. Either way
/// everything the process started is ended, as for [`run_group`]; if the
/// future is dropped, the group and its strays are killed at once.
pub async fn supervise_foreign<F>(
    pid: i32,
    token: &str,
    exited: F,
    timeout: Duration,
    cancel: &CancellationToken,
) -> std::io::Result<Outcome>
where
    F: std::future::Future<Output = std::io::Result<ExitStatus>>,
{
    let deadline = deadline_after(timeout);
    let mut tree = Tree::new(pid, token);
    tokio::pin!(exited);
    let mut scan = tokio::time::interval_at(Instant::now() + SCAN_EVERY, SCAN_EVERY);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let outcome = loop {
        tokio::select! {
            status = &mut exited => break status.map(Outcome::Exited),
            _ = tokio::time::sleep_until(deadline) => {
                break stop_foreign(&mut tree, exited.as_mut()).await.map(|()| Outcome::TimedOut);
            }
            _ = cancel.cancelled() => {
                break stop_foreign(&mut tree, exited.as_mut()).await.map(|()| Outcome::Cancelled);
            }
            _ = scan.tick() => tree.record(),
        }
    };
    // Reaped by its parent (or, if that died, by init): its pid is no
    // longer its own.
    tree.root_reaped = true;
    tree.end().await;
    outcome
}

/// [`stop`] for a process another one reaps: its end is `exited`.
async fn stop_foreign<F>(tree: &mut Tree, mut exited: std::pin::Pin<&mut F>) -> std::io::Result<()>
where
    F: std::future::Future<Output = std::io::Result<ExitStatus>>,
{
    tree.record();
    kill_group(tree.root, libc::SIGTERM);
    for p in tree.strays() {
        signal(&p, libc::SIGTERM);
    }
    if let Ok(status) = tokio::time::timeout(GRACE, exited.as_mut()).await {
        return status.map(drop);
    }
    tree.record();
    kill_group(tree.root, libc::SIGKILL);
    exited.await.map(drop)
}

/// The end of a file (at most what [`run_group`] keeps of a pipe): the
/// output of a process that wrote to files instead of pipes. Empty if the
/// file cannot be read.
pub fn file_tail(path: &std::path::Path) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(KEEP_BYTES as u64);
    let mut kept = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_ok() {
        let _ = f.take(KEEP_BYTES as u64).read_to_end(&mut kept);
    }
    kept
}

/// The last `lines` lines of captured output, as text.
pub fn tail_lines(bytes: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Instant as StdInstant;

    #[tokio::test]
    async fn captures_output_and_status() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2; exit 3"]);
        let f = run_group(c, Duration::from_secs(10), &CancellationToken::new())
            .await
            .unwrap();
        match f.outcome {
            Outcome::Exited(s) => assert_eq!(s.code(), Some(3)),
            o => panic!("{o:?}"),
        }
        assert_eq!(f.stdout, b"out\n");
        assert_eq!(f.stderr, b"err\n");
    }

    fn pid_alive(pid: i32) -> bool {
        // A zombie still answers kill(0); look at its state instead.
        stat(pid).is_some_and(|p| !p.zombie)
    }

    /// The pid in `file`, waiting (bounded) for it to be written.
    fn read_pid(file: &Path) -> i32 {
        let until = StdInstant::now() + Duration::from_secs(10);
        loop {
            if let Some(pid) = std::fs::read_to_string(file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return pid;
            }
            assert!(StdInstant::now() < until, "no pid in {file:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills a process this test started (by its pid) if it is still running.
    struct Cleanup(i32, u64);
    impl Cleanup {
        fn of(pid: i32) -> Cleanup {
            Cleanup(pid, stat(pid).map_or(0, |p| p.start))
        }
    }
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if alive(self.0, self.1) {
                signal(
                    &Proc {
                        pid: self.0,
                        ppid: 0,
                        start: self.1,
                        zombie: false,
                    },
                    libc::SIGKILL,
                );
            }
        }
    }

    async fn gone_soon(pid: i32) -> bool {
        for _ in 0..50 {
            if !pid_alive(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let t = tempfile::tempdir().unwrap();
        let pidfile = t.path().join("pid");
        let mut c = Command::new("sh");
        // A grandchild that ignores SIGTERM must still die with the group.
        c.arg("-c").arg(format!(
            "sh -c 'trap \"\" TERM; echo $$ > {}; sleep 1000' & wait",
            pidfile.display()
        ));
        let f = run_group(c, Duration::from_millis(800), &CancellationToken::new())
            .await
            .unwrap();
        assert!(matches!(f.outcome, Outcome::TimedOut));
        let pid = read_pid(&pidfile);
        std::thread::sleep(Duration::from_millis(200));
        assert!(!pid_alive(pid), "grandchild {pid} survived the timeout");
    }

    #[tokio::test]
    async fn cancel_stops_promptly() {
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.cancel();
        });
        let mut c = Command::new("sleep");
        c.arg("100");
        let start = StdInstant::now();
        let f = run_group(c, Duration::from_secs(60), &cancel)
            .await
            .unwrap();
        assert!(matches!(f.outcome, Outcome::Cancelled));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    /// `sh -c SCRIPT` where `$P` is a file for a pid.
    fn sh(script: &str, pidfile: &Path) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script).env("P", pidfile);
        c
    }

    /// Shell that starts `sleep 100` in a new session (with an empty
    /// environment when `clear_env`), its pid in `$P`, and goes on only once
    /// it has left the group (and dropped its environment).
    fn detach(clear_env: bool) -> String {
        let env = if clear_env {
            "env -i PATH=/usr/bin:/bin "
        } else {
            ""
        };
        format!(
            "setsid {env}sh -c 'echo $$ > \"$1\"; exec sleep 100' x \"$P\" & \
             while [ ! -s \"$P\" ]; do sleep 0.01; done; "
        )
    }

    #[tokio::test]
    async fn a_descendant_in_another_session_neither_holds_the_pipes_nor_survives() {
        let t = tempfile::tempdir().unwrap();
        let pidfile = t.path().join("pid");
        // The case: the child exits at once, leaving a process in a
        // new session that holds its stdout and stderr.
        let c = sh(&format!("{}echo done", detach(false)), &pidfile);
        let start = StdInstant::now();
        let f = run_group(c, Duration::from_secs(60), &CancellationToken::new())
            .await
            .unwrap();
        let took = start.elapsed();
        let pid = read_pid(&pidfile);
        let _cleanup = Cleanup::of(pid);
        assert!(matches!(f.outcome, Outcome::Exited(s) if s.success()));
        assert_eq!(f.stdout, b"done\n");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        assert!(!pid_alive(pid), "the detached process {pid} survived");
    }

    #[tokio::test]
    async fn timeout_and_cancel_end_descendants_in_another_session() {
        let t = tempfile::tempdir().unwrap();
        for cancelled in [false, true] {
            let pidfile = t.path().join(format!("pid-{cancelled}"));
            let c = sh(&format!("{}sleep 100", detach(false)), &pidfile);
            let cancel = CancellationToken::new();
            let c2 = cancel.clone();
            if cancelled {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    c2.cancel();
                });
            }
            let timeout = Duration::from_millis(if cancelled { 60_000 } else { 500 });
            let start = StdInstant::now();
            let f = run_group(c, timeout, &cancel).await.unwrap();
            let took = start.elapsed();
            let pid = read_pid(&pidfile);
            let _cleanup = Cleanup::of(pid);
            if cancelled {
                assert!(matches!(f.outcome, Outcome::Cancelled), "{:?}", f.outcome);
            } else {
                assert!(matches!(f.outcome, Outcome::TimedOut), "{:?}", f.outcome);
            }
            assert!(took < Duration::from_secs(4), "took {took:?}");
            assert!(!pid_alive(pid), "the detached process {pid} survived");
        }
    }

    #[tokio::test]
    async fn dropping_the_run_ends_its_whole_tree() {
        let t = tempfile::tempdir().unwrap();
        let pidfile = t.path().join("pid");
        let c = sh(&format!("{}sleep 100", detach(false)), &pidfile);
        let never = CancellationToken::new();
        let run = tokio::time::timeout(
            Duration::from_millis(500),
            run_group(c, Duration::from_secs(60), &never),
        );
        assert!(run.await.is_err(), "still running when dropped");
        let pid = read_pid(&pidfile);
        let _cleanup = Cleanup::of(pid);
        assert!(gone_soon(pid).await, "the detached process {pid} survived");
    }

    #[tokio::test]
    async fn a_descendant_that_clears_its_environment_is_still_found() {
        let t = tempfile::tempdir().unwrap();
        let pidfile = t.path().join("pid");
        // No mark in its environment: found by the walks below the child
        // (which outlives two scans).
        let c = sh(&format!("{}sleep 1.3", detach(true)), &pidfile);
        let f = run_group(c, Duration::from_secs(60), &CancellationToken::new())
            .await
            .unwrap();
        let pid = read_pid(&pidfile);
        let _cleanup = Cleanup::of(pid);
        assert!(matches!(f.outcome, Outcome::Exited(_)));
        assert!(gone_soon(pid).await, "the detached process {pid} survived");
    }

    #[tokio::test]
    async fn reading_output_is_bounded_after_the_child_exits() {
        let t = tempfile::tempdir().unwrap();
        // A holder of the pipes that nothing can attribute (no mark, born and
        // orphaned before any scan) delays the run by at most the drain
        // grace, the timeout, or until cancelled.
        for case in ["grace", "timeout", "cancel"] {
            let pidfile = t.path().join(case);
            let c = sh(&format!("{}echo out", detach(true)), &pidfile);
            let cancel = CancellationToken::new();
            let c2 = cancel.clone();
            if case == "cancel" {
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    c2.cancel();
                });
            }
            let timeout = Duration::from_millis(if case == "timeout" { 300 } else { 60_000 });
            let start = StdInstant::now();
            let f = run_group(c, timeout, &cancel).await.unwrap();
            let took = start.elapsed();
            let _cleanup = Cleanup::of(read_pid(&pidfile));
            assert_eq!(f.stdout, b"out\n", "{case}");
            let (within, outcome_ok) = match case {
                "grace" => (
                    DRAIN_GRACE + Duration::from_millis(700),
                    matches!(f.outcome, Outcome::Exited(_)),
                ),
                "timeout" => (
                    Duration::from_millis(900),
                    matches!(f.outcome, Outcome::Exited(_)),
                ),
                _ => (
                    Duration::from_millis(900),
                    matches!(f.outcome, Outcome::Cancelled),
                ),
            };
            assert!(took < within, "{case}: took {took:?}");
            assert!(outcome_ok, "{case}: {:?}", f.outcome);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn processes_outside_the_run_are_left_alone() {
        let t = tempfile::tempdir().unwrap();
        // Started by the test, in its own session, with another run's mark.
        let mut own = std::process::Command::new("setsid");
        own.args(["sleep", "100"])
            .env(TREE_VAR, "0.0.0")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut own = own.spawn().unwrap();
        let own_pid = own.id() as i32;
        let _cleanup_own = Cleanup::of(own_pid);
        // A concurrent run whose detached process must live until it ends.
        let a_pid = t.path().join("a");
        let a = sh(&format!("{}sleep 2", detach(false)), &a_pid);
        let a = tokio::spawn(async move {
            run_group(a, Duration::from_secs(60), &CancellationToken::new()).await
        });
        let a_sleep = read_pid(&a_pid);
        let _cleanup_a = Cleanup::of(a_sleep);
        let b_pid = t.path().join("b");
        let b = sh(&format!("{}exit 0", detach(false)), &b_pid);
        run_group(b, Duration::from_secs(60), &CancellationToken::new())
            .await
            .unwrap();
        let b_sleep = read_pid(&b_pid);
        let _cleanup_b = Cleanup::of(b_sleep);
        assert!(!pid_alive(b_sleep), "b's own detached process survived b");
        assert!(pid_alive(a_sleep), "b's end killed a's process");
        assert!(pid_alive(own_pid), "a run killed the test's own process");
        a.await.unwrap().unwrap();
        assert!(!pid_alive(a_sleep), "a's detached process survived a");
        assert!(pid_alive(own_pid), "a run killed the test's own process");
        let _ = own.kill();
        let _ = own.wait();
    }

    #[tokio::test]
    async fn output_captures_everything_and_kills_its_group_when_dropped() {
        let mut c = Command::new("sh");
        c.args(["-c", "head -c 600000 /dev/zero; echo err >&2"]);
        let out = output(c).await.unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 600_000, "nothing is cut");
        assert_eq!(out.stderr, b"err\n");

        let t = tempfile::tempdir().unwrap();
        let pidfile = t.path().join("pid");
        let c = sh("sleep 100 & echo $! > \"$P\"; wait", &pidfile);
        let r = tokio::time::timeout(Duration::from_millis(500), output(c)).await;
        assert!(r.is_err(), "still running when dropped");
        let pid = read_pid(&pidfile);
        let _cleanup = Cleanup::of(pid);
        assert!(
            gone_soon(pid).await,
            "the group outlived the dropped future"
        );
    }

    #[test]
    fn children_die_with_the_thread_that_started_them() {
        // PR_SET_PDEATHSIG fires when the spawning thread ends, the way it
        // fires when parender is killed.
        let pid = std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = Command::new("sleep");
                c.arg("100");
                contain(&mut c);
                c.kill_on_drop(false);
                let child = c.spawn().unwrap();
                let pid = child.id().unwrap() as i32;
                std::mem::forget(child);
                pid
            })
        })
        .join()
        .unwrap();
        let _cleanup = Cleanup::of(pid);
        let until = StdInstant::now() + Duration::from_secs(2);
        while pid_alive(pid) && StdInstant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!pid_alive(pid), "the child outlived its parent thread");
    }
}
