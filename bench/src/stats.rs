//! Counters and histograms shared by all player tasks of one run, and the JSON summaries built
//! from them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::hls::HlsCounters;

/// Measuring phases of a run.
pub const PHASE_WARMUP: u8 = 0;
pub const PHASE_MEASURE: u8 = 1;
pub const PHASE_DONE: u8 = 2;

/// No frame sent yet (value of [`Shared::publisher_seq`]).
pub const NO_SEQ: u64 = u64::MAX;

/// Wall-clock time in microseconds since the UNIX epoch.
pub fn wall_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// State shared by the publisher and every player of a run.
#[derive(Debug)]
pub struct Shared {
    phase: AtomicU8,
    /// Sequence number of the newest frame the local publisher has sent ([`NO_SEQ`] if none or
    /// if the publisher is external).
    pub publisher_seq: AtomicU64,
    pub connected: AtomicU64,
    pub receiving: AtomicU64,
    pub frames: AtomicU64,
    pub cached_frames: AtomicU64,
    pub unstamped_frames: AtomicU64,
    pub dropped_frames: AtomicU64,
    pub out_of_order_frames: AtomicU64,
    pub bytes: AtomicU64,
    /// LL-HLS clients' request counters.
    pub hls: HlsCounters,
    failures: Mutex<BTreeMap<String, u64>>,
    disconnects: Mutex<BTreeMap<String, u64>>,
    latency_us: Mutex<Histogram<u64>>,
    ttff_us: Mutex<Histogram<u64>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            phase: AtomicU8::new(PHASE_WARMUP),
            publisher_seq: AtomicU64::new(NO_SEQ),
            connected: AtomicU64::new(0),
            receiving: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            cached_frames: AtomicU64::new(0),
            unstamped_frames: AtomicU64::new(0),
            dropped_frames: AtomicU64::new(0),
            out_of_order_frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            hls: HlsCounters::default(),
            failures: Mutex::new(BTreeMap::new()),
            disconnects: Mutex::new(BTreeMap::new()),
            latency_us: Mutex::new(new_histogram()),
            ttff_us: Mutex::new(new_histogram()),
        }
    }
}

impl Shared {
    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Release);
    }

    /// Whether per-frame figures are being recorded.
    pub fn measuring(&self) -> bool {
        self.phase.load(Ordering::Relaxed) == PHASE_MEASURE
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A player that never got to play: count the reason.
    pub fn fail(&self, reason: String) {
        *lock(&self.failures).entry(reason).or_insert(0) += 1;
    }

    /// A player that was playing and lost its connection.
    pub fn disconnect(&self, reason: String) {
        *lock(&self.disconnects).entry(reason).or_insert(0) += 1;
    }

    pub fn record_latency(&self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, 600_000_000);
        let _ = lock(&self.latency_us).record(us);
    }

    pub fn record_ttff(&self, ttff: Duration) {
        let us = (ttff.as_micros() as u64).clamp(1, 600_000_000);
        let _ = lock(&self.ttff_us).record(us);
    }

    pub fn failures(&self) -> BTreeMap<String, u64> {
        lock(&self.failures).clone()
    }

    pub fn disconnects(&self) -> BTreeMap<String, u64> {
        lock(&self.disconnects).clone()
    }

    pub fn latency_summary(&self) -> Quantiles {
        Quantiles::from(&*lock(&self.latency_us))
    }

    pub fn ttff_summary(&self) -> Quantiles {
        Quantiles::from(&*lock(&self.ttff_us))
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Lock a mutex, recovering the data if a panicking task poisoned it (the one place the load
/// tool locks a std mutex).
#[allow(clippy::disallowed_methods)]
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Percentiles of a microsecond histogram, reported in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Quantiles {
    pub samples: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

impl From<&Histogram<u64>> for Quantiles {
    fn from(histogram: &Histogram<u64>) -> Self {
        let samples = histogram.len();
        let ms = |us: u64| Some(us as f64 / 1000.0);
        if samples == 0 {
            return Quantiles {
                samples,
                p50_ms: None,
                p90_ms: None,
                p99_ms: None,
                max_ms: None,
                mean_ms: None,
            };
        }
        Quantiles {
            samples,
            p50_ms: ms(histogram.value_at_quantile(0.5)),
            p90_ms: ms(histogram.value_at_quantile(0.9)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
            mean_ms: Some(histogram.mean().round() / 1000.0),
        }
    }
}

/// What the players of a run saw.
#[derive(Debug, Clone, Serialize)]
pub struct PlayersReport {
    pub requested: u64,
    /// Reached "playing" (RTMP NetStream.Play.Start / HTTP 200).
    pub connected: u64,
    /// Received at least one stamped video frame.
    pub receiving: u64,
    /// Never reached "playing".
    pub failed: u64,
    pub failure_reasons: BTreeMap<String, u64>,
    /// Were playing, then lost the connection before the end.
    pub disconnected: u64,
    pub disconnect_reasons: BTreeMap<String, u64>,
}

/// Per-frame figures over the measuring window.
#[derive(Debug, Clone, Serialize)]
pub struct FramesReport {
    /// Stamped video frames received (live and cached).
    pub received: u64,
    /// Frames replayed from a GOP cache / initial burst, excluded from latency.
    pub cached: u64,
    /// Video frames without a bench stamp (other publishers).
    pub unstamped: u64,
    /// Gaps in the sequence numbers.
    pub dropped: u64,
    pub out_of_order: u64,
    /// dropped / (received + dropped).
    pub dropped_ratio: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_in_ms() {
        let shared = Shared::default();
        assert_eq!(shared.latency_summary().samples, 0);
        assert_eq!(shared.latency_summary().p50_ms, None);
        for ms in 1..=100u64 {
            shared.record_latency(Duration::from_millis(ms));
        }
        let q = shared.latency_summary();
        assert_eq!(q.samples, 100);
        assert!((q.p50_ms.unwrap() - 50.0).abs() < 0.1, "{q:?}");
        assert!((q.p99_ms.unwrap() - 99.0).abs() < 0.1, "{q:?}");
        assert!((q.max_ms.unwrap() - 100.0).abs() < 0.1, "{q:?}");
    }

    #[test]
    fn reasons_are_counted() {
        let shared = Shared::default();
        shared.fail("connect refused".into());
        shared.fail("connect refused".into());
        shared.fail("timeout".into());
        assert_eq!(shared.failures().get("connect refused"), Some(&2));
        assert_eq!(shared.failures().len(), 2);
    }
}
