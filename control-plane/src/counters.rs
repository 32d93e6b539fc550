//! The replica's own counters and gauges for `/metrics`: watchers, slow watchers cut off,
//! refused calls, HTTP assignments and failed calls to the origins' recordings API. prometheus-client metrics (atomics inside), shared by
//! the gRPC layers and the HTTP front end and registered once by [`crate::metrics`].

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters of one replica.
#[derive(Debug, Default)]
pub struct Counters {
    /// `Watch` calls whose task is running.
    watchers: Gauge,
    /// `Watch` calls ended with RESOURCE_EXHAUSTED because the client did not keep up.
    slow_watchers: Counter,
    /// Calls (gRPC or HTTP `/api/`) refused for a missing or wrong bearer token.
    unauthenticated: Counter,
    /// Viewers assigned over HTTP (`/play/...`).
    http_assignments: Counter,
    /// Calls to an origin's recordings API that got no usable answer (timeout, refused,
    /// error status, malformed answer, no `api` address).
    origin_api_failures: Counter,
}

impl Counters {
    /// One more running `Watch` task, counted until the returned guard drops (the task ends).
    pub fn watcher(self: &std::sync::Arc<Self>) -> WatcherGuard {
        self.watchers.inc();
        WatcherGuard(self.clone())
    }

    pub fn watchers(&self) -> u64 {
        self.watchers.get().try_into().unwrap_or(0)
    }

    pub fn slow_watcher(&self) {
        self.slow_watchers.inc();
    }

    pub fn slow_watchers(&self) -> u64 {
        self.slow_watchers.get()
    }

    pub fn unauthenticated(&self) {
        self.unauthenticated.inc();
    }

    pub fn unauthenticated_total(&self) -> u64 {
        self.unauthenticated.get()
    }

    pub fn http_assignment(&self) {
        self.http_assignments.inc();
    }

    pub fn origin_api_failure(&self) {
        self.origin_api_failures.inc();
    }

    pub fn origin_api_failures(&self) -> u64 {
        self.origin_api_failures.get()
    }

    /// Registers the counters (clones share the values) in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sluice_control_plane_watchers",
            "Watch calls in progress",
            self.watchers.clone(),
        );
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "sluice_control_plane_watch_slow_disconnects",
            "Watch calls ended because the client did not read its events",
            self.slow_watchers.clone(),
        );
        registry.register(
            "sluice_control_plane_unauthenticated",
            "Calls refused for a missing or wrong bearer token",
            self.unauthenticated.clone(),
        );
        registry.register(
            "sluice_control_plane_http_assignments",
            "Viewers assigned over HTTP",
            self.http_assignments.clone(),
        );
        registry.register(
            "sluice_control_plane_origin_api_failures",
            "Calls to an origin's recordings API that got no usable answer",
            self.origin_api_failures.clone(),
        );
    }
}

/// Counts one running `Watch` task; the gauge goes down when it drops, however the task ends.
#[derive(Debug)]
pub struct WatcherGuard(std::sync::Arc<Counters>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.dec();
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
        c.origin_api_failure();
        let mut registry = Registry::default();
        c.register(&mut registry);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(out.contains("sluice_control_plane_watchers 0\n"), "{out}");
        assert!(out.contains("sluice_control_plane_unauthenticated_total 1\n"), "{out}");
        assert!(out.contains("sluice_control_plane_origin_api_failures_total 1\n"), "{out}");
    }
}
