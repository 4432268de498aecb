//! A headless Chromium driven over the DevTools protocol, for tests that
//! check pages in a real browser (load them, run JavaScript, press keys,
//! take screenshots).
//!
//! The protocol runs over `--remote-debugging-pipe`: chromium reads commands
//! from its fd 3 and writes replies and events to its fd 4, each message a
//! JSON text ended by a NUL byte. A reader thread parses the messages and
//! forwards them over a channel; a command waits for the reply with its id
//! and keeps the events it sees meanwhile for [`Browser::open`].
//!
//! Everything chromium writes (profile, home, temp files, its log) stays in
//! the test's temp folder, and dropping the [`Browser`] kills its process
//! group and nothing else.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, PipeReader, PipeWriter, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long chromium may take to start, to load a page or to answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// How long dropping a [`Browser`] waits for `Browser.close`.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Events kept while waiting for replies; older ones are dropped.
const MAX_EVENTS: usize = 1000;

pub struct Browser {
    child: Child,
    /// Chromium's fd 3: where the commands go.
    commands: PipeWriter,
    /// Messages from chromium's fd 4, parsed by the reader thread.
    messages: Receiver<Value>,
    /// Events that arrived while waiting for a reply, oldest first.
    events: VecDeque<Value>,
    next_id: u64,
    /// The page [`Browser::open`] made last.
    page: Option<Page>,
    log: PathBuf,
}

/// A page target and the flat session attached to it.
struct Page {
    target: String,
    session: String,
}

impl Browser {
    /// Starts chromium; `dir` is the test's temp folder (profile, log,
    /// screenshots live there). Returns Err with the log tail if it does
    /// not answer within 30 s.
    pub fn start(dir: &Path) -> Result<Browser, String> {
        let binary = binary().ok_or("no chromium binary (/usr/bin/chromium or on PATH)")?;
        let root = dir.join("chromium");
        let log = root.join("chromium.log");
        let (to_read, commands) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (messages_in, to_write) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
        let mut command = chromium_command(&binary, &root, &log)?;
        let (fd3, fd4) = (to_read.as_raw_fd(), to_write.as_raw_fd());
        // SAFETY: the hook only calls fcntl and dup2, which are
        // async-signal-safe, and allocates nothing.
        unsafe { command.pre_exec(move || onto_fds_3_and_4(fd3, fd4)) };
        let child = command
            .spawn()
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        // Only chromium may hold its ends, so that its exit ends the reader.
        drop((to_read, to_write));
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || forward_messages(messages_in, sender));
        let mut browser = Browser {
            child,
            commands,
            messages,
            events: VecDeque::new(),
            next_id: 1,
            page: None,
            log,
        };
        match browser.command(None, "Browser.getVersion", json!({})) {
            Ok(_) => Ok(browser),
            Err(e) => Err(format!(
                "chromium did not come up: {e}\n{}",
                browser.log_tail()
            )),
        }
    }

    /// Whether a chromium binary exists (`chromium` on PATH or
    /// /usr/bin/chromium).
    pub fn available() -> bool {
        binary().is_some()
    }

    /// Opens `url` in a fresh page target (closing the one opened before)
    /// and waits up to 30 s for its load event.
    pub fn open(&mut self, url: &str) -> Result<(), String> {
        if let Some(old) = self.page.take() {
            self.command(
                None,
                "Target.closeTarget",
                json!({ "targetId": old.target }),
            )?;
        }
        let created = self.command(None, "Target.createTarget", json!({ "url": "about:blank" }))?;
        let target = string_field(&created, "targetId")?;
        let attach = json!({ "targetId": target, "flatten": true });
        let attached = self.command(None, "Target.attachToTarget", attach)?;
        let session = string_field(&attached, "sessionId")?;
        self.page = Some(Page {
            target,
            session: session.clone(),
        });
        self.on_page("Page.enable", json!({}))?;
        self.on_page("Runtime.enable", json!({}))?;
        self.events.retain(|e| e["sessionId"] != session.as_str());
        let navigated = self.on_page("Page.navigate", json!({ "url": url }))?;
        if let Some(error) = navigated["errorText"].as_str() {
            return Err(format!("opening {url}: {error}"));
        }
        let loaded =
            |m: &Value| m["method"] == "Page.loadEventFired" && m["sessionId"] == session.as_str();
        self.next_message(Instant::now() + TIMEOUT, &format!("{url} to load"), loaded)?;
        Ok(())
    }

    /// The value of the JavaScript expression `js` in the page (promises
    /// awaited); a thrown exception becomes Err with its description.
    pub fn eval(&mut self, js: &str) -> Result<Value, String> {
        let params = json!({ "expression": js, "returnByValue": true, "awaitPromise": true });
        let mut reply = self.on_page("Runtime.evaluate", params)?;
        if let Some(details) = reply.get("exceptionDetails") {
            let description = details["exception"]["description"].as_str();
            let text = description
                .or(details["text"].as_str())
                .unwrap_or("exception");
            return Err(format!("`{js}` threw: {text}"));
        }
        Ok(reply["result"]
            .get_mut("value")
            .map(Value::take)
            .unwrap_or_default())
    }

    /// Evaluates `js` every 50 ms until its value is truthy and returns it;
    /// Err names the expression and its last value after `timeout`, or the
    /// exception if it throws.
    pub fn wait_for(&mut self, js: &str, timeout: Duration) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(js)?;
            if truthy(&value) {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(format!("`{js}` still {value} after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Writes a PNG screenshot of the page to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), String> {
        let shot = self.on_page("Page.captureScreenshot", json!({ "format": "png" }))?;
        let png = decode_base64(shot["data"].as_str().ok_or("screenshot without data")?)?;
        std::fs::write(path, png).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Presses and releases `key` on the page: a character such as " " or
    /// "n", or a named key such as "ArrowRight" or "Escape".
    pub fn press(&mut self, key: &str) -> Result<(), String> {
        let (code, key_code) = key_codes(key);
        for kind in ["keyDown", "keyUp"] {
            let mut event = json!({
                "type": kind, "key": key, "code": code, "windowsVirtualKeyCode": key_code,
            });
            if kind == "keyDown" && key.chars().count() == 1 {
                event["text"] = json!(key);
            }
            self.on_page("Input.dispatchKeyEvent", event)?;
        }
        Ok(())
    }

    /// Runs `method` on the page [`Browser::open`] made.
    fn on_page(&mut self, method: &str, params: Value) -> Result<Value, String> {
        let page = self
            .page
            .as_ref()
            .ok_or_else(|| format!("{method}: no page open"))?;
        let session = page.session.clone();
        self.command(Some(&session), method, params)
    }

    /// Sends a command (to a page's `session`, or to the browser) and waits
    /// up to 30 s for its result.
    fn command(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.send(session, method, params)?;
        self.result(id, method, Instant::now() + TIMEOUT)
    }

    /// Writes a command to chromium; returns its id.
    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Result<u64, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands.write_all(&bytes).map_err(|e| {
            format!(
                "sending {method} to chromium: {e} (see {})",
                self.log.display()
            )
        })?;
        Ok(id)
    }

    /// The result of command `id`, or Err with the protocol's error.
    fn result(&mut self, id: u64, method: &str, deadline: Instant) -> Result<Value, String> {
        let mut reply = self.next_message(deadline, &format!("the reply to {method}"), |m| {
            m["id"] == id
        })?;
        match reply.get("error") {
            Some(error) => Err(format!("{method} failed: {error}")),
            None => Ok(reply.get_mut("result").map(Value::take).unwrap_or_default()),
        }
    }

    /// The first kept event or new message that `wanted` accepts, waiting
    /// until `deadline` for `what`; the events passed over are kept.
    fn next_message(
        &mut self,
        deadline: Instant,
        what: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        if let Some(kept) = self
            .events
            .iter()
            .position(&wanted)
            .and_then(|i| self.events.remove(i))
        {
            return Ok(kept);
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = match self.messages.recv_timeout(left) {
                Ok(message) => message,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("timed out waiting for {what}"));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let log = self.log.display();
                    return Err(format!(
                        "chromium exited while waiting for {what} (see {log})"
                    ));
                }
            };
            if wanted(&message) {
                return Ok(message);
            }
            self.keep_event(message);
        }
    }

    /// Keeps `message` for [`Browser::next_message`] if it is an event
    /// (replies to commands no one waits for any more are dropped).
    fn keep_event(&mut self, message: Value) {
        if message.get("method").is_some() {
            if self.events.len() == MAX_EVENTS {
                self.events.pop_front();
            }
            self.events.push_back(message);
        }
    }

    /// The last lines of chromium's log, for error messages.
    fn log_tail(&self) -> String {
        let bytes = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("--- end of {}\n{tail}", self.log.display())
    }
}

impl Drop for Browser {
    /// Asks chromium to close, then kills its process group (it leads it,
    /// and is not reaped yet, so the id is still its) and reaps it.
    fn drop(&mut self) {
        if let Ok(id) = self.send(None, "Browser.close", json!({})) {
            let _ = self.result(id, "Browser.close", Instant::now() + CLOSE_TIMEOUT);
        }
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: plain syscall; the group is the one chromium was spawned in.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}

/// `chromium` on PATH, else /usr/bin/chromium.
fn binary() -> Option<PathBuf> {
    let fixed = Path::new("/usr/bin/chromium");
    which::which("chromium")
        .ok()
        .or_else(|| fixed.exists().then(|| fixed.to_path_buf()))
}

/// The headless chromium command, in its own process group, with its
/// profile, home and temp files under `root` and its stdout and stderr in
/// `log`.
fn chromium_command(binary: &Path, root: &Path, log: &Path) -> Result<Command, String> {
    let (profile, home, tmp) = (root.join("profile"), root.join("home"), root.join("tmp"));
    for d in [&profile, &home, &tmp] {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let stdout = File::create(log).map_err(|e| format!("creating {}: {e}", log.display()))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = Command::new(binary);
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            // Shared memory in TMPDIR (below), not in /dev/shm.
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    Ok(command)
}

/// In the forked child, before exec: puts `commands` on fd 3 and `replies`
/// on fd 4 (without close-on-exec, so chromium inherits them). Both are
/// first copied above 4 so that neither dup2 overwrites the other's source.
fn onto_fds_3_and_4(commands: RawFd, replies: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl and dup2 on descriptors the child owns.
    let high = [commands, replies].map(|fd| unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10) });
    for (source, target) in high.into_iter().zip([3, 4]) {
        if source < 0 || unsafe { libc::dup2(source, target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The reader thread: forwards each NUL-terminated JSON message from
/// chromium until it closes the pipe or the [`Browser`] is gone.
fn forward_messages(from_chromium: PipeReader, to: Sender<Value>) {
    let mut reader = BufReader::new(from_chromium);
    let mut buf = Vec::new();
    while reader.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
        let text = buf.strip_suffix(&[0]).unwrap_or(&buf);
        if let Ok(message) = serde_json::from_slice(text)
            && to.send(message).is_err()
        {
            return;
        }
        buf.clear();
    }
}

/// JavaScript's truthiness of a value returned by [`Browser::eval`].
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A string field of a protocol result.
fn string_field(result: &Value, name: &str) -> Result<String, String> {
    result[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no {name} in {result}"))
}

/// The DOM `code` and Windows virtual key code of a key: a letter, digit or
/// space, or a named key (whose code is its name).
fn key_codes(key: &str) -> (String, u32) {
    let mut chars = key.chars();
    let named = |vk| (key.to_string(), vk);
    match (chars.next(), chars.next()) {
        (Some(' '), None) => ("Space".to_string(), 32),
        (Some(c), None) if c.is_ascii_alphabetic() => {
            let upper = c.to_ascii_uppercase();
            (format!("Key{upper}"), upper as u32)
        }
        (Some(c), None) if c.is_ascii_digit() => (format!("Digit{c}"), c as u32),
        _ => match key {
            "Enter" => named(13),
            "Escape" => named(27),
            "ArrowLeft" => named(37),
            "ArrowUp" => named(38),
            "ArrowRight" => named(39),
            "ArrowDown" => named(40),
            "Home" => named(36),
            "End" => named(35),
            _ => named(0),
        },
    }
}

/// Standard base64 (padding optional) to bytes.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|&c| c != b'=') {
        let sextet = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid base64 byte {c:#04x}")),
        };
        acc = (acc << 6 | u32::from(sextet)) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    Ok(bytes)
}
