//! A real etcd server per test (Debian `etcd-server`), data on /dev/shm, and `etcdctl` reads.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::process::ChildGuard;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A single-member etcd on loopback; killed and its data removed on drop.
pub struct Etcd {
    child: ChildGuard,
    port: u16,
    dir: PathBuf,
}

impl Etcd {
    pub fn start() -> Etcd {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let (client, peer) = (free_port(), free_port());
        let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
        let dir = PathBuf::from(format!(
            "{base}/sluice-tests-etcd-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "t", "--data-dir"])
            .arg(&dir)
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args([
                "--initial-cluster",
                &format!("t={peer_url}"),
                "--log-level",
                "error",
                "--logger",
                "zap",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd (Debian package etcd-server) must be installed");
        let etcd = Etcd { child: ChildGuard::new("etcd", child), port: client, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while etcd.ctl(&["endpoint", "health"]).is_err() {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(200));
        }
        etcd
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Run `etcdctl` (API v3) against this server; stdout on success.
    pub fn ctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint(), "--command-timeout=3s"])
            .args(args)
            .output()
            .map_err(|e| format!("etcdctl (Debian package etcd-client): {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Keys under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.ctl(&["get", "--prefix", "--keys-only", prefix]).unwrap_or_default();
        let mut keys: Vec<String> =
            out.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
        keys.sort();
        keys
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.child.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
