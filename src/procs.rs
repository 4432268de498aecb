//! Child processes that can be stopped as a whole: each runs as the leader of
//! its own process group, so a timeout or Ctrl-C stops everything it started
//! (SIGTERM to the group, a grace period, then SIGKILL).
use std::process::ExitStatus;
use std::time::Duration;

use process_wrap::tokio::{ChildWrapper, CommandWrap, KillOnDrop, ProcessGroup};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// At most this much of a child's stdout and stderr is kept (the end of it).
const KEEP_BYTES: usize = 256 * 1024;

/// How long a group gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(2);

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

async fn read_tail<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * KEEP_BYTES {
                    let cut = kept.len() - KEEP_BYTES;
                    kept.drain(..cut);
                }
            }
        }
    }
    if kept.len() > KEEP_BYTES {
        let cut = kept.len() - KEEP_BYTES;
        kept.drain(..cut);
    }
    kept
}

/// Stops a whole group: SIGTERM, up to `GRACE` to exit, then SIGKILL.
async fn stop_group(child: &mut Box<dyn ChildWrapper>) {
    let _ = child.signal(libc::SIGTERM);
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}

/// Runs `cmd` in a new process group with stdout and stderr captured, until it
/// exits, `timeout` passes or `cancel` fires. Whatever it left running in its
/// group is killed before this returns.
pub async fn run_group(
    mut cmd: Command,
    timeout: Duration,
    cancel: &CancellationToken,
) -> std::io::Result<Finished> {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // If parender itself dies (kill -9), the render dies with it instead of
    // writing on into a media folder the next build will use.
    // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut wrap = CommandWrap::from(cmd);
    wrap.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let mut child = wrap.spawn()?;
    let pgid = child.id();
    let out = child.stdout().take().map(|o| tokio::spawn(read_tail(o)));
    let err = child.stderr().take().map(|e| tokio::spawn(read_tail(e)));

    let outcome = tokio::select! {
        status = child.wait() => Outcome::Exited(status?),
        _ = tokio::time::sleep(timeout) => {
            stop_group(&mut child).await;
            Outcome::TimedOut
        }
        _ = cancel.cancelled() => {
            stop_group(&mut child).await;
            Outcome::Cancelled
        }
    };
    // Anything the scene left running in its group (a helper process) goes too.
    if let Some(pgid) = pgid {
        // SAFETY: killpg only sends a signal; a stale id fails with ESRCH.
        unsafe {
            libc::killpg(pgid as libc::pid_t, libc::SIGKILL);
        }
    }
    let stdout = match out {
        Some(h) => h.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let stderr = match err {
        Some(h) => h.await.unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Finished {
        outcome,
        stdout,
        stderr,
    })
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

    fn alive(pid: i32) -> bool {
        // A zombie still answers kill(0); look at its state instead.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(s) => s.split_whitespace().nth(2).is_none_or(|st| st != "Z"),
            Err(_) => false,
        }
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
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(!alive(pid), "grandchild {pid} survived the timeout");
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
        let start = std::time::Instant::now();
        let f = run_group(c, Duration::from_secs(60), &cancel)
            .await
            .unwrap();
        assert!(matches!(f.outcome, Outcome::Cancelled));
        assert!(start.elapsed() < Duration::from_secs(5));
    }
}
