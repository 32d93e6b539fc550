//! A single-member etcd on loopback (Debian package `etcd-server`), healthy before it is
//! returned. Tests take [`Etcd::start`] (free ports, data on /dev/shm, all removed on drop);
//! deploy/local and the benchmarks give fixed ports and a data directory ([`Etcd::launch`]).

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{tail, LaunchError};
use crate::http;
use crate::process::{command_in, free_port, scratch_path, ChildGuard};

/// How to run one etcd.
#[derive(Debug, Clone)]
pub struct EtcdSpec {
    /// The member name (`--name`, and the one entry of `--initial-cluster`).
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    /// Emptied before the start.
    pub data_dir: PathBuf,
    /// Removed again when the [`Etcd`] is dropped (tests), kept otherwise.
    pub remove_data_on_drop: bool,
    /// `--log-level` (error, warn, info, ...).
    pub log_level: String,
    /// Where etcd's output goes; discarded when `None`.
    pub log_file: Option<PathBuf>,
    /// Run in a process group of its own, so a Ctrl-C meant for the caller's terminal does not
    /// reach it (a script stops it in order instead).
    pub own_process_group: bool,
    pub start_timeout: Duration,
    /// Serve clients over TLS, requiring client certificates signed by the same CA.
    pub tls: Option<EtcdServerTls>,
    /// The address it listens on (clients, peers, health): 127.0.0.1 unless it runs in a
    /// network namespace of its own (`netns`) with an address there.
    pub host: IpAddr,
    /// Run inside this network namespace (`ip netns exec`).
    pub netns: Option<String>,
}

/// etcd's own certificate, and the CA its clients' certificates must chain to.
#[derive(Debug, Clone)]
pub struct EtcdServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
}

impl EtcdSpec {
    /// Free ports, a fresh data directory on /dev/shm removed on drop, errors only in its log.
    pub fn ephemeral() -> EtcdSpec {
        EtcdSpec {
            name: "t".into(),
            client_port: free_port(),
            peer_port: free_port(),
            data_dir: scratch_path("sluice-etcd"),
            remove_data_on_drop: true,
            log_level: "error".into(),
            log_file: None,
            own_process_group: false,
            start_timeout: Duration::from_secs(20),
            tls: None,
            host: IpAddr::from([127, 0, 0, 1]),
            netns: None,
        }
    }
}

/// A running etcd; stopped (and its data removed, if so asked) on drop.
#[derive(Debug)]
pub struct Etcd {
    child: ChildGuard,
    client_port: u16,
    host: IpAddr,
    metrics_port: u16,
    scheme: &'static str,
    data_dir: PathBuf,
    remove_data: bool,
}

impl Etcd {
    /// An etcd for one test: [`EtcdSpec::ephemeral`].
    pub fn start() -> Result<Etcd, LaunchError> {
        Etcd::launch(&EtcdSpec::ephemeral())
    }

    /// Start etcd as `spec` says and wait until `GET /health` says it is healthy.
    pub fn launch(spec: &EtcdSpec) -> Result<Etcd, LaunchError> {
        Etcd::launch_with(spec, |_| {})
    }

    /// [`Etcd::launch`], calling `on_spawn(pid)` as soon as the process exists (to record its
    /// pid before waiting).
    pub fn launch_with(spec: &EtcdSpec, on_spawn: impl FnOnce(u32)) -> Result<Etcd, LaunchError> {
        let _ = std::fs::remove_dir_all(&spec.data_dir);
        let scheme = if spec.tls.is_some() { "https" } else { "http" };
        let host = spec.host;
        let client_url = format!("{scheme}://{host}:{}", spec.client_port);
        let advertise_url = match (spec.tls.is_some(), host.is_loopback()) {
            (true, true) => format!("{scheme}://localhost:{}", spec.client_port),
            _ => client_url.clone(),
        };
        let peer_url = format!("http://{host}:{}", spec.peer_port);
        // Health over plain HTTP on a port of its own, whatever the client port speaks.
        let metrics_port = free_port();
        let mut cmd = command_in("etcd", spec.netns.as_deref());
        cmd.args(["--name", &spec.name, "--data-dir"])
            .arg(&spec.data_dir)
            .args(["--listen-client-urls", &client_url, "--advertise-client-urls", &advertise_url])
            .args(["--listen-metrics-urls", &format!("http://{host}:{metrics_port}")])
            .args(["--listen-peer-urls", &peer_url, "--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{}={peer_url}", spec.name)])
            .args(["--log-level", &spec.log_level, "--logger", "zap"])
            .stdin(Stdio::null());
        if let Some(tls) = &spec.tls {
            cmd.arg("--cert-file").arg(&tls.cert_file).arg("--key-file").arg(&tls.key_file);
            cmd.arg("--trusted-ca-file").arg(&tls.ca_file).arg("--client-cert-auth");
        }
        match &spec.log_file {
            Some(path) => {
                let log = File::create(path)
                    .map_err(|e| LaunchError::io(format!("create {}", path.display()), e))?;
                let err = log.try_clone().map_err(|e| LaunchError::io("dup log file", e))?;
                cmd.stdout(log).stderr(err);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        if spec.own_process_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            program: "etcd (Debian package etcd-server)".into(),
            source,
        })?;
        let mut etcd = Etcd {
            child: ChildGuard::new("etcd", child),
            client_port: spec.client_port,
            host,
            metrics_port,
            scheme,
            data_dir: spec.data_dir.clone(),
            remove_data: spec.remove_data_on_drop,
        };
        on_spawn(etcd.pid());
        let log = spec.log_file.clone().unwrap_or_else(|| PathBuf::from("/dev/null"));
        let deadline = Instant::now() + spec.start_timeout;
        while !etcd.healthy() {
            if let Some(status) = etcd.child.try_wait() {
                let tail = tail(&log, 20);
                return Err(LaunchError::Exited { name: "etcd".into(), status, log, tail });
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Timeout {
                    name: "etcd".into(),
                    what: format!("not healthy on {client_url}"),
                    timeout: spec.start_timeout,
                    tail: tail(&log, 20),
                    log,
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(etcd)
    }

    /// The client URL: `http://HOST:PORT`, or on loopback with TLS `https://localhost:PORT`
    /// (the name the test certificates carry).
    pub fn endpoint(&self) -> String {
        match (self.scheme, self.host.is_loopback()) {
            ("https", true) => format!("https://localhost:{}", self.client_port),
            (scheme, _) => format!("{scheme}://{}", SocketAddr::new(self.host, self.client_port)),
        }
    }

    pub fn port(&self) -> u16 {
        self.client_port
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// `GET /health` answers `"health":"true"`.
    pub fn healthy(&self) -> bool {
        let addr = SocketAddr::new(self.host, self.metrics_port);
        matches!(http::get(addr, "/health", Duration::from_secs(2)),
            Ok((200, body)) if body.contains("\"health\":\"true\""))
    }

    /// Leave etcd running (and its data in place); returns its pid.
    pub fn detach(mut self) -> u32 {
        self.remove_data = false;
        let child = std::mem::replace(&mut self.child, ChildGuard::none("etcd"));
        child.detach()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.child.stop();
        if self.remove_data {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}
