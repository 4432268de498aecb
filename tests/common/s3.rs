//! A signature-checking S3 server for the remote-cache tests: the `s3s-fs`
//! crate served in-process on a free loopback port, its files in a temp
//! folder. Requests signed with another secret get 403.
use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

pub const ACCESS_KEY: &str = "parender-test";
pub const SECRET_KEY: &str = "parender-test-secret";
pub const BUCKET: &str = "team";

pub struct S3 {
    dir: tempfile::TempDir,
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl S3 {
    pub fn start() -> S3 {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join(BUCKET)).expect("bucket");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let root = dir.path().to_path_buf();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
                let mut b = S3ServiceBuilder::new(fs);
                b.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
                let svc = b.build();
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((sock, _)) = accepted else { continue };
                            let svc = svc.clone();
                            tokio::spawn(async move {
                                let _ = ConnBuilder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(sock), svc)
                                    .await;
                            });
                        }
                    }
                }
            });
            rt.shutdown_background();
        });
        S3 {
            dir,
            port,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// The bucket's folder on disk.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join(BUCKET)
    }

    /// The environment a parender needs to reach it with `secret`.
    pub fn env(&self, secret: &str) -> Vec<(&'static str, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", secret.into()),
        ]
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
