//! A real one-node Slurm cluster on loopback for the tests: `munged`,
//! `slurmctld` and `slurmd` started from the Debian packages with every
//! file (key, sockets, configuration, state, spool, pid files, logs) in one
//! short temp folder, nothing under /etc, /var or /run. Clients (`srun`,
//! `sinfo`, parender) find it through `SLURM_CONF`, the munge socket through
//! `AuthInfo` in that slurm.conf. Dropping it stops the daemons it started,
//! by their process ids (SIGTERM, then SIGKILL).
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The partition the cluster has.
pub const PARTITION: &str = "render";

pub struct Slurm {
    /// Every file of the cluster.
    pub dir: tempfile::TempDir,
    /// Its slurm.conf: set `SLURM_CONF` to this.
    pub conf: PathBuf,
    /// How long it took from the first daemon's start to an idle node.
    pub started_in: Duration,
    /// The daemons, stopped in reverse order.
    daemons: Vec<(&'static str, Child)>,
}

/// A TCP port on loopback that nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Slurm {
    /// Starts the cluster and waits until its node is idle; panics with the
    /// daemons' logs if it cannot.
    pub fn start() -> Slurm {
        for tool in ["munged", "mungekey", "slurmctld", "slurmd", "srun", "sinfo"] {
            assert!(
                which(tool).is_some(),
                "`{tool}` is missing: install slurmctld slurmd slurm-client munge (scripts/setup.sh)"
            );
        }
        // Short: the munge socket's path must fit a sockaddr_un.
        let dir = tempfile::Builder::new()
            .prefix("sl")
            .tempdir_in("/tmp")
            .expect("temp dir");
        // munged wants everyone to be able to reach its socket's folder.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        let d = dir.path().to_path_buf();
        for sub in ["state", "spool"] {
            std::fs::create_dir(d.join(sub)).expect("mkdir");
        }
        let conf = d.join("slurm.conf");
        let mut slurm = Slurm {
            dir,
            conf: conf.clone(),
            started_in: Duration::ZERO,
            daemons: Vec::new(),
        };
        let t = Instant::now();

        let key = d.join("munge.key");
        let out = Command::new("mungekey")
            .arg("-c")
            .arg("-k")
            .arg(&key)
            .output()
            .expect("run mungekey");
        assert!(
            out.status.success(),
            "mungekey: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).expect("chmod key");
        let socket = d.join("munge.sock");
        let mut munged = Command::new("munged");
        munged
            .args(["--foreground", "--force"])
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--pid-file={}", d.join("munged.pid").display()))
            .arg(format!("--log-file={}", d.join("munged.log").display()))
            .arg(format!("--seed-file={}", d.join("munged.seed").display()));
        slurm.spawn("munged", munged);
        slurm.wait_for("munged's socket", Duration::from_secs(10), |_| {
            socket.exists()
        });

        let text = format!(
            "ClusterName=parendertest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld}
SlurmdPort={slurmd}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={socket}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=600
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName={PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP
",
            ctld = free_port(),
            slurmd = free_port(),
            socket = socket.display(),
            d = d.display(),
            cpus = cpus(),
        );
        std::fs::write(&conf, text).expect("write slurm.conf");
        let mut ctld = Command::new("slurmctld");
        ctld.arg("-D").arg("-f").arg(&conf);
        slurm.spawn("slurmctld", ctld);
        let mut slurmd = Command::new("slurmd");
        slurmd
            .arg("-D")
            .arg("-f")
            .arg(&conf)
            .args(["-N", "localhost"]);
        slurm.spawn("slurmd", slurmd);
        slurm.wait_for("an idle node", Duration::from_secs(60), |s| {
            s.sinfo_states().iter().any(|st| st == "idle")
        });
        slurm.started_in = t.elapsed();
        slurm
    }

    /// Starts a daemon in its own process group, its output in the folder.
    fn spawn(&mut self, name: &'static str, mut cmd: Command) {
        let log = |ext: &str| {
            File::create(self.dir.path().join(format!("{name}.{ext}"))).expect("daemon log file")
        };
        cmd.env("SLURM_CONF", &self.conf)
            .stdin(Stdio::null())
            .stdout(log("stdout"))
            .stderr(log("stderr"))
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.daemons.push((name, child));
    }

    /// Polls `ready` until it holds, or panics with the daemons' logs.
    fn wait_for(&mut self, what: &str, within: Duration, ready: impl Fn(&Slurm) -> bool) {
        let until = Instant::now() + within;
        while !ready(self) {
            let exited = self
                .daemons
                .iter_mut()
                .find_map(|(name, child)| Some((*name, child.try_wait().ok()??)));
            if let Some((name, status)) = exited {
                panic!(
                    "{name} exited ({status}) while waiting for {what}:\n{}",
                    self.logs()
                );
            }
            if Instant::now() > until {
                panic!("no {what} within {within:?}:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemons' logs, for a failure message.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for name in [
            "munged.stderr",
            "slurmctld.log",
            "slurmctld.stderr",
            "slurmd.log",
            "slurmd.stderr",
        ] {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            all.push_str(&format!("--- {name}\n"));
            all.push_str(&lines[lines.len().saturating_sub(30)..].join("\n"));
            all.push('\n');
        }
        all
    }

    /// A Slurm client command (or parender) pointed at this cluster.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// The states `sinfo` shows for the node (empty if it does not answer).
    pub fn sinfo_states(&self) -> Vec<String> {
        self.lines("sinfo", &["-h", "-o", "%t"])
    }

    /// The names of the jobs pending or running now.
    pub fn queued_names(&self) -> Vec<String> {
        self.lines("squeue", &["-h", "-o", "%j"])
    }

    /// `squeue`'s view of the jobs pending, running or completing: id, name,
    /// state, for failure messages.
    pub fn queue(&self) -> Vec<String> {
        self.lines("squeue", &["-h", "-o", "%i %j %T"])
    }

    /// The names of every job the controller still remembers, finished
    /// ones included (`MinJobAge` keeps them for ten minutes).
    pub fn all_job_names(&self) -> Vec<String> {
        self.lines("squeue", &["-h", "-t", "all", "-o", "%j"])
    }

    fn lines(&self, program: &str, args: &[&str]) -> Vec<String> {
        match self.command(program).args(args).output() {
            Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // Reverse order: the node, the controller, then munge.
        for (_, child) in self.daemons.iter_mut().rev() {
            // Our own child, not yet reaped: its pid is still its own.
            if let Ok(None) = child.try_wait() {
                // SAFETY: kill only sends a signal, to our own unreaped child.
                unsafe {
                    libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
                }
                let until = Instant::now() + Duration::from_secs(5);
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
