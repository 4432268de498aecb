//! A real WebDAV server for the remote-cache tests: Debian's Apache with
//! mod_dav, its config, data and logs in a temp folder, on a free loopback
//! port, stopped by its process id. (nginx's WebDAV cannot serve the
//! recursive listing object_store's HTTP store uses.)
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct WebDav {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

const APACHE: &str = "/usr/sbin/apache2";
const MODULES: &str = "/usr/lib/apache2/modules";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl WebDav {
    /// Starts Apache; panics with its error log when it does not come up.
    pub fn start() -> WebDav {
        assert!(
            Path::new(APACHE).exists(),
            "{APACHE} is missing: run scripts/setup.sh (apache2-bin)"
        );
        let dir = tempfile::Builder::new()
            .prefix("prdav-")
            .tempdir()
            .expect("temp dir");
        let mut dav = WebDav {
            dir,
            port: free_port(),
            child: None,
        };
        dav.configure();
        dav.launch();
        dav
    }

    /// Where the server keeps the files (`/` of the URL).
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("htdocs")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn configure(&self) {
        let t = self.dir.path();
        for d in ["htdocs", "lock"] {
            std::fs::create_dir_all(t.join(d)).expect("mkdir");
        }
        // The www-data children must get through the 0700 temp folder.
        run("chmod", &["755", &t.display().to_string()]);
        run(
            "chown",
            &[
                "-R",
                "www-data:www-data",
                &t.join("htdocs").display().to_string(),
                &t.join("lock").display().to_string(),
            ],
        );
        let t = t.display();
        let conf = format!(
            r#"ServerRoot "{t}"
PidFile "{t}/httpd.pid"
ErrorLog "{t}/error.log"
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
User www-data
Group www-data
LoadModule mpm_event_module {MODULES}/mod_mpm_event.so
LoadModule authz_core_module {MODULES}/mod_authz_core.so
LoadModule dav_module {MODULES}/mod_dav.so
LoadModule dav_fs_module {MODULES}/mod_dav_fs.so
DocumentRoot "{t}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
DavLockDB "{t}/lock/DavLock"
DavDepthInfinity On
<Directory "{t}/htdocs">
    AllowOverride None
    Require all granted
    Dav On
</Directory>
"#,
            port = self.port
        );
        std::fs::write(self.dir.path().join("httpd.conf"), conf).expect("write conf");
    }

    fn launch(&mut self) {
        let conf = self.dir.path().join("httpd.conf");
        let log = std::fs::File::create(self.dir.path().join("stderr.log")).expect("log");
        let child = Command::new(APACHE)
            .arg("-f")
            .arg(&conf)
            .arg("-DFOREGROUND")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start apache2");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "apache did not come up: {}",
                std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (by its pid), keeping its files.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port with the same files.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for WebDav {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(prog: &str, args: &[&str]) {
    let st = Command::new(prog).args(args).status().expect(prog);
    assert!(st.success(), "{prog} {args:?} failed");
}
