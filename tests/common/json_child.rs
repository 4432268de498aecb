//! A running `parender` (usually `watch`) whose `--message-format json`
//! lines arrive on a channel; killed when dropped, so a test that fails half
//! way leaves no watcher (and no warm workers) running.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use serde_json::Value;

pub struct JsonChild {
    pub child: Child,
    pub events: mpsc::Receiver<Value>,
}

impl JsonChild {
    /// Starts `cmd` with its stdout read line by line as JSON (other lines
    /// are skipped).
    pub fn spawn(mut cmd: Command) -> JsonChild {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("parender starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        JsonChild { child, events }
    }
}

impl Drop for JsonChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
