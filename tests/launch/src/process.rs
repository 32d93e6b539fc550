//! Child processes that are stopped when dropped, and the small polling and port helpers the
//! launchers share.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use rustix::process::Signal;

/// Send `signal` to process `pid`; errors (e.g. the process is gone) are ignored.
pub fn kill(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// A command for `program`, run in the network namespace `netns` when there is one
/// (`ip netns exec NS PROGRAM`: `ip` enters the namespace and execs the program, so the child's
/// pid is the program's and signals reach it).
pub fn command_in(program: impl AsRef<OsStr>, netns: Option<&str>) -> Command {
    match netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// A child process that is terminated (SIGTERM, then SIGKILL after a grace period) on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
    grace: Duration,
}

impl ChildGuard {
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        ChildGuard { child: Some(child), name: name.into(), grace: Duration::from_secs(5) }
    }

    /// A guard of no process (what is left behind after [`ChildGuard::detach`]).
    pub fn none(name: impl Into<String>) -> Self {
        ChildGuard { child: None, name: name.into(), grace: Duration::from_secs(5) }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send `signal` (e.g. `Signal::TERM`) to the process; harmless if it already exited.
    pub fn signal(&self, signal: Signal) {
        if let Some(child) = &self.child {
            kill(child.id(), signal);
        }
    }

    /// SIGTERM, wait up to the grace period, then SIGKILL. Returns the exit status.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        self.child.as_ref()?;
        if let Some(status) = self.try_wait() {
            return Some(status);
        }
        self.signal(Signal::TERM);
        if let Some(status) = self.wait_timeout(self.grace) {
            return Some(status);
        }
        eprintln!(
            "{} (pid {}) ignored SIGTERM for {:?}: killing",
            self.name,
            self.pid(),
            self.grace
        );
        let child = self.child.as_mut()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Leave the process running: nothing stops it when the guard goes away (the caller keeps
    /// its pid, e.g. in a pid file). Returns the pid.
    pub fn detach(mut self) -> u32 {
        let pid = self.pid();
        self.child = None;
        pid
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Poll `check` every 50 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a process that must be told its
/// port before it starts (etcd). It is drawn at random below Linux's ephemeral range
/// (32768-60999), where neither outgoing connections nor other processes' port-0 listeners
/// can take it between now and the process binding it.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    for _ in 0..200 {
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let port = LOW + (random % u64::from(SPAN)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(0, |a| a.port())
}

/// A fresh path `<shm>/<stem>-<pid>-<n>` (not created), where `<shm>` is /dev/shm when there is
/// one (etcd's fsyncs cost nothing in memory) and /tmp otherwise.
pub fn scratch_path(stem: &str) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let base = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    PathBuf::from(format!(
        "{base}/{stem}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}
