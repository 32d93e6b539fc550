//! One stream's recorder: follows the stream's HLS snapshots and stores each completed
//! segment (and the init segments they need) as it appears, then the index. Nothing is
//! remuxed: the files are the segmenter's CMAF output, byte for byte.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_media::hls::HlsSnapshot;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::index::{Entry, Index};
use super::store::Store;
use super::{Active, Source};
use crate::metrics::Metrics;

/// What a recorder is started with.
pub(super) struct Job<S> {
    pub store: Arc<S>,
    /// `APP/NAME/ID`.
    pub prefix: String,
    pub key: sluice_media::stream_name::StreamKey,
    /// Its registration in `active`.
    pub registration: u64,
    /// The stream's HLS snapshots.
    pub source: Source,
    /// Later sources of the same stream (a publisher that came back).
    pub more: mpsc::Receiver<Source>,
    /// How long an ended source waits for the next before the recording is finished.
    pub reconnect_wait: Duration,
    pub active: Arc<Active>,
    pub metrics: Metrics,
}

/// Record one stream: each source until it is released or gone, then the next one that comes
/// within `reconnect_wait` (as a new period); then finish the index.
pub(super) async fn run<S: Store>(job: Job<S>) {
    let Job {
        store,
        prefix,
        key,
        registration,
        mut source,
        mut more,
        reconnect_wait,
        active,
        metrics,
    } = job;
    let mut rec = Recorder {
        store,
        prefix,
        metrics,
        index: Index::default(),
        inits: HashSet::new(),
        last_msn: None,
        new_period: false,
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
    rec.finish().await;
    active.finished();
}

struct Recorder<S> {
    store: Arc<S>,
    /// `APP/NAME/ID`.
    prefix: String,
    metrics: Metrics,
    index: Index,
    inits: HashSet<u32>,
    last_msn: Option<u64>,
    /// The next segment starts a new period (a new source).
    new_period: bool,
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
            let missed = self.last_msn.map_or(0, |last| seg.msn - last - 1);
            if missed > 0 {
                // The window moved past segments before we stored them (a stalled disk).
                self.metrics.recording_errors.inc_by(missed);
                warn!(recording = %self.prefix, missed, "recording: segments lost");
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
            self.index.push(Entry {
                msn: seg.msn,
                duration: seg.duration,
                init_id: seg.init_id,
                discontinuity: !fresh && (seg.discontinuity || missed > 0 || self.new_period),
                bytes: seg.len() as u64,
            });
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
        self.put(&key, vec![text]).await;
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
