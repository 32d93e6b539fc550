//! One stream's recorder: follows the stream's HLS snapshots and stores each completed
//! segment (and the init segments they need) as it appears, then the index. Nothing is
//! remuxed: the files are the segmenter's CMAF output, byte for byte.
//!
//! A recording that reaches `--record-max-duration` is finished at the next segment boundary
//! and the stream goes on in a new recording (its own directory, init segment and index). While
//! the store has less free space than `--record-min-free`, segments are skipped: each one is
//! counted as an error and the recording carries a discontinuity where they are missing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sluice_media::hls::{HlsSnapshot, TICKS_PER_SECOND};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::dvr::Window;
use super::index::{self, Entry, Index};
use super::store::Store;
use super::{Active, Source};
use crate::log_limit::RateLimitedLog;
use crate::metrics::Metrics;

/// A new home carries on an open recording whose last segment is at most this many segments
/// behind (some 5 minutes of 2 s segments); an older one is another session's.
const ADOPT_MAX_GAP: u64 = 150;

/// "Disk below the floor" lines, for every recorder together.
static LOW_DISK_LOG: RateLimitedLog = RateLimitedLog::new(1);

/// What bounds one recording.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Finish the recording and start the next once it is this long.
    pub max_duration: Option<Duration>,
    /// Skip segments while the store has fewer free bytes (0: never).
    pub min_free: u64,
    /// Keep a DVR playlist of this long.
    pub dvr_window: Option<Duration>,
}

/// What a recorder is started with.
pub(super) struct Job<S> {
    pub store: Arc<S>,
    pub key: sluice_media::stream_name::StreamKey,
    /// Its registration in `active`.
    pub registration: u64,
    /// The stream's HLS snapshots.
    pub source: Source,
    /// Later sources of the same stream (a publisher that came back).
    pub more: mpsc::Receiver<Source>,
    /// How long an ended source waits for the next before the recording is finished.
    pub reconnect_wait: Duration,
    pub limits: Limits,
    pub active: Arc<Active>,
    pub metrics: Metrics,
}

/// Record one stream: each source until it is released or gone, then the next one that comes
/// within `reconnect_wait` (as a new period); then finish the index.
pub(super) async fn run<S: Store>(job: Job<S>) {
    let Job {
        store,
        key,
        registration,
        mut source,
        mut more,
        reconnect_wait,
        limits,
        active,
        metrics,
    } = job;
    let id = now_ms();
    let mut rec = Recorder {
        dvr: limits.dvr_window.map(Window::new),
        key: key.clone(),
        registration,
        store,
        stream: format!("{}/{}", key.app(), key.name()),
        id,
        prefix: format!("{}/{}/{id}", key.app(), key.name()),
        limits,
        active: active.clone(),
        metrics,
        index: Index::default(),
        inits: HashSet::new(),
        last_msn: None,
        new_period: false,
        writing: false,
    };
    loop {
        rec.follow(&mut source).await;
        let next = match tokio::time::timeout(reconnect_wait, more.recv()).await {
            Ok(Some(next)) => Some(next),
            // No publisher came back in time: done, unless one arrives while we leave.
            _ => active.leave(&key, registration, &mut more),
        };
        let Some(next) = next else { break };
        source = next;
        rec.new_period = true;
        rec.last_msn = None;
    }
    // In a cluster the home finishes the recording (another origin may be carrying it on).
    if rec.writing && active.is_home(&key) {
        rec.finish().await;
    }
    active.clear_dvr(&key, registration);
    active.finished();
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

struct Recorder<S> {
    key: sluice_media::stream_name::StreamKey,
    registration: u64,
    /// The time-shift window, when DVR is on.
    dvr: Option<Window>,
    store: Arc<S>,
    /// `APP/NAME`.
    stream: String,
    /// The recording's id: its start, Unix ms.
    id: u64,
    /// `APP/NAME/ID`.
    prefix: String,
    limits: Limits,
    active: Arc<Active>,
    metrics: Metrics,
    index: Index,
    inits: HashSet<u32>,
    last_msn: Option<u64>,
    /// The next segment starts a new period (a new source).
    new_period: bool,
    /// This node records the stream now (in a cluster: it is the stream's home).
    writing: bool,
}

impl<S: Store> Recorder<S> {
    /// Store what `source` makes until it is released (the stream's entry ended and lingered)
    /// or dropped.
    async fn follow(&mut self, source: &mut Source) {
        let mut seen = false;
        loop {
            let snapshot = source.borrow_and_update().clone();
            match snapshot {
                Some(snapshot) => {
                    seen = true;
                    self.take(&snapshot).await;
                }
                None if seen => return,
                None => {}
            }
            if source.changed().await.is_err() {
                return;
            }
        }
    }

    /// Store the segments completed since the last snapshot.
    async fn take(&mut self, snapshot: &HlsSnapshot) {
        let mut grew = false;
        for seg in snapshot.segments() {
            if !seg.complete || self.last_msn.is_some_and(|last| seg.msn <= last) {
                continue;
            }
            if !self.active.is_home(&self.key) {
                // Another origin records it now; what we would need if we become the home
                // stays in the window meanwhile.
                if self.writing {
                    // Its DVR playlist is the new home's now.
                    self.active.clear_dvr(&self.key, self.registration);
                }
                self.writing = false;
                continue;
            }
            if !self.writing {
                self.writing = true;
                if self.active.clustered() {
                    self.adopt(seg.msn).await;
                    if self.last_msn.is_some_and(|last| seg.msn <= last) {
                        continue;
                    }
                }
            }
            let missed = self.last_msn.map_or(0, |last| seg.msn - last - 1);
            if missed > 0 {
                // The window moved past segments before we stored them (a stalled disk).
                self.metrics.recording_errors.inc_by(missed);
                warn!(recording = %self.prefix, missed, "recording: segments lost");
            }
            if self.index_full() {
                self.rotate().await;
            }
            if self.disk_low().await {
                // Counted, and the next segment stored starts a new period.
                self.metrics.recording_errors.inc();
                self.last_msn = Some(seg.msn);
                self.new_period = true;
                continue;
            }
            if !self.inits.contains(&seg.init_id) {
                let Some(init) = snapshot.inits().iter().find(|i| i.id == seg.init_id) else {
                    continue;
                };
                let key = format!("{}/init-{}.mp4", self.prefix, init.id);
                if !self.put(&key, vec![init.bytes.clone()]).await {
                    continue;
                }
                self.inits.insert(init.id);
            }
            let key = format!("{}/seg-{}.m4s", self.prefix, seg.msn);
            if !self.put(&key, seg.chunks().collect()).await {
                continue;
            }
            let fresh = self.index.is_empty();
            let entry = Entry {
                msn: seg.msn,
                duration: seg.duration,
                init_id: seg.init_id,
                discontinuity: !fresh && (seg.discontinuity || missed > 0 || self.new_period),
                bytes: seg.len() as u64,
            };
            if let Some(window) = &mut self.dvr {
                let id: Arc<str> = Arc::from(self.id.to_string());
                window.push(&id, entry.clone(), seg.program_date_time_ms, fresh);
                let playlist = Bytes::from(window.render());
                self.active.set_dvr(&self.key, self.registration, playlist);
            }
            self.index.push(entry);
            self.new_period = false;
            self.last_msn = Some(seg.msn);
            grew = true;
        }
        if grew {
            if self.index.entries().len() == 1 {
                info!(recording = %self.prefix, "recording started");
            }
            self.write_index(false).await;
        }
    }

    /// Becoming the stream's home in a cluster: carry on the newest recording of the stream
    /// still open in the store (shared by the origins, the old home's) when it reaches back to
    /// within [`ADOPT_MAX_GAP`] segments of `msn`, rather than start another; the segments in
    /// between are written from the window. Otherwise a new recording starts now.
    async fn adopt(&mut self, msn: u64) {
        let ids = match self.store.list(&self.stream).await {
            Ok(ids) => ids,
            Err(e) => {
                warn!(recording = %self.prefix, error = %e, "recording: listing the store failed");
                Vec::new()
            }
        };
        let newest = ids.iter().filter_map(|id| id.parse::<u64>().ok()).max();
        if let Some(newest) = newest {
            let key = format!("{}/{newest}/index.m3u8", self.stream);
            let stored = match self.store.get(&key).await {
                Ok(Some(bytes)) => index::parse(&String::from_utf8_lossy(&bytes)),
                _ => None,
            };
            if let Some((stored, false)) = stored {
                let last = stored.entries().last().map(|e| e.msn);
                // Not ahead of us either: a corrupt number would stop us recording at all.
                let near = |last: &u64| {
                    last.saturating_add(ADOPT_MAX_GAP) >= msn
                        && *last <= msn.saturating_add(ADOPT_MAX_GAP)
                };
                if let Some(last) = last.filter(near) {
                    self.id = newest;
                    self.prefix = format!("{}/{newest}", self.stream);
                    self.inits = stored.entries().iter().map(|e| e.init_id).collect();
                    self.index = stored;
                    self.last_msn = Some(last);
                    info!(recording = %self.prefix, after = last, "recording carried on");
                    return;
                }
            }
        }
        // Nothing to carry on: a new recording from here (never our old index, which another
        // home may have gone on past).
        self.id = now_ms().max(self.id + u64::from(!self.index.is_empty()));
        self.prefix = format!("{}/{}", self.stream, self.id);
        self.index = Index::default();
        self.inits.clear();
        self.last_msn = None;
        self.new_period = false;
    }

    /// The recording reached `--record-max-duration`.
    fn index_full(&self) -> bool {
        let Some(max) = self.limits.max_duration else { return false };
        let ticks = self.index.entries().iter().fold(0u64, |t, e| t.saturating_add(e.duration));
        !self.index.is_empty() && ticks as u128 * 1000 >= max.as_millis() * TICKS_PER_SECOND as u128
    }

    /// Finish this recording and go on in a new one (ids only grow).
    async fn rotate(&mut self) {
        self.finish().await;
        self.active.finished();
        self.id = now_ms().max(self.id + 1);
        self.prefix = format!("{}/{}", self.stream, self.id);
        self.index = Index::default();
        self.inits.clear();
        self.new_period = false;
    }

    /// The store has less free space than `--record-min-free` (said in the log, rate-limited).
    async fn disk_low(&self) -> bool {
        if self.limits.min_free == 0 {
            return false;
        }
        match self.store.free_bytes().await {
            Ok(Some(free)) if free < self.limits.min_free => {
                if LOW_DISK_LOG.allow() {
                    warn!(
                        recording = %self.prefix,
                        free,
                        min_free = self.limits.min_free,
                        "recording: free space below --record-min-free, segment not recorded"
                    );
                }
                true
            }
            Ok(_) => false,
            Err(e) => {
                // Unknown: record (a write that fails is counted where it fails).
                if LOW_DISK_LOG.allow() {
                    warn!(recording = %self.prefix, error = %e, "recording: free space unknown");
                }
                false
            }
        }
    }

    async fn finish(&mut self) {
        if self.index.is_empty() {
            return;
        }
        self.write_index(true).await;
        info!(
            recording = %self.prefix,
            segments = self.index.entries().len(),
            duration_s = self.index.duration_s(),
            periods = self.index.periods(),
            "recording finished"
        );
    }

    async fn write_index(&mut self, ended: bool) {
        let text = Bytes::from(self.index.render(ended));
        let key = format!("{}/index.m3u8", self.prefix);
        if self.put(&key, vec![text]).await {
            self.active.changed(&self.prefix);
        }
    }

    async fn put(&self, key: &str, parts: Vec<Bytes>) -> bool {
        let len: usize = parts.iter().map(Bytes::len).sum();
        match self.store.put(key, parts).await {
            Ok(()) => {
                self.metrics.recording_bytes.inc_by(len as u64);
                true
            }
            Err(e) => {
                self.metrics.recording_errors.inc();
                warn!(recording = %self.prefix, key, error = %e, "recording: write failed");
                false
            }
        }
    }
}
