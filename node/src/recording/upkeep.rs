//! Keeping a store of recordings in order: finishing what a crash (or a dead home) left open,
//! dropping half-written leftovers, and retention. All from one listing of the store, so a
//! bucket is kept as a directory is.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;

use super::inventory::{self, Stored, INDEX};
use super::retention::{self, RecInfo};
use super::store::Store;
use super::{index, Recordings};
use crate::lock::lock;

/// Recordings read at once (a bucket answers each in a round trip).
const CONCURRENCY: usize = 16;

/// Finished recordings remembered (a finished index never changes back); past it, forgotten
/// all at once and read again.
const MAX_KNOWN_FINISHED: usize = 100_000;

impl Recordings {
    /// Finish the recordings a crash left open (their index not ended) and drop half-written
    /// files, of those untouched for `min_age`: run at start before any recorder with zero
    /// (standalone: nobody else writes here), and every so often in a cluster, where another
    /// origin may be carrying a recording on in a shared store. A recording that cannot be
    /// read is logged, counted and left for the next time; only a listing that fails is an
    /// error. Returns how many were finished.
    pub async fn recover(&self, min_age: Duration) -> std::io::Result<usize> {
        let recs = inventory::take(self.store.as_ref(), "").await?;
        let jobs = recs.into_iter().map(|rec| self.recover_logged(rec, min_age));
        let finished = futures_util::stream::iter(jobs)
            .buffer_unordered(CONCURRENCY)
            .filter(|finished| std::future::ready(*finished))
            .count()
            .await;
        Ok(finished)
    }

    /// Recover `rec`, a failure logged and counted; whether it was finished now.
    async fn recover_logged(&self, rec: Stored, min_age: Duration) -> bool {
        let prefix = rec.prefix();
        match self.recover_one(rec, min_age).await {
            Ok(finished) => finished,
            Err(e) => {
                self.metrics.recording_errors.inc();
                tracing::warn!(recording = %prefix, error = %e, "recovering a recording failed");
                false
            }
        }
    }

    /// Recover `rec` (see [`Recordings::recover`]); whether it was finished now.
    async fn recover_one(&self, rec: Stored, min_age: Duration) -> std::io::Result<bool> {
        let now = SystemTime::now();
        let old = |t: SystemTime| {
            min_age.is_zero() || now.duration_since(t).is_ok_and(|age| age >= min_age)
        };
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
            return Ok(false);
        };
        if !old(written) || self.finished(&rec).await? {
            return Ok(false);
        }
        // The listing may be a while old: a home that carried the recording on since must not
        // have it finished under it. Looked at again just before.
        let fresh = inventory::take(self.store.as_ref(), &prefix).await?.pop();
        if !fresh.and_then(|r| r.index).is_some_and(|(_, written)| old(written)) {
            return Ok(false);
        }
        let key = format!("{prefix}/{INDEX}");
        // Another origin sharing the store may delete or finish it meanwhile.
        let Some(text) = self.store.get(&key).await? else { return Ok(false) };
        let Some(done) = index::finish_text(&String::from_utf8_lossy(&text)) else {
            return Ok(false);
        };
        self.store.put(&key, vec![done.into()]).await?;
        tracing::info!(recording = %prefix, "recording finished after a restart");
        self.active.changed(&prefix);
        Ok(true)
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
        let listed = inventory::take(self.store.as_ref(), "").await?;
        let facts = listed.iter().cloned().map(|rec| self.retention_facts(rec));
        let recs: Vec<RecInfo> =
            futures_util::stream::iter(facts).buffered(CONCURRENCY).collect().await;
        let now_ms = u64::try_from(now_ms).unwrap_or(u64::MAX);
        let mut deleted = 0;
        for prefix in retention::expired(&recs, now_ms, &self.retention) {
            // Finished, read again rather than remembered, just before it goes.
            let Some(rec) = listed.iter().find(|r| r.prefix() == prefix) else { continue };
            if !inventory::is_finished(self.store.as_ref(), rec).await? {
                continue;
            }
            // Another origin sharing the store may delete it first: gone either way.
            self.store.delete_prefix(&prefix).await?;
            tracing::info!(recording = %prefix, "recording deleted by retention");
            self.forget(&prefix);
            deleted += 1;
        }
        self.metrics.recordings_deleted.inc_by(deleted as u64);
        Ok(deleted)
    }

    /// What retention weighs of `rec`. One whose index cannot be read counts as not finished:
    /// it is never deleted.
    async fn retention_facts(&self, rec: Stored) -> RecInfo {
        let finished = self.finished(&rec).await.unwrap_or_else(|e| {
            tracing::warn!(recording = %rec.prefix(), error = %e, "reading a recording's index failed");
            false
        });
        let (prefix, started_ms) = (rec.prefix(), rec.started_ms());
        RecInfo { app: rec.app, prefix, started_ms, bytes: rec.bytes, finished }
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
