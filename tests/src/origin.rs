//! A `sluice-origin` process under test: started on free ports, stopped on drop.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::http::{self, HttpResponse};
use crate::metrics::Metrics;
use crate::paths;
use crate::process::ChildGuard;

/// How long the origin may take to print its `listening` line.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A per-test scratch directory under `<target>/sluice-tests/`.
#[derive(Debug, Clone)]
pub struct TestDir {
    path: PathBuf,
}

impl TestDir {
    /// A fresh directory named after the current test (thread name), the process id and a
    /// counter.
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let test = thread::current().name().unwrap_or("test").replace("::", "-");
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = paths::target_dir()
            .join("sluice-tests")
            .join(format!("{test}-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create test directory");
        TestDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A running `sluice-origin`.
#[derive(Debug)]
pub struct Origin {
    child: ChildGuard,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    /// The QUIC relay's UDP address, when the node listens for relay peers.
    pub relay: Option<SocketAddr>,
    log_path: PathBuf,
    dir: TestDir,
}

impl Origin {
    /// Start with port-0 listeners on 127.0.0.1 plus `args`; waits for the `listening` line.
    pub fn start(args: &[&str]) -> Origin {
        Self::try_start(args).unwrap_or_else(|e| panic!("starting sluice-origin: {e}"))
    }

    pub fn try_start(args: &[&str]) -> Result<Origin, String> {
        Self::try_start_bin("sluice-origin", args)
    }

    /// Start a `sluice-edge` (same listeners and `listening` line as an origin) with `args`.
    pub fn start_edge(args: &[&str]) -> Origin {
        Self::try_start_bin("sluice-edge", args)
            .unwrap_or_else(|e| panic!("starting sluice-edge: {e}"))
    }

    /// Start the node binary `name` with port-0 listeners on 127.0.0.1 plus `args`.
    pub fn try_start_bin(name: &str, args: &[&str]) -> Result<Origin, String> {
        let bin = paths::binary(name);
        let dir = TestDir::new(name.trim_start_matches("sluice-"));
        let log_path = dir.path().join(format!("{name}.log"));
        let log = File::create(&log_path).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&bin);
        cmd.args(["--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().map_err(|e| format!("spawn {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut guard = ChildGuard::new(name, child);
        eprintln!("{name} pid {} args {:?}, log: {}", guard.pid(), args, log_path.display());

        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let mut sent = false;
            // Keep draining stdout for the life of the process so it never blocks on a pipe.
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if !sent {
                    let _ = tx.send(line.trim_end().to_string());
                    sent = true;
                }
                line.clear();
            }
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                let status = guard.try_wait();
                guard.stop();
                return Err(format!(
                    "no `listening` line within {START_TIMEOUT:?} (exit status {status:?}); log {}:\n{}",
                    log_path.display(),
                    tail(&log_path, 40)
                ));
            }
        };
        let (rtmp, http) = parse_listening(&line).ok_or_else(|| {
            format!("unexpected first stdout line {line:?}; log:\n{}", tail(&log_path, 40))
        })?;
        let relay = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("relay="))
            .and_then(|v| v.parse().ok());
        Ok(Origin { child: guard, rtmp, http, relay, log_path, dir })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The scratch directory of this test.
    pub fn dir(&self) -> &TestDir {
        &self.dir
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn rtmp_url(&self, app: &str, stream: &str) -> String {
        format!("rtmp://{}/{app}/{stream}", self.rtmp)
    }

    pub fn flv_url(&self, app: &str, stream: &str) -> String {
        format!("http://{}/{app}/{stream}.flv", self.http)
    }

    /// GET `path` from the HTTP listener (panics on I/O errors).
    pub fn get(&self, path: &str) -> HttpResponse {
        http::get(self.http, path, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// `/metrics`, parsed.
    pub fn metrics(&self) -> Metrics {
        let resp = self.get("/metrics");
        assert_eq!(resp.status, 200, "/metrics status");
        Metrics::parse(&resp.text())
            .unwrap_or_else(|e| panic!("parsing /metrics: {e}\n{}", resp.text()))
    }

    /// `/api/streams`, parsed.
    pub fn streams(&self) -> serde_json::Value {
        let resp = self.get("/api/streams");
        assert_eq!(resp.status, 200, "/api/streams status");
        serde_json::from_slice(&resp.body)
            .unwrap_or_else(|e| panic!("/api/streams is not JSON ({e}): {}", resp.text()))
    }

    /// The `/api/streams` entry for `app/name`, if listed.
    pub fn stream_info(&self, app: &str, name: &str) -> Option<serde_json::Value> {
        let all = self.streams();
        all["streams"].as_array()?.iter().find(|s| s["app"] == app && s["name"] == name).cloned()
    }

    /// Resident memory in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        crate::process::rss_kib(self.pid())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().is_none()
    }

    /// SIGTERM and wait (SIGKILL after 5 s); returns whether it exited by itself in time.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.child.signal(libc::SIGTERM);
        self.child.wait_timeout(Duration::from_secs(5))
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let crashed = self.child.try_wait();
        if thread::panicking() || crashed.as_ref().is_some_and(|s| !s.success()) {
            eprintln!(
                "---- sluice-origin log ({}), exit status {:?}, last lines:\n{}",
                self.log_path.display(),
                crashed,
                tail(&self.log_path, 60)
            );
        }
        self.child.stop();
    }
}

/// Parse `listening rtmp=127.0.0.1:PORT http=127.0.0.1:PORT`.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let mut words = line.split_whitespace();
    if words.next()? != "listening" {
        return None;
    }
    let mut rtmp = None;
    let mut http = None;
    for word in words {
        if let Some(v) = word.strip_prefix("rtmp=") {
            rtmp = v.parse().ok();
        } else if let Some(v) = word.strip_prefix("http=") {
            http = v.parse().ok();
        }
    }
    Some((rtmp?, http?))
}

/// The last `n` lines of a text file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_line() {
        let (r, h) = parse_listening("listening rtmp=127.0.0.1:1935 http=127.0.0.1:8080").unwrap();
        assert_eq!(r.port(), 1935);
        assert_eq!(h.port(), 8080);
        assert!(parse_listening("listening rtmp=127.0.0.1:1935").is_none());
        assert!(parse_listening("hello").is_none());
    }
}
