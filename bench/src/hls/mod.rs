//! LL-HLS players for `sluice-bench run --protocol hls`.
//!
//! Each client behaves like an LL-HLS player (hls.js-like) over one HTTP/1.1 keep-alive
//! connection: multivariant playlist, media playlist, init segment, then from the newest
//! independent part onwards every part, learning of new ones by blocking playlist reloads
//! (`_HLS_msn`/`_HLS_part`) and, in the default `hint` mode, requesting the preload-hinted part
//! before it exists (the server holds the request until it does). Each part is scanned as it
//! streams in for the stamps of its video frames ([`fmp4`]); a frame's latency is the time from
//! its stamp to the moment the whole part containing it has been received.
//!
//! Modules: [`playlist`] (parsing), [`fmp4`] (init and part scanning), [`conn`] (the
//! keep-alive connection), [`client`] (the player loop).

mod client;
pub mod conn;
pub mod fmp4;
pub mod playlist;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

pub use client::play_hls;

/// How a client learns of and fetches the next part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HlsMode {
    /// Request the preload-hinted part at once (held by the server until it exists), then a
    /// playlist reload for that part (answered at once) to learn the next hint.
    Hint,
    /// Blocking playlist reload for the next part, then fetch it (one more round trip).
    Blocking,
}

/// Settings of the HLS clients.
#[derive(Debug, Clone)]
pub struct HlsOptions {
    pub mode: HlsMode,
    /// Longest wait for one response (blocking requests included).
    pub request_timeout: Duration,
    /// A gap between two consecutive new parts longer than this is a stall; `None`: twice
    /// the playlist's part target.
    pub stall_after: Option<Duration>,
}

/// Counters shared by every HLS client of a run. Request and part counts cover the measuring
/// window; errors are counted over the whole run (warm-up included).
#[derive(Debug, Default)]
pub struct HlsCounters {
    pub playlists: AtomicU64,
    pub blocking_playlists: AtomicU64,
    pub parts: AtomicU64,
    pub inits: AtomicU64,
    pub hint_hits: AtomicU64,
    pub hint_misses: AtomicU64,
    pub stalls: AtomicU64,
    pub max_part_gap_us: AtomicU64,
    pub connections: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl HlsCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn error(&self, reason: String) {
        let mut errors = crate::stats::lock(&self.errors);
        *errors.entry(reason).or_insert(0) += 1;
    }

    /// The report over a window of `window_s` seconds with `clients` playing.
    pub fn report(&self, mode: HlsMode, clients: u64, window_s: f64) -> HlsReport {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let errors = crate::stats::lock(&self.errors).clone();
        let parts = get(&self.parts);
        let per_client_s = clients as f64 * window_s;
        HlsReport {
            mode,
            playlists: get(&self.playlists),
            blocking_playlists: get(&self.blocking_playlists),
            parts,
            parts_per_client_per_s: (per_client_s > 0.0).then(|| parts as f64 / per_client_s),
            inits: get(&self.inits),
            hint_hits: get(&self.hint_hits),
            hint_misses: get(&self.hint_misses),
            stalls: get(&self.stalls),
            max_part_gap_ms: get(&self.max_part_gap_us) as f64 / 1000.0,
            connections_opened: get(&self.connections),
            errors: errors.values().sum(),
            error_reasons: errors,
        }
    }
}

/// What the HLS clients did.
#[derive(Debug, Clone, Serialize)]
pub struct HlsReport {
    pub mode: HlsMode,
    /// Media playlist responses in the window (blocking reloads included).
    pub playlists: u64,
    pub blocking_playlists: u64,
    /// Parts received in the window.
    pub parts: u64,
    pub parts_per_client_per_s: Option<f64>,
    pub inits: u64,
    /// Preload-hinted part requests answered with the part / with 404 (the segment ended
    /// before that part: the next playlist names the real next part).
    pub hint_hits: u64,
    pub hint_misses: u64,
    /// Gaps between consecutive new parts above the stall threshold, in the window.
    pub stalls: u64,
    pub max_part_gap_ms: f64,
    /// TCP connections the clients opened (one each, plus reconnects), whole run.
    pub connections_opened: u64,
    /// Failed requests over the whole run, by reason.
    pub errors: u64,
    pub error_reasons: BTreeMap<String, u64>,
}
