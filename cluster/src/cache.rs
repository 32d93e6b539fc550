//! The watch cache: how listings and watch events become the local [`Snapshot`], and where the
//! next list-or-watch attempt starts.
//!
//! Sans-IO: the backends (etcd.rs, memory.rs) do the reading and hand the results here; the
//! rules that decide what the cache shows live in this one place, tested without a store.
//!
//! - A full listing at revision R replaces the snapshot ([`from_list`]).
//! - Watch events are applied in order ([`apply_changes`]): puts insert or replace, deletes
//!   remove; the snapshot's revision never moves backwards.
//! - Keys that do not parse and values that [`crate::values`] refuses are ignored (logged at
//!   debug level), never trusted.
//! - After a watch ends, [`Resume`] says whether the next attempt watches on from the cache's
//!   revision + 1 or lists again first (after a compaction or a cancel the history it would
//!   need may be gone).

use crate::keys::{KeyKind, Keyspace};
use crate::types::NodeId;
use crate::types::{
    DrainRecord, KickOrder, KickRecord, LoadRecord, NodeRecord, RawKv, Snapshot, StreamRecord,
};
use crate::values::{parse_drain, parse_load, parse_node, parse_small, parse_stream};

/// Build a snapshot from a full listing of the keyspace at `revision`.
pub(crate) fn from_list(
    keys: &Keyspace,
    revision: i64,
    kvs: impl IntoIterator<Item = RawKv>,
) -> Snapshot {
    let mut snap = Snapshot { revision, connected: true, ..Snapshot::default() };
    for kv in kvs {
        apply_put(&mut snap, keys, &kv);
    }
    snap
}

/// Replace `current` with `fresh` (a new full listing) if the keyspace's contents differ, or if
/// `current` is the empty snapshot before the first listing; `true` if replaced. Readers are
/// woken only on a real change, not on every revision of a shared store.
pub(crate) fn replace_if_changed(current: &mut Snapshot, fresh: Snapshot) -> bool {
    let modified = current.revision == 0
        || current.connected != fresh.connected
        || current.nodes != fresh.nodes
        || current.streams != fresh.streams
        || current.loads != fresh.loads
        || current.drains != fresh.drains
        || current.kicks != fresh.kicks
        || current.ladders != fresh.ladders
        || current.schedule != fresh.schedule
        || current.takeovers != fresh.takeovers;
    if modified {
        *current = fresh;
    }
    modified
}

/// Mark the cache connected or not; `true` if that changed (readers are woken only then).
pub(crate) fn set_connected(current: &mut Snapshot, connected: bool) -> bool {
    std::mem::replace(&mut current.connected, connected) != connected
}

/// One change reported by a watch.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// A key was created or updated.
    Put(RawKv),
    /// A key was deleted (explicitly, or by its lease expiring) at `mod_revision`.
    Delete { key: String, mod_revision: i64 },
}

/// Apply one watch response's `changes` in order; `header_revision` is the store revision the
/// response was sent at (0 if unknown). The snapshot's revision becomes the largest of its own,
/// every change's and the header's.
pub(crate) fn apply_changes(
    snap: &mut Snapshot,
    keys: &Keyspace,
    changes: impl IntoIterator<Item = Change>,
    header_revision: i64,
) {
    for change in changes {
        let revision = match change {
            Change::Put(kv) => {
                let revision = kv.mod_revision;
                apply_put(snap, keys, &kv);
                revision
            }
            Change::Delete { key, mod_revision } => {
                apply_delete(snap, keys, &key);
                mod_revision
            }
        };
        snap.revision = snap.revision.max(revision);
    }
    snap.revision = snap.revision.max(header_revision);
}

/// Apply a put (create or update). Keys that do not parse and values that are not valid JSON of
/// the expected shape are ignored (logged at debug level).
fn apply_put(snap: &mut Snapshot, keys: &Keyspace, kv: &RawKv) {
    match keys.parse(&kv.key) {
        Some(KeyKind::Node { role, id }) => match parse_node(&kv.value) {
            Some(info) => {
                let rec = NodeRecord {
                    role,
                    id: id.clone(),
                    info,
                    lease: kv.lease,
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                };
                snap.nodes.insert((role, id), rec);
            }
            None => tracing::debug!(key = %kv.key, "ignoring bad node value"),
        },
        Some(KeyKind::Stream(stream)) => match parse_stream(&kv.value) {
            Some(info) => {
                let rec = StreamRecord {
                    stream: stream.clone(),
                    info,
                    lease: kv.lease,
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                };
                snap.streams.insert(stream, rec);
            }
            None => tracing::debug!(key = %kv.key, "ignoring bad stream value"),
        },
        Some(KeyKind::Load { role, id }) => match parse_load(&kv.value) {
            Some(report) => {
                let rec = LoadRecord {
                    role,
                    id: id.clone(),
                    report,
                    lease: kv.lease,
                    mod_revision: kv.mod_revision,
                };
                snap.loads.insert((role, id), rec);
            }
            None => tracing::debug!(key = %kv.key, "ignoring bad load value"),
        },
        Some(KeyKind::DrainOrder { role, id }) => match parse_drain(&kv.value) {
            Some(order) => {
                let rec =
                    DrainRecord { role, id: id.clone(), order, mod_revision: kv.mod_revision };
                snap.drains.insert((role, id), rec);
            }
            None => tracing::debug!(key = %kv.key, "ignoring bad drain order"),
        },
        Some(KeyKind::KickOrder(stream)) => match parse_small::<KickOrder>(&kv.value) {
            Some(order) => {
                let rec =
                    KickRecord { stream: stream.clone(), order, mod_revision: kv.mod_revision };
                snap.kicks.insert(stream, rec);
            }
            None => tracing::debug!(key = %kv.key, "ignoring bad kick order"),
        },
        Some(KeyKind::Ladder(app)) => match crate::values::parse_ladder(&kv.value) {
            Some(value) => {
                let rec = crate::ladder::LadderRecord {
                    app: app.clone(),
                    renditions: value.renditions,
                    mod_revision: kv.mod_revision,
                };
                snap.ladders.insert(app, rec);
            }
            None => tracing::debug!(key = %kv.key, "ignoring bad ladder"),
        },
        Some(KeyKind::ScheduleEntry(id)) => match crate::values::parse_schedule_entry(&kv.value) {
            Some(value)
                if snap.schedule.len() < crate::schedule::MAX_ENTRIES
                    || snap.schedule.contains_key(&id) =>
            {
                let rec = crate::schedule::EntryRecord {
                    id: id.clone(),
                    value,
                    mod_revision: kv.mod_revision,
                };
                snap.schedule.insert(id, rec);
            }
            Some(_) => tracing::debug!(key = %kv.key, "ignoring a schedule entry past the bound"),
            None => tracing::debug!(key = %kv.key, "ignoring bad schedule entry"),
        },
        Some(KeyKind::Takeover(stream)) => match parse_small::<NodeId>(&kv.value) {
            Some(node) => {
                snap.takeovers.insert(stream, node);
            }
            None => tracing::debug!(key = %kv.key, "ignoring bad takeover request"),
        },
        None => tracing::debug!(key = %kv.key, "ignoring foreign key"),
    }
}

/// Apply a delete (explicit, or a lease expiring).
fn apply_delete(snap: &mut Snapshot, keys: &Keyspace, key: &str) {
    match keys.parse(key) {
        Some(KeyKind::Node { role, id }) => {
            snap.nodes.remove(&(role, id));
        }
        Some(KeyKind::Stream(stream)) => {
            snap.streams.remove(&stream);
        }
        Some(KeyKind::Load { role, id }) => {
            snap.loads.remove(&(role, id));
        }
        Some(KeyKind::DrainOrder { role, id }) => {
            snap.drains.remove(&(role, id));
        }
        Some(KeyKind::KickOrder(stream)) => {
            snap.kicks.remove(&stream);
        }
        Some(KeyKind::Ladder(app)) => {
            snap.ladders.remove(&app);
        }
        Some(KeyKind::ScheduleEntry(id)) => {
            snap.schedule.remove(&id);
        }
        Some(KeyKind::Takeover(stream)) => {
            snap.takeovers.remove(&stream);
        }
        None => {}
    }
}

/// How the next attempt to follow the store begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// List the keyspace (replacing the snapshot), then watch from the listed revision + 1.
    List,
    /// Watch from `from` (the cache's revision + 1) without listing: nothing is missed.
    Watch { from: i64 },
}

/// How one attempt to follow the store ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchEnd {
    /// The watch stream closed cleanly.
    Closed,
    /// The store compacted the history the watch needed, or cancelled the watch: what happened
    /// meanwhile can only be learnt by listing again.
    HistoryLost,
    /// The list or watch request failed (connection trouble). The next attempt resumes from
    /// the cache's revision; if that history is gone by then, the store answers with a
    /// compaction and the attempt after that lists.
    Failed,
}

/// The resume rule of the cache loop: list first on the very first attempt and after the
/// history was lost, otherwise watch on from where the cache is.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resume {
    may_resume: bool,
}

impl Resume {
    /// Where the next attempt starts, given the revision the cache reflects now.
    pub(crate) fn start(&self, cached_revision: i64) -> Start {
        if self.may_resume && cached_revision > 0 {
            Start::Watch { from: cached_revision.saturating_add(1) }
        } else {
            Start::List
        }
    }

    /// Record how the last attempt ended.
    pub(crate) fn ended(&mut self, end: WatchEnd) {
        self.may_resume = end != WatchEnd::HistoryLost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{NodeId, Role};
    use sluice_media::stream_name::StreamKey;
    use std::collections::BTreeSet;

    fn kv(key: &str, value: &str, rev: i64) -> RawKv {
        RawKv {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            create_revision: rev,
            mod_revision: rev,
            lease: 7,
        }
    }

    fn delete(key: &str, rev: i64) -> Change {
        Change::Delete { key: key.into(), mod_revision: rev }
    }

    #[test]
    fn snapshot_builds_and_ignores_garbage() {
        let ks = Keyspace::default();
        let mut snap = from_list(
            &ks,
            10,
            [
                kv("/sluice/nodes/origin/a", r#"{"state":"ready","extra":1}"#, 2),
                kv("/sluice/nodes/origin/b", r#"{"state":"draining"}"#, 3),
                kv("/sluice/nodes/edge/e", "{}", 4),
                kv("/sluice/nodes/origin/c", "not json", 5),
                kv("/sluice/streams/live/x", r#"{"origin":"a"}"#, 6),
                kv("/sluice/streams/live/y", r#"{"origin":"../x"}"#, 7),
                kv("/other/nodes/origin/z", "{}", 8),
            ],
        );
        assert_eq!(snap.revision, 10);
        assert_eq!(snap.nodes.len(), 3);
        let a = NodeId::new("a").unwrap();
        assert_eq!(snap.ready_origins(), BTreeSet::from([a.clone()]));
        assert_eq!(snap.nodes_of(Role::Edge).count(), 1);
        let x = StreamKey::parse("live", "x").unwrap().0;
        assert_eq!(snap.stream(&x).map(|s| (s.info.origin.clone(), s.revision())), Some((a, 6)));
        assert_eq!(snap.streams.len(), 1);
        apply_changes(
            &mut snap,
            &ks,
            [delete("/sluice/streams/live/x", 11), delete("/sluice/nodes/origin/a", 12)],
            0,
        );
        assert!(snap.streams.is_empty());
        assert!(snap.ready_origins().is_empty());
        assert_eq!(snap.revision, 12);
    }

    #[test]
    fn watch_changes_apply_in_order_and_revision_never_goes_back() {
        let ks = Keyspace::default();
        let mut snap = from_list(&ks, 5, []);
        let x = StreamKey::parse("live", "x").unwrap().0;
        // Created, updated and deleted in one response: the delete wins.
        apply_changes(
            &mut snap,
            &ks,
            [
                Change::Put(kv("/sluice/streams/live/x", r#"{"origin":"a"}"#, 6)),
                Change::Put(kv("/sluice/streams/live/x", r#"{"origin":"b"}"#, 7)),
                delete("/sluice/streams/live/x", 8),
            ],
            9,
        );
        assert_eq!(snap.stream(&x), None);
        assert_eq!(snap.revision, 9);
        // An older header or change revision does not move the snapshot back.
        apply_changes(
            &mut snap,
            &ks,
            [Change::Put(kv("/sluice/streams/live/x", r#"{"origin":"b"}"#, 3))],
            4,
        );
        assert_eq!(snap.revision, 9);
        assert_eq!(snap.stream(&x).map(|s| s.info.origin.as_str()), Some("b"));
        // A foreign key still advances the revision (the store moved on) but adds nothing.
        apply_changes(&mut snap, &ks, [Change::Put(kv("/elsewhere/x", "{}", 20))], 0);
        assert_eq!(snap.revision, 20);
        assert_eq!(snap.streams.len(), 1);
    }

    #[test]
    fn a_listing_replaces_only_on_a_real_change() {
        let ks = Keyspace::default();
        let mut cur = Snapshot::default();
        // The first listing always lands, even when empty.
        assert!(replace_if_changed(&mut cur, from_list(&ks, 3, [])));
        assert_eq!(cur.revision, 3);
        // Another cluster's writes move the store's revision but not this keyspace.
        assert!(!replace_if_changed(&mut cur, from_list(&ks, 4, [kv("/x/nodes/edge/e", "{}", 4)])));
        assert_eq!(cur.revision, 3);
        let listing = [kv("/sluice/nodes/edge/e", "{}", 5)];
        assert!(replace_if_changed(&mut cur, from_list(&ks, 5, listing)));
        assert_eq!((cur.revision, cur.nodes.len()), (5, 1));
    }

    #[test]
    fn resume_lists_first_and_after_lost_history() {
        let mut resume = Resume::default();
        assert_eq!(resume.start(0), Start::List);
        assert_eq!(resume.start(42), Start::List, "the first attempt always lists");
        resume.ended(WatchEnd::Failed);
        assert_eq!(resume.start(42), Start::Watch { from: 43 });
        resume.ended(WatchEnd::Closed);
        assert_eq!(resume.start(42), Start::Watch { from: 43 });
        assert_eq!(resume.start(0), Start::List, "nothing cached yet: list");
        resume.ended(WatchEnd::HistoryLost);
        assert_eq!(resume.start(42), Start::List);
        resume.ended(WatchEnd::Failed);
        assert_eq!(resume.start(i64::MAX), Start::Watch { from: i64::MAX });
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;
    use crate::types::{NodeId, Role};

    fn put(key: &str, value: &[u8], rev: i64) -> Change {
        Change::Put(RawKv {
            key: key.into(),
            value: value.to_vec(),
            create_revision: rev,
            mod_revision: rev,
            lease: 9,
        })
    }

    #[test]
    fn loads_enter_and_leave_the_snapshot() {
        let ks = Keyspace::default();
        let mut snap = from_list(&ks, 1, []);
        let id = NodeId::new("e1").unwrap();
        apply_changes(
            &mut snap,
            &ks,
            [
                put("/sluice/load/edge/e1", br#"{"streams":4}"#, 2),
                put("/sluice/load/edge/e2", b"garbage", 3),
            ],
            3,
        );
        assert_eq!(snap.loads.len(), 1);
        let rec = snap.load(Role::Edge, &id).unwrap();
        assert_eq!((rec.report.streams, rec.lease, rec.mod_revision), (4, 9, 2));
        // A newer report replaces it; a bad one leaves the last good one.
        apply_changes(&mut snap, &ks, [put("/sluice/load/edge/e1", br#"{"streams":5}"#, 4)], 4);
        apply_changes(&mut snap, &ks, [put("/sluice/load/edge/e1", b"{", 5)], 5);
        assert_eq!(snap.load(Role::Edge, &id).unwrap().report.streams, 5);
        apply_changes(
            &mut snap,
            &ks,
            [Change::Delete { key: "/sluice/load/edge/e1".into(), mod_revision: 6 }],
            6,
        );
        assert!(snap.loads.is_empty());
        // A listing that differs only in loads still replaces the snapshot.
        let mut current = from_list(&ks, 7, []);
        let fresh = from_list(
            &ks,
            8,
            [RawKv {
                key: "/sluice/load/origin/o1".into(),
                value: b"{}".to_vec(),
                create_revision: 8,
                mod_revision: 8,
                lease: 1,
            }],
        );
        assert!(replace_if_changed(&mut current, fresh));
        assert_eq!(current.loads.len(), 1);
    }
}

#[cfg(test)]
mod order_tests {
    use super::*;
    use crate::types::{DrainOrder, MAX_ORDER_VALUE_LEN};
    use crate::types::{NodeId, Role};
    use sluice_media::stream_name::StreamKey;

    fn put(key: &str, value: &[u8], rev: i64) -> Change {
        Change::Put(RawKv {
            key: key.into(),
            value: value.to_vec(),
            create_revision: rev,
            mod_revision: rev,
            lease: 0,
        })
    }

    #[test]
    fn orders_enter_and_leave_the_snapshot() {
        let ks = Keyspace::default();
        let mut snap = from_list(&ks, 1, []);
        let e1 = NodeId::new("e1").unwrap();
        let x = StreamKey::parse("live", "x").unwrap().0;
        apply_changes(
            &mut snap,
            &ks,
            [
                put(
                    "/sluice/orders/drain/edge/e1",
                    br#"{"deadline_seconds":30,"issued_at_ms":5}"#,
                    2,
                ),
                put("/sluice/orders/kick/live/x", br#"{"issued_at_ms":7,"future":1}"#, 3),
            ],
            3,
        );
        let drain = snap.drain_order(Role::Edge, &e1).unwrap();
        assert_eq!(drain.order, DrainOrder { deadline_seconds: 30, issued_at_ms: 5 });
        assert_eq!(drain.mod_revision, 2);
        assert!(snap.drain_order(Role::Origin, &e1).is_none());
        let kick = &snap.kicks[&x];
        assert_eq!((kick.order.issued_at_ms, kick.mod_revision), (7, 3));
        // A kick counts only against claims older than itself.
        assert!(kick.applies_to(2) && !kick.applies_to(3) && !kick.applies_to(9));
        // A listing that differs only in orders replaces the snapshot.
        let mut listed = from_list(&ks, 3, []);
        assert!(replace_if_changed(&mut listed, snap.clone()));
        apply_changes(
            &mut snap,
            &ks,
            [
                Change::Delete { key: "/sluice/orders/drain/edge/e1".into(), mod_revision: 4 },
                Change::Delete { key: "/sluice/orders/kick/live/x".into(), mod_revision: 5 },
            ],
            5,
        );
        assert!(snap.drains.is_empty() && snap.kicks.is_empty());
    }

    #[test]
    fn hostile_orders_are_ignored() {
        let huge = format!(r#"{{"issued_at_ms":1,"pad":"{}"}}"#, "x".repeat(MAX_ORDER_VALUE_LEN));
        for bad in [
            b"not json".to_vec(),
            br#"{"deadline_seconds":-1}"#.to_vec(),
            br#"{"deadline_seconds":86401}"#.to_vec(),
            br#"{"deadline_seconds":4294967296}"#.to_vec(),
            br#"{"issued_at_ms":"now"}"#.to_vec(),
            huge.into_bytes(),
        ] {
            assert_eq!(parse_drain(&bad), None, "{}", String::from_utf8_lossy(&bad));
        }
        assert_eq!(parse_drain(b"{}"), Some(DrainOrder::default()));
        let ks = Keyspace::default();
        let mut snap = from_list(&ks, 1, []);
        apply_changes(
            &mut snap,
            &ks,
            [
                put("/sluice/orders/drain/edge/e1", br#"{"deadline_seconds":999999}"#, 2),
                put("/sluice/orders/kick/live/x", b"[1,2]", 3),
                put("/sluice/orders/kick/live/x?y", b"{}", 4),
            ],
            4,
        );
        assert!(snap.drains.is_empty() && snap.kicks.is_empty());
    }

    #[test]
    fn ladders_are_kept_by_app_and_bad_ones_ignored() {
        let ks = Keyspace::default();
        let mut snap = from_list(&ks, 1, []);
        apply_changes(
            &mut snap,
            &ks,
            [
                put(
                    "/sluice/ladders/live",
                    br#"{"renditions":[{"name":"240p","height":240,"video-kbps":400}]}"#,
                    2,
                ),
                // Out of bounds, malformed, or not an app: ignored.
                put(
                    "/sluice/ladders/tv",
                    br#"{"renditions":[{"name":"x","height":3,"video-kbps":400}]}"#,
                    3,
                ),
                put("/sluice/ladders/radio", b"{", 4),
                put("/sluice/ladders/a/b", br#"{"renditions":[]}"#, 5),
            ],
            5,
        );
        assert_eq!(snap.ladders.keys().collect::<Vec<_>>(), ["live"]);
        assert_eq!(snap.ladders["live"].renditions[0].height, 240);
        apply_changes(
            &mut snap,
            &ks,
            [Change::Delete { key: "/sluice/ladders/live".into(), mod_revision: 6 }],
            6,
        );
        assert!(snap.ladders.is_empty());
    }
}
