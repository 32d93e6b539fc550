//! `sluice-bench assign`: how many `AssignViewer` calls per second one control-plane replica
//! answers, and how long they take. `--concurrency` tasks each keep one call in flight over
//! `--connections` HTTP/2 channels (shared round-robin) for `--warmup` then `--duration`; only
//! calls that start and end inside the measuring window count. The stream must have a
//! publisher (an unpublished stream answers NOT_FOUND, which is counted as an error).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::control_plane_client::ControlPlaneClient;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::stats::lock;

/// A call not answered by then counts as an error (`Timeout`).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What to measure.
#[derive(Debug, Clone)]
pub struct AssignConfig {
    /// `http://HOST:PORT` of the replica's gRPC port.
    pub endpoint: String,
    pub app: String,
    pub stream: String,
    pub protocol: pb::Protocol,
    pub concurrency: usize,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// The JSON report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AssignReport {
    pub endpoint: String,
    pub concurrency: usize,
    pub connections: usize,
    pub seconds: f64,
    /// Calls answered OK inside the window.
    pub calls: u64,
    pub calls_per_second: f64,
    /// Failed calls inside the window, by gRPC code.
    pub errors: BTreeMap<String, u64>,
    pub latency_us: Latency,
    /// Calls per chosen edge.
    pub edges: BTreeMap<String, u64>,
    /// Why the run could not start, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant figures.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// One task's tally, merged into the report at the end.
#[derive(Debug)]
pub struct Tally {
    pub latency_us: Histogram<u64>,
    pub errors: BTreeMap<String, u64>,
    pub edges: BTreeMap<String, u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally { latency_us: new_histogram(), errors: BTreeMap::new(), edges: BTreeMap::new() }
    }
}

impl Tally {
    pub fn ok(&mut self, latency: Duration, edge: &str) {
        let _ = self.latency_us.record((latency.as_micros() as u64).max(1));
        *self.edges.entry(edge.to_string()).or_insert(0) += 1;
    }

    pub fn error(&mut self, code: &str) {
        *self.errors.entry(code.to_string()).or_insert(0) += 1;
    }

    pub fn merge(&mut self, other: &Tally) {
        let _ = self.latency_us.add(&other.latency_us);
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_insert(0) += v;
        }
        for (k, v) in &other.edges {
            *self.edges.entry(k.clone()).or_insert(0) += v;
        }
    }

    /// The report of a window of `seconds`.
    pub fn report(&self, seconds: f64) -> AssignReport {
        let h = &self.latency_us;
        let calls = h.len();
        let q = |q: f64| if calls == 0 { 0 } else { h.value_at_quantile(q) };
        AssignReport {
            seconds,
            calls,
            calls_per_second: if seconds > 0.0 { calls as f64 / seconds } else { 0.0 },
            errors: self.errors.clone(),
            latency_us: Latency {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                max: if calls == 0 { 0 } else { h.max() },
            },
            edges: self.edges.clone(),
            ..AssignReport::default()
        }
    }
}

/// Run the load and report.
pub async fn run(config: AssignConfig) -> AssignReport {
    let failed = |error: String| AssignReport {
        endpoint: config.endpoint.clone(),
        error: Some(error),
        ..AssignReport::default()
    };
    let endpoint = match Endpoint::from_shared(config.endpoint.clone()) {
        Ok(e) => e.connect_timeout(Duration::from_secs(5)),
        Err(e) => return failed(format!("bad endpoint {}: {e}", config.endpoint)),
    };
    let mut channels = Vec::new();
    for _ in 0..config.connections.max(1) {
        match endpoint.connect().await {
            Ok(c) => channels.push(c),
            Err(e) => return failed(format!("connecting to {}: {e}", config.endpoint)),
        }
    }
    let start = Instant::now() + Duration::from_millis(100);
    let from = start + config.warmup;
    let until = from + config.duration;
    let total = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for i in 0..config.concurrency.max(1) {
        let client = ControlPlaneClient::new(channels[i % channels.len()].clone());
        let request = pb::AssignViewerRequest {
            app: config.app.clone(),
            stream: config.stream.clone(),
            protocol: config.protocol.into(),
            client_hint: String::new(),
            avoid_edges: Vec::new(),
            client_ip: String::new(),
        };
        let total = total.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            caller(client, request, start, from, until, &mut tally).await;
            lock(&total).merge(&tally);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut report = lock(&total).report(config.duration.as_secs_f64());
    report.endpoint = config.endpoint;
    report.concurrency = config.concurrency.max(1);
    report.connections = channels.len();
    report
}

/// One in-flight call at a time from `start` to `until`; calls inside `[from, until]` count.
async fn caller(
    mut client: ControlPlaneClient<Channel>,
    request: pb::AssignViewerRequest,
    start: Instant,
    from: Instant,
    until: Instant,
    tally: &mut Tally,
) {
    tokio::time::sleep_until(start).await;
    loop {
        let sent = Instant::now();
        if sent >= until {
            return;
        }
        let answer =
            tokio::time::timeout(CALL_TIMEOUT, client.assign_viewer(request.clone())).await;
        let done = Instant::now();
        if sent < from || done > until {
            continue;
        }
        match answer {
            Ok(Ok(r)) => tally.ok(done - sent, &r.into_inner().edge_id),
            Ok(Err(status)) => tally.error(&format!("{:?}", status.code())),
            Err(_) => tally.error("Timeout"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_merge_into_a_report() {
        let mut a = Tally::default();
        for us in 1..=100 {
            a.ok(Duration::from_micros(us * 10), "edge-1");
        }
        let mut b = Tally::default();
        b.ok(Duration::from_millis(50), "edge-2");
        b.error("NotFound");
        a.merge(&b);
        let r = a.report(2.0);
        assert_eq!(r.calls, 101);
        assert!((r.calls_per_second - 50.5).abs() < 1e-9);
        assert_eq!(r.edges.get("edge-1"), Some(&100));
        assert_eq!(r.edges.get("edge-2"), Some(&1));
        assert_eq!(r.errors.get("NotFound"), Some(&1));
        assert!((500..=510).contains(&r.latency_us.p50), "{:?}", r.latency_us);
        assert!((990..=1_010).contains(&r.latency_us.p99), "{:?}", r.latency_us);
        assert!((49_900..=50_100).contains(&r.latency_us.max), "{:?}", r.latency_us);
    }

    #[test]
    fn an_empty_window_reports_zeros() {
        let r = Tally::default().report(0.0);
        assert_eq!((r.calls, r.calls_per_second, r.latency_us.p99), (0, 0.0, 0));
    }
}
