//! The chaos harness (`sluice_tests::chaos`) for a bounded time: a local cluster under steady
//! load (10 streams, 200 viewers over RTMP, HTTP-FLV and LL-HLS) while origins are killed and
//! frozen, edges killed, etcd frozen, and links cut (origin-etcd, edge-origin, origin-origin;
//! every node in a network namespace of its own), at random with a fixed seed. No stream may
//! be left unplayable, no HLS number may go back, and only an edge's death may make a viewer
//! reconnect. The report is printed (`--no-capture`); `SLUICE_CHAOS_SECONDS` and
//! `SLUICE_CHAOS_SEED` change the run (the binary `sluice-chaos` runs any length).

use std::time::Duration;

use sluice_tests::chaos::{self, ChaosConfig, FaultKind};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[test]
fn a_bounded_chaos_run_leaves_every_stream_playing() {
    let config = ChaosConfig {
        seed: env("SLUICE_CHAOS_SEED", 7),
        duration: Duration::from_secs(env("SLUICE_CHAOS_SECONDS", 300)),
        streams: 10,
        viewers: 200,
        fault_every: Duration::from_secs(20),
    };
    let report = chaos::run(&config);
    let rendered = report.render(&config);
    println!("{rendered}");
    // Kept for BENCHMARKS.md: the last run's report.
    let _ = std::fs::write(sluice_tests::paths::target_dir().join("chaos-report.md"), &rendered);
    assert!(report.faults.len() >= 2, "faults injected: {:?}", report.faults);
    assert!(report.streams_unplayable.is_empty(), "unplayable: {:?}", report.streams_unplayable);
    assert_eq!(report.hls_regressions, 0, "HLS numbers went back");
    // Only an edge's death may make viewers reconnect (its own viewers, nobody else's).
    for kind in FaultKind::ALL.into_iter().filter(|k| *k != FaultKind::KillEdge) {
        let n = report.reconnects.get(&kind).copied().unwrap_or(0);
        assert_eq!(n, 0, "{kind:?} made {n} viewers reconnect");
    }
}
