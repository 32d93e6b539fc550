//! `sluice-chaos`: the chaos harness (`sluice_tests::chaos`) for as long as you like. It starts
//! its own local cluster (a real etcd, three origins and two edges from `target/debug`, or the
//! profile `SLUICE_TEST_PROFILE` names, each in a network namespace of its own: run as root),
//! loads it, injects faults at random from a seed (kills, freezes, link cuts), and prints a
//! Markdown report (the figures in BENCHMARKS.md come from it).
//!
//! `cargo build --bins && cargo run -p sluice-tests --bin sluice-chaos -- --seed 7 --minutes 15`,
//! or on release builds `deploy/local/cluster.sh chaos --minutes 15`.

use std::time::Duration;

use clap::Parser;
use sluice_tests::chaos::{self, ChaosConfig};

/// Run a local cluster under load while origins, edges, etcd and the links between them fail at
/// random.
#[derive(Debug, Parser)]
#[command(name = "sluice-chaos", version)]
struct Args {
    /// Seed of the fault schedule (the same seed injects the same faults in the same order).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Minutes of faults.
    #[arg(long, default_value_t = 5)]
    minutes: u64,
    /// Streams published.
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Viewers in all (RTMP, HTTP-FLV and LL-HLS, 3:1:1), spread over the streams and edges.
    #[arg(long, default_value_t = 200)]
    viewers: usize,
    /// Mean seconds between faults.
    #[arg(long, default_value_t = 20)]
    fault_every: u64,
}

fn main() {
    let args = Args::parse();
    let config = ChaosConfig {
        seed: args.seed,
        duration: Duration::from_secs(args.minutes * 60),
        streams: args.streams.max(1),
        viewers: args.viewers,
        fault_every: Duration::from_secs(args.fault_every.max(5)),
    };
    eprintln!(
        "sluice-chaos: {} min of faults, seed {}; starting the cluster",
        args.minutes, args.seed
    );
    let report = chaos::run(&config);
    println!("{}", report.render(&config));
    if !report.streams_unplayable.is_empty() || report.hls_regressions > 0 {
        std::process::exit(1);
    }
}
