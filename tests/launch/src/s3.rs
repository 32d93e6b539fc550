//! An S3-compatible server on loopback for one test: `moto_server` (PyPI `moto[server]`, which
//! the test command installs) on a free port, answering before it is returned, killed on drop.
//! Its buckets live in memory; any access key is accepted.

use std::fs::File;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{tail, LaunchError};
use crate::process::{free_port, scratch_path, ChildGuard};

/// A running S3-compatible server.
#[derive(Debug)]
pub struct S3Server {
    child: ChildGuard,
    port: u16,
    dir: PathBuf,
}

impl S3Server {
    /// `moto_server` on a free port, accepting connections.
    pub fn start() -> Result<S3Server, LaunchError> {
        let port = free_port();
        let dir = scratch_path("sluice-s3");
        std::fs::create_dir_all(&dir)
            .map_err(|e| LaunchError::io(format!("create {}", dir.display()), e))?;
        let log = dir.join("moto.log");
        let log_file = File::create(&log)
            .map_err(|e| LaunchError::io(format!("create {}", log.display()), e))?;
        let err = log_file.try_clone().map_err(|e| LaunchError::io("dup log file", e))?;
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err)
            .spawn()
            .map_err(|source| LaunchError::Spawn {
                program: "moto_server (pip install 'moto[server]')".into(),
                source,
            })?;
        let mut s3 = S3Server { child: ChildGuard::new("moto_server", child), port, dir };
        let timeout = Duration::from_secs(30);
        let deadline = Instant::now() + timeout;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = s3.child.try_wait() {
                return Err(LaunchError::Exited {
                    name: "moto_server".into(),
                    status,
                    tail: tail(&log, 20),
                    log,
                });
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Timeout {
                    name: "moto_server".into(),
                    what: format!("not accepting connections on port {}", s3.port),
                    timeout,
                    tail: tail(&log, 20),
                    log,
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(s3)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create bucket `name` (an S3 `PUT /NAME`).
    pub fn create_bucket(&self, name: &str) -> Result<(), LaunchError> {
        let status = Command::new("curl")
            .args(["-sf", "-X", "PUT", "--max-time", "10"])
            .arg(format!("{}/{name}", self.endpoint()))
            .stdout(Stdio::null())
            .status()
            .map_err(|source| LaunchError::Spawn { program: "curl".into(), source })?;
        if status.success() {
            Ok(())
        } else {
            Err(LaunchError::io(
                format!("create bucket {name}"),
                std::io::Error::other("curl failed"),
            ))
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.child.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
