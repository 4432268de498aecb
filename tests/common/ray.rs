//! A real Ray head on loopback for the tests: `ray start --head --block`
//! run by the test Python, every port it opens pinned to a free one, its
//! files in a short temp folder of its own (Ray's default /tmp/ray is never
//! touched), in its own process group, stopped on drop by that group
//! (SIGTERM, then SIGKILL): never by name, never `ray stop`.
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RayHead {
    child: Child,
    /// Short on purpose: Ray's Unix sockets live below it (~100 chars).
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// From spawn until the head's GCS accepted a connection.
    pub started_in: Duration,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RayHead {
    /// Starts a head with `cpus` CPUs; panics (with its log) if it does not
    /// answer within a minute.
    pub fn start(cpus: u32) -> RayHead {
        let dir = tempfile::Builder::new()
            .prefix("rh")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("head.log")).expect("head log");
        let mut cmd = Command::new(super::python());
        cmd.args(["-m", "ray.scripts.scripts", "start", "--head", "--block"])
            .args(["--node-ip-address", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--num-cpus", &cpus.to_string()])
            .args(["--include-dashboard", "false", "--disable-usage-stats"])
            .arg("--temp-dir")
            .arg(dir.path().join("t"));
        for flag in [
            "--node-manager-port",
            "--object-manager-port",
            "--dashboard-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--runtime-env-agent-port",
            "--metrics-export-port",
        ] {
            cmd.args([flag, &free_port().to_string()]);
        }
        // Workers bind random ports.
        cmd.args(["--min-worker-port", "0", "--max-worker-port", "0"])
            // Else Ray swaps 127.0.0.1 for the machine's outward address.
            .env("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            .env("RAY_TMPDIR", dir.path())
            .env("TMPDIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0);
        let t = Instant::now();
        let child = cmd.spawn().expect("start the Ray head");
        let mut head = RayHead {
            child,
            dir,
            port,
            started_in: Duration::ZERO,
        };
        let until = t + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = head.child.try_wait() {
                panic!("the Ray head exited ({status}):\n{}", head.log());
            }
            assert!(
                Instant::now() < until,
                "the Ray head did not answer within a minute:\n{}",
                head.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        head.started_in = t.elapsed();
        head
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("head.log")).unwrap_or_default()
    }

    /// The environment a parender that talks to this head gets: Ray's temp
    /// files in the head's folder.
    pub fn temp_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Resident memory (MiB) of the head's processes: its process group.
    pub fn memory_mib(&self) -> u64 {
        let pgid = self.child.id() as i32;
        let mut kib = 0;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.get(2).and_then(|g| g.parse::<i32>().ok()) != Some(pgid) {
                continue;
            }
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            kib += status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0);
        }
        kib / 1024
    }

    fn group_alive(&self) -> bool {
        // SAFETY: signal 0 only checks that the group exists.
        unsafe { libc::killpg(self.child.id() as i32, 0) == 0 }
    }
}

impl Drop for RayHead {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signals the process group this test started, nothing else.
        unsafe {
            libc::killpg(pgid, libc::SIGTERM);
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let _ = self.child.try_wait();
            if !self.group_alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // SAFETY: as above.
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Whether a path is short enough for Ray's Unix sockets below it.
pub fn short_enough(p: &Path) -> bool {
    p.as_os_str().len() < 40
}
