//! Keeping a store of recordings in order: finishing what a crash (or a dead home) left open,
//! dropping half-written leftovers, and retention. All from one listing of the store, so a
//! bucket is kept as a directory is.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::inventory::{self, Stored, INDEX};
use super::retention::{self, RecInfo};
use super::store::Store;
use super::{index, Recordings};
use crate::lock::lock;

/// Finished recordings remembered (a finished index never changes back); past it, forgotten
/// all at once and read again.
const MAX_KNOWN_FINISHED: usize = 100_000;

impl Recordings {
    /// Finish the recordings a crash left open (their index not ended) and drop half-written
    /// files, of those untouched for `min_age`: run at start before any recorder with zero
    /// (standalone: nobody else writes here), and every so often in a cluster, where another
    /// origin may be carrying a recording on in a shared store. Returns how many were
    /// finished.
    pub async fn recover(&self, min_age: Duration) -> std::io::Result<usize> {
        let now = SystemTime::now();
        let old = |t: SystemTime| {
            min_age.is_zero() || now.duration_since(t).is_ok_and(|age| age >= min_age)
        };
        let mut finished = 0;
        for rec in inventory::take(self.store.as_ref(), "").await? {
            let prefix = rec.prefix();
            for (key, modified) in &rec.parts {
                if old(*modified) {
                    self.store.delete(key).await?;
                }
            }
            let Some((_, written)) = rec.index else {
                // A crash before its first index (or a file written after a delete): nothing
                // plays it and nothing would ever remove it.
                if old(rec.newest) {
                    self.store.delete_prefix(&prefix).await?;
                    tracing::info!(recording = %prefix, "recording without an index removed");
                }
                continue;
            };
            if !old(written) || self.finished(&rec).await? {
                continue;
            }
            let key = format!("{prefix}/{INDEX}");
            // Another origin sharing the store may delete or finish it meanwhile.
            let Some(text) = self.store.get(&key).await? else { continue };
            let Some(done) = index::finish_text(&String::from_utf8_lossy(&text)) else { continue };
            self.store.put(&key, vec![done.into()]).await?;
            tracing::info!(recording = %prefix, "recording finished after a restart");
            self.active.changed(&prefix);
            finished += 1;
        }
        Ok(finished)
    }

    /// Whether `rec` is finished (remembered once it is).
    async fn finished(&self, rec: &Stored) -> std::io::Result<bool> {
        let prefix = rec.prefix();
        if lock(&self.known_finished).contains(&prefix) {
            return Ok(true);
        }
        let finished = inventory::is_finished(self.store.as_ref(), rec).await?;
        if finished {
            let mut known = lock(&self.known_finished);
            if known.len() >= MAX_KNOWN_FINISHED {
                known.clear();
            }
            known.insert(prefix);
        }
        Ok(finished)
    }

    /// Apply the retention policy now: delete what it says (finished recordings only).
    /// Returns how many recordings were deleted.
    pub async fn sweep(&self) -> std::io::Result<usize> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let mut recs = Vec::new();
        for rec in inventory::take(self.store.as_ref(), "").await? {
            let finished = self.finished(&rec).await?;
            let (app, prefix, started_ms) = (rec.app.clone(), rec.prefix(), rec.started_ms());
            recs.push(RecInfo { app, prefix, started_ms, bytes: rec.bytes, finished });
        }
        let now_ms = u64::try_from(now_ms).unwrap_or(u64::MAX);
        let doomed = retention::expired(&recs, now_ms, &self.retention);
        for prefix in &doomed {
            // Another origin sharing the store may delete it first: gone either way.
            self.store.delete_prefix(prefix).await?;
            tracing::info!(recording = %prefix, "recording deleted by retention");
            self.forget(prefix);
        }
        self.metrics.recordings_deleted.inc_by(doomed.len() as u64);
        Ok(doomed.len())
    }

    /// Recording `prefix` was deleted: whatever is remembered of it goes.
    pub(super) fn forget(&self, prefix: &str) {
        lock(&self.known_finished).remove(prefix);
        self.layouts.remove(prefix);
        self.active.changed(prefix);
    }

    /// In a cluster: finish, every `period`, the recordings left open and untouched for
    /// `min_age` (their home died and no origin carried them on).
    pub fn spawn_stale_finisher(
        self: &Arc<Self>,
        period: Duration,
        min_age: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match this.recover(min_age).await {
                    Ok(0) => {}
                    Ok(_) => this.active.finished(),
                    Err(e) => {
                        this.metrics.recording_errors.inc();
                        tracing::warn!(error = %e, "finishing stale recordings failed");
                    }
                }
            }
        })
    }

    /// Apply retention at start, every so often, and whenever a recording finishes (`None`
    /// when no retention is configured).
    pub fn spawn_retention(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        if self.retention.is_off() {
            return None;
        }
        let period = self.retention.max_age.map_or(Duration::from_secs(60), |age| {
            (age / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
        });
        let this = self.clone();
        Some(tokio::spawn(async move {
            loop {
                if let Err(e) = this.sweep().await {
                    this.metrics.recording_errors.inc();
                    tracing::warn!(error = %e, "recording retention failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(period) => {}
                    _ = this.active.finished.notified() => {}
                }
            }
        }))
    }
}
