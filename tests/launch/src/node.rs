//! A `sluice-origin` or `sluice-edge` process: started with the given flags, returned once it
//! printed its `listening rtmp=ADDR http=ADDR [relay=ADDR]` line on stdout (and, when asked,
//! once `GET /readyz` answers 200).
//!
//! stdout goes to `DIR/NAME.out` and stderr (the log) to `DIR/NAME.log`: files rather than
//! pipes, so a node started by the `sluice-launch` binary keeps running after the launcher
//! exits (a pipe with no reader would fail its writes).

use std::fs::File;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{tail, LaunchError};
use crate::http;
use crate::process::{command_in, ChildGuard};

/// How to run one node.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// Names the output files (`NAME.out`, `NAME.log`) and the messages.
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub envs: Vec<(String, String)>,
    pub log_dir: PathBuf,
    /// Also wait for `/readyz` to answer 200 (same deadline).
    pub wait_ready: bool,
    /// Run in a process group of its own (see [`crate::EtcdSpec::own_process_group`]).
    pub own_process_group: bool,
    pub start_timeout: Duration,
    /// Run inside this network namespace (`ip netns exec`; see [`crate::process::command_in`]).
    pub netns: Option<String>,
}

impl NodeSpec {
    /// `program` with no flags, output files in `log_dir`, 20 s to print its `listening` line.
    pub fn new(name: &str, program: impl Into<PathBuf>, log_dir: impl Into<PathBuf>) -> NodeSpec {
        NodeSpec {
            name: name.into(),
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
            log_dir: log_dir.into(),
            wait_ready: false,
            own_process_group: false,
            start_timeout: Duration::from_secs(20),
            netns: None,
        }
    }

    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> NodeSpec {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> NodeSpec {
        self.envs.push((key.into(), value.into()));
        self
    }

    pub fn out_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}.out", self.name))
    }

    pub fn log_path(&self) -> PathBuf {
        self.log_dir.join(format!("{}.log", self.name))
    }
}

/// A running node; stopped on drop.
#[derive(Debug)]
pub struct Node {
    child: ChildGuard,
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    /// The QUIC relay's UDP address, when the node listens for relay peers.
    pub relay: Option<SocketAddr>,
    /// The HTTPS listener's address, with `--https-listen`.
    pub https: Option<SocketAddr>,
    /// The RTMPS listener's address, with `--rtmps-listen`.
    pub rtmps: Option<SocketAddr>,
    /// The whole `listening ...` line.
    pub listening: String,
    log_path: PathBuf,
}

impl Node {
    /// Start the node, calling `on_spawn(pid)` as soon as the process exists (to record its pid
    /// before waiting), then wait for its `listening` line (and `/readyz`, if asked).
    pub fn start_with(spec: &NodeSpec, on_spawn: impl FnOnce(u32)) -> Result<Node, LaunchError> {
        let (out_path, log_path) = (spec.out_path(), spec.log_path());
        let create = |p: &Path| {
            File::create(p).map_err(|e| LaunchError::io(format!("create {}", p.display()), e))
        };
        let mut cmd = command_in(&spec.program, spec.netns.as_deref());
        cmd.args(&spec.args)
            .envs(spec.envs.iter().map(|(k, v)| (k, v)))
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
        let fail = |child: &mut ChildGuard, what: &str| -> LaunchError {
            let tail = tail(&log_path, 40);
            match child.try_wait() {
                Some(status) => LaunchError::Exited {
                    name: spec.name.clone(),
                    status,
                    log: log_path.clone(),
                    tail,
                },
                None => LaunchError::Timeout {
                    name: spec.name.clone(),
                    what: what.into(),
                    timeout: spec.start_timeout,
                    log: log_path.clone(),
                    tail,
                },
            }
        };
        let line = loop {
            if let Some(line) = first_line(&out_path) {
                break line;
            }
            if child.try_wait().is_some() || Instant::now() >= deadline {
                return Err(fail(&mut child, "printed no `listening` line"));
            }
            thread::sleep(Duration::from_millis(20));
        };
        let Some(addrs) = Listening::parse(&line) else {
            let tail = tail(&log_path, 40);
            return Err(LaunchError::Listening {
                name: spec.name.clone(),
                line,
                log: log_path.clone(),
                tail,
            });
        };
        if spec.wait_ready {
            while !http::ok(addrs.http, "/readyz", Duration::from_secs(2)) {
                if child.try_wait().is_some() || Instant::now() >= deadline {
                    return Err(fail(&mut child, "/readyz did not answer 200"));
                }
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(Node {
            child,
            rtmp: addrs.rtmp,
            http: addrs.http,
            relay: addrs.relay,
            https: addrs.https,
            rtmps: addrs.rtmps,
            listening: line,
            log_path,
        })
    }

    /// [`Node::start_with`] with nothing to do on spawn.
    pub fn start(spec: &NodeSpec) -> Result<Node, LaunchError> {
        Node::start_with(spec, |_| {})
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The process, to signal it or wait for it.
    pub fn child(&mut self) -> &mut ChildGuard {
        &mut self.child
    }

    /// Leave the node running; returns its pid.
    pub fn detach(self) -> u32 {
        self.child.detach()
    }
}

/// The first complete line of a file, once it has one.
fn first_line(path: &Path) -> Option<String> {
    let mut text = String::new();
    File::open(path).ok()?.read_to_string(&mut text).ok()?;
    let (line, _) = text.split_once('\n')?;
    Some(line.trim_end().to_string())
}

/// The addresses of a `listening rtmp=ADDR http=ADDR [relay=ADDR] [https=ADDR] [rtmps=ADDR]`
/// line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    pub rtmp: SocketAddr,
    pub http: SocketAddr,
    pub relay: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub rtmps: Option<SocketAddr>,
}

impl Listening {
    pub fn parse(line: &str) -> Option<Listening> {
        let mut words = line.split_whitespace();
        if words.next()? != "listening" {
            return None;
        }
        let (mut rtmp, mut http, mut relay, mut https, mut rtmps) = (None, None, None, None, None);
        for word in words {
            if let Some(v) = word.strip_prefix("rtmp=") {
                rtmp = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("http=") {
                http = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("relay=") {
                relay = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("https=") {
                https = v.parse().ok();
            } else if let Some(v) = word.strip_prefix("rtmps=") {
                rtmps = v.parse().ok();
            }
        }
        Some(Listening { rtmp: rtmp?, http: http?, relay, https, rtmps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listening_line() {
        let l = Listening::parse("listening rtmp=127.0.0.1:1935 http=127.0.0.1:8080").unwrap();
        assert_eq!((l.rtmp.port(), l.http.port(), l.relay), (1935, 8080, None));
        let l = Listening::parse("listening rtmp=127.0.0.1:1 http=127.0.0.1:2 relay=127.0.0.1:3");
        assert_eq!(l.unwrap().relay.map(|a| a.port()), Some(3));
        let l = Listening::parse(
            "listening rtmp=127.0.0.1:1 http=127.0.0.1:2 https=127.0.0.1:4 rtmps=127.0.0.1:5",
        )
        .unwrap();
        assert_eq!(l.https.map(|a| a.port()), Some(4));
        assert_eq!(l.rtmps.map(|a| a.port()), Some(5));
        assert!(Listening::parse("listening rtmp=127.0.0.1:1935").is_none());
        assert!(Listening::parse("hello").is_none());
    }
}
