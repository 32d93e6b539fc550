//! The viewing side of a stream: a cursor into the stream's log plus a wake-up receiver.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use super::log::{Cursor, Delivery};
use super::stream::StreamEntry;
use super::HubInner;
use crate::metrics::Protocol;

/// Held by one viewer's connection. Dropping it leaves the stream.
///
/// Driver contract: `await` [`Subscription::changed`] (cancel-safe, so it can sit in a
/// `select!` beside socket I/O), then call [`Subscription::collect`] and write what it returns.
pub struct Subscription {
    hub: Arc<HubInner>,
    entry: Arc<StreamEntry>,
    cursor: Cursor,
    wake: watch::Receiver<u64>,
    viewers: Gauge,
    playing: bool,
    /// A relay feed (counted in the entry's `relays` while it lives).
    relay: bool,
    /// The hub's eviction counter, seen as it was at subscription; `None` for relay feeds,
    /// which [`super::Hub::close_viewers`] leaves alone.
    evict: Option<watch::Receiver<u64>>,
    /// Something to collect without waiting: [`Subscription::changed`] saw a change (and
    /// marked it seen), or the last collection stopped at its byte budget or left a notice.
    pending: bool,
}

impl Subscription {
    pub(super) fn new(hub: Arc<HubInner>, entry: Arc<StreamEntry>, protocol: Protocol) -> Self {
        let mut wake = if protocol == Protocol::Relay {
            entry.wake_relay.subscribe()
        } else {
            entry.wake.subscribe()
        };
        wake.mark_changed();
        let viewers = hub.metrics.viewers(protocol);
        let cursor = entry.log().new_cursor();
        let relay = protocol == Protocol::Relay;
        if relay {
            entry.relays.fetch_add(1, Ordering::AcqRel);
        }
        // A new receiver has seen the counter's current value: a later bump closes the viewer.
        let evict = (!relay).then(|| hub.evict.subscribe());
        Subscription {
            hub,
            entry,
            cursor,
            wake,
            viewers,
            playing: false,
            relay,
            evict,
            pending: false,
        }
    }

    pub fn key(&self) -> &sluice_media::stream_name::StreamKey {
        &self.entry.key
    }

    pub fn is_live(&self) -> bool {
        self.entry.is_live()
    }

    /// Wait up to `timeout` for the stream to have a publisher. Returns whether it does.
    pub async fn wait_live(&mut self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_live() {
                // Whatever rang meanwhile was marked seen here: the caller collects next.
                self.pending = true;
                return true;
            }
            match tokio::time::timeout_at(deadline, self.wake.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.is_live(),
            }
        }
    }

    /// Mark this viewer as playing (counted in the viewers gauge).
    pub fn start_playing(&mut self) {
        if !self.playing {
            self.playing = true;
            self.viewers.inc();
        }
    }

    /// Whether the hub closed this viewer ([`super::Hub::close_viewers`]): its driver ends it.
    /// Lock-free (the channel's version, not its value): drivers ask on every wake-up.
    pub fn is_closed(&self) -> bool {
        self.evict.as_ref().is_some_and(|rx| rx.has_changed().unwrap_or(true))
    }

    /// Resolves when the stream changed since the last [`Subscription::collect`], or when the
    /// viewer was closed (check [`Subscription::is_closed`]: [`super::Hub::close_viewers`]
    /// wakes every stream's viewers, so one wait covers both).
    pub async fn changed(&mut self) {
        if self.wake.changed().await.is_err() {
            // The sender lives as long as the entry, which we hold: never happens.
            std::future::pending::<()>().await;
        }
        // `changed` marked the change seen: remember it for `has_pending`.
        self.pending = true;
    }

    /// Whether a `collect` may return something now: the stream changed since the last one
    /// (rung, or seen by [`Subscription::changed`]), or that one left something behind.
    /// Lock-free (drivers ask on every wake-up, per frame); it may say yes when the change was
    /// not for this viewer (a close ringing every stream), and the `collect` then returns
    /// nothing.
    pub fn has_pending(&self) -> bool {
        self.pending || self.wake.has_changed().unwrap_or(false)
    }

    /// Append what this viewer has not had yet (up to about `max_bytes`) to `out`.
    pub fn collect(&mut self, out: &mut Vec<Delivery>, max_bytes: usize) {
        // Seen before the log is read: a change after this point rings again.
        self.wake.mark_unchanged();
        let max_lag = self.hub.config.viewer_max_lag;
        let log = self.entry.log();
        let skipped = log.collect(&mut self.cursor, out, max_bytes, max_lag);
        self.pending = log.has_pending(&self.cursor);
        drop(log);
        if skipped > 0 {
            self.hub.metrics.skipped_frames.inc_by(skipped);
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.playing {
            self.viewers.dec();
        }
        if self.relay {
            self.entry.relays.fetch_sub(1, Ordering::AcqRel);
        }
        self.entry.viewers.fetch_sub(1, Ordering::AcqRel);
        self.hub.release(&self.entry);
    }
}
