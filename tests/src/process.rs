//! Child processes that are stopped when dropped (from `sluice-launch`, shared with the other
//! crates' tests and the scripts), and small process utilities.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::thread;

pub use sluice_launch::process::{wait_for, ChildGuard};

/// Lines read from a pipe by a background thread.
#[derive(Debug, Clone, Default)]
pub struct LineLog {
    lines: Arc<Mutex<Vec<String>>>,
}

impl LineLog {
    /// Collect the lines of `reader` on a background thread.
    pub fn collect(reader: impl Read + Send + 'static) -> Self {
        let log = LineLog::default();
        let lines = log.lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                match line {
                    Ok(line) => crate::lock(&lines).push(line),
                    Err(_) => break,
                }
            }
        });
        log
    }

    pub fn lines(&self) -> Vec<String> {
        crate::lock(&self.lines).clone()
    }
}

/// Resident set size of a process in KiB, from `/proc/PID/status` (`VmRSS`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Number of open file descriptors of a process.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}
