//! The replica's own counters and gauges for `/metrics`: watchers, slow watchers cut off and
//! refused calls. Plain atomics, shared by the gRPC layers and the HTTP front end.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of one replica.
#[derive(Debug, Default)]
pub struct Counters {
    /// `Watch` calls whose task is running.
    watchers: AtomicU64,
    /// `Watch` calls ended with RESOURCE_EXHAUSTED because the client did not keep up.
    slow_watchers: AtomicU64,
    /// Calls (gRPC or HTTP `/api/`) refused for a missing or wrong bearer token.
    unauthenticated: AtomicU64,
}

impl Counters {
    /// One more running `Watch` task, counted until the returned guard drops (the task ends).
    pub fn watcher(self: &std::sync::Arc<Self>) -> WatcherGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatcherGuard(self.clone())
    }

    pub fn watchers(&self) -> u64 {
        self.watchers.load(Ordering::Relaxed)
    }

    pub fn slow_watcher(&self) {
        self.slow_watchers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn slow_watchers(&self) -> u64 {
        self.slow_watchers.load(Ordering::Relaxed)
    }

    pub fn unauthenticated(&self) {
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unauthenticated_total(&self) -> u64 {
        self.unauthenticated.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus text format, appended to `out`.
    pub fn render(&self, out: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
        };
        metric(
            "sluice_control_plane_watchers",
            "gauge",
            "Watch calls in progress",
            self.watchers(),
        );
        metric(
            "sluice_control_plane_watch_slow_disconnects_total",
            "counter",
            "Watch calls ended because the client did not read its events",
            self.slow_watchers(),
        );
        metric(
            "sluice_control_plane_unauthenticated_total",
            "counter",
            "Calls refused for a missing or wrong bearer token",
            self.unauthenticated_total(),
        );
    }
}

/// Counts one running `Watch` task; the gauge goes down when it drops, however the task ends.
#[derive(Debug)]
pub struct WatcherGuard(std::sync::Arc<Counters>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn the_watcher_gauge_follows_its_guards() {
        let c = Arc::new(Counters::default());
        let (a, b) = (c.watcher(), c.watcher());
        assert_eq!(c.watchers(), 2);
        drop(a);
        drop(b);
        assert_eq!(c.watchers(), 0);
        c.unauthenticated();
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains("sluice_control_plane_watchers 0\n"), "{out}");
        assert!(out.contains("sluice_control_plane_unauthenticated_total 1\n"), "{out}");
    }
}
