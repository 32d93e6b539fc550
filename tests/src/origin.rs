//! A `sluice-origin` process under test: started on free ports by the shared launcher
//! (`sluice-launch`), stopped on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use sluice_launch::node::Listening;
use sluice_launch::{LaunchError, Node, NodeSpec};

use crate::http::{self, HttpResponse};
use crate::metrics::Metrics;
use crate::paths;

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

/// A running `sluice-origin` (or `sluice-edge`), started by the shared launcher.
#[derive(Debug)]
pub struct Origin {
    node: Node,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    /// The QUIC relay's UDP address, when the node listens for relay peers.
    pub relay: Option<SocketAddr>,
    /// The HTTPS listener's address, with `--https-listen`.
    pub https: Option<SocketAddr>,
    /// The RTMPS listener's address, with `--rtmps-listen`.
    pub rtmps: Option<SocketAddr>,
    log_path: PathBuf,
    dir: TestDir,
}

impl Origin {
    /// Start with port-0 listeners on 127.0.0.1 plus `args`; waits for the `listening` line.
    pub fn start(args: &[&str]) -> Origin {
        Self::try_start(args).unwrap_or_else(|e| panic!("starting sluice-origin: {e}"))
    }

    pub fn try_start(args: &[&str]) -> Result<Origin, LaunchError> {
        Self::try_start_bin("sluice-origin", args)
    }

    /// Start a `sluice-edge` (same listeners and `listening` line as an origin) with `args`.
    pub fn start_edge(args: &[&str]) -> Origin {
        Self::try_start_bin("sluice-edge", args)
            .unwrap_or_else(|e| panic!("starting sluice-edge: {e}"))
    }

    /// Start the node binary `name` with port-0 listeners on 127.0.0.1 plus `args`; its log
    /// (stderr) goes to `NAME.log` and its stdout to `NAME.out` in a fresh [`TestDir`].
    pub fn try_start_bin(name: &str, args: &[&str]) -> Result<Origin, LaunchError> {
        Self::launch(name, "127.0.0.1", None, args, &[])
    }

    /// Start an origin with `args` and the environment variables `env` (an S3 store's `AWS_*`).
    pub fn start_with_env(args: &[&str], env: &[(&str, String)]) -> Origin {
        Self::launch("sluice-origin", "127.0.0.1", None, args, env)
            .unwrap_or_else(|e| panic!("starting sluice-origin: {e}"))
    }

    /// Start the node binary `name` in the namespace of `host` (a [`crate::netns::Net`] host),
    /// listening on its address, plus `args`.
    pub fn try_start_on(
        host: &crate::netns::Host,
        name: &str,
        args: &[&str],
    ) -> Result<Origin, LaunchError> {
        Self::launch(name, &host.addr.to_string(), Some(&host.netns), args, &[])
    }

    fn launch(
        name: &str,
        ip: &str,
        netns: Option<&str>,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Result<Origin, LaunchError> {
        let dir = TestDir::new(name.trim_start_matches("sluice-"));
        let listen = format!("{ip}:0");
        let mut spec = NodeSpec::new(name, paths::binary(name), dir.path())
            .args(["--rtmp-listen", &listen, "--http-listen", &listen])
            .args(args)
            .env("RUST_LOG", &std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env("RUST_BACKTRACE", "1");
        for (key, value) in env {
            spec = spec.env(key, value);
        }
        spec.start_timeout = START_TIMEOUT;
        spec.netns = netns.map(str::to_string);
        let log_path = spec.log_path();
        let node = Node::start_with(&spec, |pid| {
            eprintln!("{name} pid {pid} args {args:?}, log: {}", log_path.display());
        })?;
        Ok(Origin {
            rtmp: node.rtmp,
            http: node.http,
            relay: node.relay,
            https: node.https,
            rtmps: node.rtmps,
            node,
            log_path,
            dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.node.pid()
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
        self.node.child().try_wait().is_none()
    }

    /// SIGTERM, without waiting.
    pub fn signal_term(&mut self) {
        self.node.child().signal(sluice_launch::Signal::TERM);
    }

    /// SIGTERM and wait (SIGKILL after 5 s); returns whether it exited by itself in time.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.node.child().signal(sluice_launch::Signal::TERM);
        self.node.child().wait_timeout(Duration::from_secs(5))
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        let crashed = self.node.child().try_wait();
        if thread::panicking() || crashed.as_ref().is_some_and(|s| !s.success()) {
            eprintln!(
                "---- sluice-origin log ({}), exit status {:?}, last lines:\n{}",
                self.log_path.display(),
                crashed,
                tail(&self.log_path, 60)
            );
        }
        self.node.child().stop();
    }
}

/// Parse `listening rtmp=127.0.0.1:PORT http=127.0.0.1:PORT`.
pub fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    Listening::parse(line).map(|l| (l.rtmp, l.http))
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
