//! Helpers shared by the end-to-end tests: start `sluice-origin`, generate fixture media, run
//! ffmpeg publishers and players, read the HTTP API and metrics, and speak raw RTMP.
//!
//! Every test starts its own server on port 0, so tests can run in parallel (cargo-nextest).
//! Processes (etcd, certificates, nodes) are started by `sluice-launch` (tests/launch), the one
//! launcher the other crates' tests, the bench scripts and deploy/local use too. The tests
//! themselves are modules of one binary, tests/tests/e2e.

pub mod chaos;
pub mod cluster;
pub mod control_plane;
pub mod deps;
pub mod etcd;
pub mod ffmpeg;
pub mod fixtures;
pub mod flood;
pub mod follower;
pub mod helm;
pub mod hpa;
pub mod http;
pub mod metrics;
pub mod netns;
pub mod origin;
pub mod otlp;
pub mod paths;
pub mod process;
pub mod replay;
pub mod rtmp;
pub mod viewer;
pub mod wait;
pub mod webhook;

pub use ffmpeg::{ffprobe_streams, play_count_frames, PlayResult, Player, Publisher};
pub use fixtures::{h264_aac, h264_small, hevc_aac, Fixture};
pub use metrics::Metrics;
pub use origin::Origin;

use std::time::Duration;

/// Shorthand for seconds.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Lock `m`, ignoring poisoning: a test thread that panicked while holding it has already
/// failed its test; the others still read what it left.
#[allow(clippy::disallowed_methods)] // the one place that locks a std mutex
pub fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
