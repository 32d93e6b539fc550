//! Scheduled playout through the control plane: entries written to etcd
//! (`{prefix}/schedule/{id}`), where every origin reads them from its registry cache and the
//! stream's player (its home, or the first origin after it with a playout directory) plays
//! them; how each stands comes back in the origins' load reports. The
//! control plane keeps nothing itself.

use std::time::{SystemTime, UNIX_EPOCH};

use sluice_cluster::schedule::{validate, EntryValue, PlayoutState, MAX_ENTRIES};
use sluice_cluster::types::{NodeId, Role, Snapshot};
use sluice_cluster::{OrderWriter, RegistryError, Ring, DEFAULT_VNODES};
use sluice_media::stream_name::StreamKey;
use sluice_proto::control::v1 as pb;
use tonic::Status;

use crate::service::ControlPlane;

fn writer(cp: &ControlPlane) -> Result<&OrderWriter, Status> {
    cp.orders()
        .ok_or_else(|| Status::failed_precondition("this control plane cannot write to etcd"))
}

fn write_failed(e: &RegistryError) -> Status {
    Status::unavailable(format!("writing the schedule to etcd failed: {e}"))
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A fresh entry id: 12 random hex digits, not one the schedule has.
fn new_id(snap: &Snapshot) -> String {
    loop {
        let id = format!("{:012x}", rand::random::<u64>() & 0xFFFF_FFFF_FFFF);
        if !snap.schedule.contains_key(&id) {
            return id;
        }
    }
}

/// The origin that plays `value`'s entries as the registry stands: the first in its stream's
/// ring order (of the ready origins) that plays files out; what the origins themselves decide
/// (`node::placement::player`), but for their ring's damping.
fn player(snap: &Snapshot, value: &EntryValue) -> Option<NodeId> {
    let (key, _) = StreamKey::parse(&value.app, &value.stream).ok()?;
    let ring = Ring::new(snap.ready_origins(), DEFAULT_VNODES);
    let order = ring.owners(&key, ring.members().len());
    order.into_iter().find(|id| snap.node(Role::Origin, id).is_some_and(|n| n.info.playout))
}

/// How entry `id` stands, and the origin that says so: its player's report when it has one,
/// else the reports of origins playing it first, then those that played it; `due` or
/// `waiting` when none has.
fn standing(snap: &Snapshot, id: &str, value: &EntryValue, now: i64) -> (String, String) {
    let player = player(snap, value);
    let mut best: Option<(PlayoutState, &str)> = None;
    for ((role, node), load) in &snap.loads {
        if *role != Role::Origin {
            continue;
        }
        let Some(state) = load.report.playouts.get(id) else { continue };
        if player.as_ref() == Some(node) {
            best = Some((*state, node.as_str()));
            break;
        }
        let rank = |s: PlayoutState| matches!(s, PlayoutState::Playing | PlayoutState::Displaced);
        if best.is_none_or(|(b, _)| rank(*state) && !rank(b)) {
            best = Some((*state, node.as_str()));
        }
    }
    match best {
        Some((state, node)) => (state.as_str().to_string(), node.to_string()),
        None if value.start_ms > now => ("waiting".into(), String::new()),
        None => ("due".into(), String::new()),
    }
}

fn shown(snap: &Snapshot, id: &str, v: &EntryValue, now: i64) -> pb::ScheduleEntry {
    let (state, node) = standing(snap, id, v, now);
    pb::ScheduleEntry {
        id: id.to_string(),
        app: v.app.clone(),
        stream: v.stream.clone(),
        file: v.file.clone(),
        recording: v.recording.clone().unwrap_or_default(),
        start_ms: v.start_ms,
        r#loop: v.looped,
        state,
        node,
    }
}

/// Add an entry (see `AddScheduleEntry` in control.proto).
pub async fn add(
    cp: &ControlPlane,
    req: pb::AddScheduleEntryRequest,
) -> Result<pb::ScheduleEntry, Status> {
    let now = now_ms();
    let value = EntryValue {
        app: req.app,
        stream: req.stream,
        file: req.file,
        recording: (!req.recording.is_empty()).then_some(req.recording),
        start_ms: if req.start_ms == 0 { now } else { req.start_ms },
        looped: req.r#loop,
    };
    validate(&value).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let snap = cp.snapshot();
    if snap.schedule.len() >= MAX_ENTRIES {
        return Err(Status::resource_exhausted(format!(
            "the schedule is full ({MAX_ENTRIES} entries): remove some first"
        )));
    }
    let id = new_id(&snap);
    writer(cp)?.set_schedule_entry(&id, &value).await.map_err(|e| write_failed(&e))?;
    tracing::info!(%id, stream = %format!("{}/{}", value.app, value.stream), file = %value.file, start_ms = value.start_ms, looped = value.looped, "schedule entry added");
    Ok(shown(&snap, &id, &value, now))
}

/// Remove an entry.
pub async fn remove(
    cp: &ControlPlane,
    req: pb::RemoveScheduleEntryRequest,
) -> Result<pb::RemoveScheduleEntryResponse, Status> {
    sluice_cluster::schedule::check_id(&req.id)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    if !writer(cp)?.delete_schedule_entry(&req.id).await.map_err(|e| write_failed(&e))? {
        return Err(Status::not_found(format!("no schedule entry {}", req.id)));
    }
    tracing::info!(id = %req.id, "schedule entry removed");
    Ok(pb::RemoveScheduleEntryResponse {})
}

/// Every entry, by start.
pub fn list(cp: &ControlPlane) -> pb::ListScheduleResponse {
    let snap = cp.snapshot();
    let now = now_ms();
    let mut entries: Vec<pb::ScheduleEntry> =
        snap.schedule.values().map(|r| shown(&snap, &r.id, &r.value, now)).collect();
    entries.sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
    pb::ListScheduleResponse { entries }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::types::{LoadRecord, LoadReport, NodeInfo, NodeRecord};

    fn report(id: &str, state: PlayoutState) -> LoadReport {
        let mut r = LoadReport::default();
        r.playouts.insert(id.into(), state);
        r
    }

    #[test]
    fn an_entry_stands_as_the_origin_playing_it_says() {
        let v = EntryValue {
            app: "live".into(),
            stream: "tv".into(),
            file: "a.flv".into(),
            recording: None,
            start_ms: 1_000,
            looped: true,
        };
        let mut snap = Snapshot::default();
        assert_eq!(standing(&snap, "x", &v, 500), ("waiting".into(), String::new()));
        assert_eq!(standing(&snap, "x", &v, 1_500), ("due".into(), String::new()));
        let mut put = |node: &str, state| {
            let id = NodeId::new(node).unwrap();
            let report = report("x", state);
            let rec = LoadRecord {
                role: Role::Origin,
                id: id.clone(),
                report,
                lease: 0,
                mod_revision: 0,
            };
            snap.loads.insert((Role::Origin, id), rec);
        };
        put("o-a", PlayoutState::Done);
        put("o-b", PlayoutState::Playing);
        put("o-c", PlayoutState::Failed);
        assert_eq!(standing(&snap, "x", &v, 1_500), ("playing".into(), "o-b".into()));
        // Once the registry names its player, that origin's report is the one shown.
        for node in ["o-a", "o-b", "o-c"] {
            let mut info = NodeInfo { playout: node != "o-b", ..NodeInfo::default() };
            info.state = sluice_cluster::types::NodeState::Ready;
            let id = NodeId::new(node).unwrap();
            let rec = NodeRecord {
                role: Role::Origin,
                id: id.clone(),
                info,
                lease: 0,
                create_revision: 0,
                mod_revision: 0,
            };
            snap.nodes.insert((Role::Origin, id), rec);
        }
        let want = player(&snap, &v).unwrap();
        assert_ne!(want.as_str(), "o-b", "o-b plays nothing out");
        let (state, node) = standing(&snap, "x", &v, 1_500);
        assert_eq!(node, want.as_str());
        assert_eq!(state, if node == "o-a" { "done" } else { "failed" });
    }
}
