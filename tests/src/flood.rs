//! A connection flood run as a separate process: `sluice-bench flood --mode silent` when the
//! load tool is built, else `python3 tests/src/flood.py` (same behaviour: open N TCP
//! connections, send nothing, hold them, count what the server closed or refused).

use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::paths;
use crate::process::ChildGuard;

const SCRIPT: &str = include_str!("flood.py");

/// What the flood saw, normalised over both implementations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodReport {
    pub attempted: u64,
    /// TCP connections established.
    pub connected: u64,
    /// Connections that failed to establish (refused, timed out).
    pub refused: u64,
    /// Established connections the server closed or reset during the hold.
    pub closed_by_server: u64,
    /// Established connections still open when the hold ended.
    pub open_at_end: u64,
    /// The tool's own JSON report.
    pub raw: String,
}

/// A running flood process.
pub struct Flood {
    guard: ChildGuard,
    stdout: Option<JoinHandle<String>>,
    bench: bool,
}

impl std::fmt::Debug for Flood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flood").field("pid", &self.guard.pid()).field("bench", &self.bench).finish()
    }
}

fn bench_binary() -> Option<PathBuf> {
    let path = paths::target_dir().join("debug").join("sluice-bench");
    let ok = Command::new(&path)
        .args(["flood", "--help"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(path)
}

impl Flood {
    /// Open `connections` silent TCP connections to `addr` (at about 5000 per second) and hold
    /// them for `hold` after the last one opened.
    pub fn start(addr: SocketAddr, connections: usize, hold: Duration) -> Flood {
        let (mut cmd, bench) = match bench_binary() {
            Some(bin) => {
                let mut cmd = Command::new(bin);
                cmd.args([
                    "flood",
                    "--addr",
                    &addr.to_string(),
                    "--connections",
                    &connections.to_string(),
                ])
                .args(["--rate", "5000", "--mode", "silent", "--connect-timeout", "20s"])
                .args(["--hold", &format!("{}ms", hold.as_millis())]);
                (cmd, true)
            }
            None => {
                let mut cmd = Command::new("python3");
                cmd.args(["-c", SCRIPT, &addr.to_string(), &connections.to_string()])
                    .arg(format!("{}", hold.as_secs_f64()));
                (cmd, false)
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the flood process");
        let mut out = child.stdout.take().expect("piped");
        let stdout = thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        eprintln!(
            "flood of {connections} connections to {addr} with {}",
            if bench { "sluice-bench" } else { "flood.py" }
        );
        Flood { guard: ChildGuard::new("flood", child), stdout: Some(stdout), bench }
    }

    /// Wait for the flood to finish and parse its report.
    pub fn report(mut self, timeout: Duration) -> FloodReport {
        let status = self.guard.wait_timeout(timeout);
        assert!(status.is_some(), "flood did not finish within {timeout:?}");
        let out = self.stdout.take().unwrap().join().unwrap_or_default();
        let last = out
            .lines()
            .rev()
            .find_map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .filter(|v| v.get("phase").is_none())
            })
            .or_else(|| serde_json::from_str(&out).ok())
            .unwrap_or_else(|| panic!("flood printed no report (status {status:?}): {out}"));
        let n =
            |k: &str| last[k].as_u64().unwrap_or_else(|| panic!("flood report lacks {k}: {last}"));
        if self.bench {
            FloodReport {
                attempted: n("attempted"),
                connected: n("accepted"),
                refused: n("refused"),
                closed_by_server: n("closed_by_server"),
                open_at_end: n("held_to_end"),
                raw: last.to_string(),
            }
        } else {
            FloodReport {
                attempted: n("attempted"),
                connected: n("connected"),
                refused: n("failed") + n("still_connecting"),
                closed_by_server: n("closed_by_server"),
                open_at_end: n("open_at_end"),
                raw: last.to_string(),
            }
        }
    }
}
