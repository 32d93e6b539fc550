//! Starting `sluice-control-plane` against a [`TestCluster`]'s etcd, for the e2e tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use sluice_launch::process::ChildGuard;

use crate::cluster::TestCluster;
use crate::process::wait_for;
use crate::{http, paths, secs};

/// How long a replica may take to print its `listening` line.
const LISTENING_TIMEOUT_S: u64 = 15;

/// A free loopback port (bound and released). Only for addresses nothing should listen on: a
/// replica binds port 0 and says which ports it got (another process may take a released port
/// before the replica binds it).
pub fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], sluice_launch::process::free_port()))
}

/// A running control plane replica; killed on drop.
pub struct ControlPlaneProcess {
    guard: ChildGuard,
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    /// Its stderr (the log).
    pub log: PathBuf,
}

impl ControlPlaneProcess {
    /// The log so far (for assertion messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://ADDR` of the gRPC port (what clients and `sluicectl --endpoint` take).
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Send `signal` (e.g. `Signal::TERM`) without waiting.
    pub fn signal(&self, signal: sluice_launch::process::Signal) {
        self.guard.signal(signal);
    }

    /// Wait up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        self.guard.wait_timeout(timeout)
    }

    /// Kill the process now (SIGKILL), as a crash would.
    pub fn kill(self) {
        drop(self.guard);
    }
}

/// Start a replica on free ports with `extra` flags, and wait until `/readyz` answers 200.
pub fn start(c: &TestCluster, name: &str, extra: &[&str]) -> ControlPlaneProcess {
    start_env(c, name, extra, &[])
}

/// [`start`] with `env` set for the process (the caller's `SLUICE_*` variables never reach it).
pub fn start_env(
    c: &TestCluster,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ControlPlaneProcess {
    let cp = spawn_env(c, name, extra, env);
    let ready = wait_for(secs(15), || {
        let r = http::get(cp.http, "/readyz", secs(2)).ok()?;
        (r.status == 200).then_some(())
    });
    assert!(ready.is_some(), "control plane not ready; log:\n{}", cp.log_text());
    cp
}

/// Start a replica on free ports with `extra` flags without waiting for it (a replica serving
/// TLS cannot be asked over plain HTTP whether it is ready).
pub fn spawn(c: &TestCluster, name: &str, extra: &[&str]) -> ControlPlaneProcess {
    spawn_env(c, name, extra, &[])
}

/// [`spawn`] with `env` set for the process (the caller's `SLUICE_*` variables never reach it).
pub fn spawn_env(
    c: &TestCluster,
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ControlPlaneProcess {
    let log = std::env::temp_dir().join(format!(
        "sluice-control-plane-{}-{name}-{}.log",
        c.prefix.trim_matches('/'),
        std::process::id()
    ));
    let file = std::fs::File::create(&log).expect("log file");
    let mut command = Command::new(paths::binary("sluice-control-plane"));
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("SLUICE_") {
            command.env_remove(var);
        }
    }
    let child = command
        .envs(env.iter().copied())
        .args(c.etcd_args("cp"))
        .args(["--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .expect("spawn sluice-control-plane");
    let guard = ChildGuard::new("sluice-control-plane", child);
    let listening = wait_for(secs(LISTENING_TIMEOUT_S), || {
        std::fs::read_to_string(&log).ok()?.lines().find_map(parse_listening)
    });
    let Some((grpc, http_addr)) = listening else {
        panic!(
            "sluice-control-plane printed no listening line; log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    };
    ControlPlaneProcess { guard, grpc, http: http_addr, log }
}

/// The gRPC and HTTP addresses of a replica's `listening grpc=ADDR http=ADDR …` log line, as
/// text or as JSON (`--log-format json`: `{"fields":{"message":"listening","grpc":ADDR,…}}`).
fn parse_listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    if line.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = value.get("fields")?;
        if fields.get("message")?.as_str()? != "listening" {
            return None;
        }
        let field = |name: &str| fields.get(name)?.as_str()?.parse::<SocketAddr>().ok();
        return Some((field("grpc")?, field("http")?));
    }
    let rest = &line[line.find(" listening ")? + " listening ".len()..];
    let field = |name: &str| {
        rest.split_whitespace().find_map(|kv| kv.strip_prefix(name)?.parse::<SocketAddr>().ok())
    };
    Some((field("grpc=")?, field("http=")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_listening_line() {
        let line = "2026-12-06T22:34:01Z  INFO sluice_control_plane::serve: listening \
                    grpc=127.0.0.1:43637 http=127.0.0.1:42489 tls=false token=true";
        let (g, h) = super::parse_listening(line).unwrap();
        assert_eq!((g.port(), h.port()), (43637, 42489));
        assert!(super::parse_listening("INFO x: listening grpc=127.0.0.1:1").is_none());
        assert!(super::parse_listening("INFO x: stopping").is_none());
        let json = r#"{"timestamp":"2026-12-06T22:34:01Z","level":"INFO","fields":{"message":"listening","grpc":"127.0.0.1:43637","http":"127.0.0.1:42489","tls":false},"target":"sluice_control_plane::serve"}"#;
        let (g, h) = super::parse_listening(json).unwrap();
        assert_eq!((g.port(), h.port()), (43637, 42489));
        assert!(super::parse_listening(r#"{"fields":{"message":"stopping"}}"#).is_none());
        assert!(super::parse_listening(r#"{"fields":{"message":"listening","grpc""#).is_none());
    }
}
