//! A process that prints no `listening` line but answers `GET /readyz` on a known HTTP address:
//! `sluice-control-plane`, whose listen addresses are given on its command line. Returned once
//! `/readyz` answers 200 (for the control plane: its cluster cache has loaded).
//!
//! stdout goes to `DIR/NAME.out` and stderr (the log) to `DIR/NAME.log`, as for a node.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{tail, LaunchError};
use crate::http;
use crate::process::ChildGuard;

/// How to run one service.
#[derive(Debug, Clone)]
pub struct ServiceSpec {
    /// Names the output files (`NAME.out`, `NAME.log`) and the messages.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub log_dir: PathBuf,
    /// Where it answers `GET /readyz` (one of the addresses in `args`).
    pub http: SocketAddr,
    /// Run in a process group of its own (see [`crate::EtcdSpec::own_process_group`]).
    pub own_process_group: bool,
    pub start_timeout: Duration,
}

/// A running service; stopped on drop.
#[derive(Debug)]
pub struct Service {
    child: ChildGuard,
}

impl Service {
    /// Start the service, calling `on_spawn(pid)` as soon as the process exists (to record its
    /// pid before waiting), then wait until `/readyz` answers 200.
    pub fn start_with(
        spec: &ServiceSpec,
        on_spawn: impl FnOnce(u32),
    ) -> Result<Service, LaunchError> {
        let out_path = spec.log_dir.join(format!("{}.out", spec.name));
        let log_path = spec.log_dir.join(format!("{}.log", spec.name));
        let create = |p: &Path| {
            File::create(p).map_err(|e| LaunchError::io(format!("create {}", p.display()), e))
        };
        let mut cmd = Command::new(&spec.program);
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(create(&out_path)?)
            .stderr(create(&log_path)?);
        if spec.own_process_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|source| LaunchError::Spawn {
            program: spec.program.display().to_string(),
            source,
        })?;
        let mut child = ChildGuard::new(&spec.name, child);
        on_spawn(child.pid());
        let deadline = Instant::now() + spec.start_timeout;
        while !http::ok(spec.http, "/readyz", Duration::from_secs(2)) {
            if let Some(status) = child.try_wait() {
                let tail = tail(&log_path, 40);
                return Err(LaunchError::Exited {
                    name: spec.name.clone(),
                    status,
                    log: log_path,
                    tail,
                });
            }
            if Instant::now() >= deadline {
                return Err(LaunchError::Timeout {
                    name: spec.name.clone(),
                    what: format!("http://{}/readyz did not answer 200", spec.http),
                    timeout: spec.start_timeout,
                    tail: tail(&log_path, 40),
                    log: log_path,
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
        Ok(Service { child })
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Leave the service running; returns its pid.
    pub fn detach(self) -> u32 {
        self.child.detach()
    }
}
