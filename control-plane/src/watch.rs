//! The `Watch` event stream: node and stream events from successive cache snapshots.
//!
//! [`diff`] (sans-IO) turns one snapshot and the next into events. [`events`] runs one small
//! task per call that follows the replica's cache and feeds the events into a bounded channel
//! tonic drains. The task ends when the client goes away (the channel closes, or a send fails),
//! when the replica stops (UNAVAILABLE, so the client reconnects elsewhere), or when the client
//! does not keep up: a watcher whose buffer stays full for [`SLOW_CLIENT_GRACE`] gets
//! RESOURCE_EXHAUSTED instead of an ever-growing buffer.
//! Snapshots are coalesced between deliveries (the task diffs what it last delivered against
//! the newest snapshot), so a burst of load reports costs nothing and never queues.

use crate::convert::{node, origin_ring, stream};
use crate::counters::{Counters, WatcherGuard};
use crate::service::ControlPlane;
use sluice_cluster::types::{NodeRecord, Snapshot, StreamRecord};
use sluice_cluster::Ring;
use sluice_proto::control::v1 as pb;
use sluice_proto::control::v1::watch_event::Kind;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tonic::Status;

/// What `Watch` returns.
pub type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchEvent, Status>> + Send + 'static>>;

/// Events buffered per watcher before it counts as slow.
pub const BUFFER: usize = 256;

/// How long a full buffer may stay full before the watcher is cut off.
pub const SLOW_CLIENT_GRACE: Duration = Duration::from_secs(5);

/// What an event says about a node: everything the API shows of it but its load report (load
/// reports arrive every ~2 s and alone make no event).
fn node_facts(snap: &Snapshot, n: &NodeRecord) -> pb::Node {
    pb::Node { load: None, ..node(snap, n) }
}

/// Whether a stream's claim changed in a way events report: another origin or other codecs.
fn stream_changed(old: &StreamRecord, new: &StreamRecord) -> bool {
    old.info.origin != new.info.origin || old.info.codecs != new.info.codecs
}

/// The events that lead from `old` to `new`, stamped with `new`'s revision and `at_ms`. Order:
/// nodes added or changed, then streams started, changed or ended, then nodes removed, so a
/// client sees a stream's origin before the stream and the stream's end before its origin's.
/// A record re-created under the same key (a new `create_revision`: the node re-registered,
/// the stream was published again) is reported as gone and back, in that order.
pub fn diff(old: &Snapshot, new: &Snapshot, at_ms: u64) -> Vec<pb::WatchEvent> {
    let event = |kind: Kind, node: Option<pb::Node>, stream: Option<pb::Stream>| pb::WatchEvent {
        kind: kind.into(),
        node,
        stream,
        revision: new.revision,
        at_ms,
    };
    let mut out = Vec::new();
    for (key, n) in &new.nodes {
        match old.nodes.get(key) {
            None => out.push(event(Kind::NodeAdded, Some(node(new, n)), None)),
            Some(o) if o.create_revision != n.create_revision => {
                out.push(event(Kind::NodeRemoved, Some(node(old, o)), None));
                out.push(event(Kind::NodeAdded, Some(node(new, n)), None));
            }
            Some(o) if node_facts(old, o) != node_facts(new, n) => {
                out.push(event(Kind::NodeChanged, Some(node(new, n)), None));
            }
            Some(_) => {}
        }
    }
    // The rings (for a stream's home) only when a stream event needs them.
    let (mut old_ring, mut new_ring): (Option<Ring>, Option<Ring>) = (None, None);
    let shown = |snap: &Snapshot, ring: &mut Option<Ring>, s: &StreamRecord| {
        stream(snap, ring.get_or_insert_with(|| origin_ring(snap)), s)
    };
    for (key, s) in &new.streams {
        match old.streams.get(key) {
            None => out.push(event(Kind::StreamStarted, None, Some(shown(new, &mut new_ring, s)))),
            Some(o) if o.create_revision != s.create_revision => {
                out.push(event(Kind::StreamEnded, None, Some(shown(old, &mut old_ring, o))));
                out.push(event(Kind::StreamStarted, None, Some(shown(new, &mut new_ring, s))));
            }
            Some(o) if stream_changed(o, s) => {
                out.push(event(Kind::StreamChanged, None, Some(shown(new, &mut new_ring, s))));
            }
            Some(_) => {}
        }
    }
    for (key, s) in &old.streams {
        if !new.streams.contains_key(key) {
            out.push(event(Kind::StreamEnded, None, Some(shown(old, &mut old_ring, s))));
        }
    }
    for (key, n) in &old.nodes {
        if !new.nodes.contains_key(key) {
            out.push(event(Kind::NodeRemoved, Some(node(old, n)), None));
        }
    }
    out
}

/// The events for one `Watch` call.
pub fn events(cp: &ControlPlane, req: pb::WatchRequest) -> EventStream {
    let limits = Limits { buffer: BUFFER, grace: SLOW_CLIENT_GRACE };
    follow(cp.subscribe(), cp.closing(), req.initial, cp.counters(), limits)
}

/// How much one watcher may lag: `buffer` events may wait unread for up to `grace`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub buffer: usize,
    pub grace: Duration,
}

/// Start the task that follows `snapshots` for one watcher until the client goes away, lags
/// past `limits`, or `closing` turns true. With `initial`, the first events replay the
/// current state (a diff from the empty snapshot).
pub fn follow(
    mut snapshots: watch::Receiver<Snapshot>,
    closing: watch::Receiver<bool>,
    initial: bool,
    counters: &Arc<Counters>,
    limits: Limits,
) -> EventStream {
    // One slot more than the buffer, reserved up front for the status that ends the stream.
    let (tx, rx) = mpsc::channel(limits.buffer.max(1) + 1);
    let seen = if initial { Snapshot::default() } else { snapshots.borrow_and_update().clone() };
    let grace = limits.grace;
    let task = Task { tx, grace, counters: counters.clone(), _guard: counters.watcher() };
    tokio::spawn(task.run(snapshots, closing, seen));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// One watcher's task.
struct Task {
    tx: mpsc::Sender<Result<pb::WatchEvent, Status>>,
    grace: Duration,
    counters: Arc<Counters>,
    /// Keeps the watcher gauge up while the task runs.
    _guard: WatcherGuard,
}

/// How delivering one event went.
enum Delivery {
    Sent,
    /// The client went away (the receiving stream was dropped).
    Gone,
    /// The buffer stayed full for the whole grace period.
    Slow,
}

impl Task {
    async fn run(
        self,
        mut snapshots: watch::Receiver<Snapshot>,
        mut closing: watch::Receiver<bool>,
        mut seen: Snapshot,
    ) {
        let Ok(last_words) = self.tx.clone().try_reserve_owned() else { return };
        loop {
            let current = snapshots.borrow_and_update().clone();
            for event in diff(&seen, &current, now_ms()) {
                match self.deliver(event).await {
                    Delivery::Sent => {}
                    Delivery::Gone => return,
                    Delivery::Slow => {
                        self.counters.slow_watcher();
                        tracing::info!("a Watch client stopped reading its events: cut off");
                        last_words.send(Err(Status::resource_exhausted(format!(
                            "Watch client too slow: events went unread for {:?}; call Watch \
                             again with initial=true to resynchronise",
                            self.grace
                        ))));
                        return;
                    }
                }
            }
            seen = current;
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return },
                () = self.tx.closed() => return,
                _ = closing.wait_for(|c| *c) => {
                    last_words.send(Err(Status::unavailable(
                        "the control plane replica is stopping: call Watch on another one",
                    )));
                    return;
                }
            }
        }
    }

    async fn deliver(&self, event: pb::WatchEvent) -> Delivery {
        match self.tx.try_send(Ok(event)) {
            Ok(()) => Delivery::Sent,
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Gone,
            Err(mpsc::error::TrySendError::Full(event)) => {
                match tokio::time::timeout(self.grace, self.tx.reserve()).await {
                    Ok(Ok(permit)) => {
                        permit.send(event);
                        Delivery::Sent
                    }
                    Ok(Err(_)) => Delivery::Gone,
                    Err(_) => Delivery::Slow,
                }
            }
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch, for the events' `at_ms`.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
