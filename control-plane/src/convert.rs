//! Cluster records as protobuf messages, and request fields as cluster types: the one place
//! the gRPC front end, the watch stream and the HTTP pages translate.

use crate::assign::AssignError;
use crate::view::{stream_figures, ChoiceError, PlayProtocol, Totals};
use sluice_cluster::types::{LoadRecord, NodeRecord, NodeState, Role, Snapshot, StreamRecord};
use sluice_cluster::Ring;
use sluice_media::stream_name::StreamKey;
use sluice_proto::control::v1 as pb;
use tonic::Status;

pub fn stream_key(app: &str, name: &str) -> Result<StreamKey, Status> {
    match StreamKey::parse(app, name) {
        Ok((key, None)) => Ok(key),
        _ => Err(Status::invalid_argument(format!("invalid stream name {app:?}/{name:?}"))),
    }
}

pub fn protocol(p: pb::Protocol) -> PlayProtocol {
    match p {
        pb::Protocol::Unspecified | pb::Protocol::HttpFlv => PlayProtocol::Flv,
        pb::Protocol::Hls => PlayProtocol::Hls,
        pb::Protocol::Rtmp => PlayProtocol::Rtmp,
    }
}

/// The gRPC status of a failed choice (also what the HTTP port maps to its codes).
pub fn choice_status(e: ChoiceError) -> Status {
    match e {
        ChoiceError::NoPublisher => Status::not_found("the stream has no publisher"),
        ChoiceError::Assign(AssignError::NoEdges) => Status::unavailable("no edge is available"),
        ChoiceError::Assign(AssignError::Full) => {
            Status::resource_exhausted("every edge is at its capacity")
        }
        ChoiceError::NoAddress => Status::internal("the chosen edge advertises no address"),
        e @ ChoiceError::NoClientAddress => Status::invalid_argument(e.to_string()),
    }
}

pub fn state_name(s: NodeState) -> &'static str {
    match s {
        NodeState::Starting => "starting",
        NodeState::Ready => "ready",
        NodeState::Draining => "draining",
    }
}

pub fn node_load(l: &LoadRecord) -> pb::NodeLoad {
    let r = &l.report;
    pb::NodeLoad {
        viewers: r.viewers.clone().into_iter().collect(),
        streams: r.streams,
        egress_bps: r.egress_bps,
        ingress_bps: r.ingress_bps,
        cpu_millicores: r.cpu_millicores,
        memory_bytes: r.memory_bytes,
        max_viewers: r.capacity.max_viewers,
        max_egress_bps: r.capacity.max_egress_bps,
        draining: r.draining,
        reported_at_ms: r.at_ms,
        transcodes: r.transcodes,
        max_transcodes: r.capacity.max_transcodes,
    }
}

pub fn node(snap: &Snapshot, n: &NodeRecord) -> pb::Node {
    pb::Node {
        id: n.id.to_string(),
        role: n.role.as_str().to_string(),
        state: state_name(n.info.state).to_string(),
        addresses: n.info.addresses.clone().into_iter().collect(),
        load: snap.load(n.role, &n.id).map(node_load),
        version: n.info.version.clone(),
        started_at_ms: n.info.started_at_ms,
        drain_ordered: snap.drain_order(n.role, &n.id).is_some(),
    }
}

pub fn totals(t: Totals) -> pb::CapacityTotals {
    pb::CapacityTotals {
        viewers: t.viewers,
        max_viewers: t.max_viewers,
        egress_bps: t.egress_bps,
        max_egress_bps: t.max_egress_bps,
        cpu_millicores: t.cpu_millicores,
        viewer_headroom: t.viewer_headroom,
        transcodes: t.transcodes,
        max_transcodes: t.max_transcodes,
    }
}

/// The role named in a request: empty means "whichever has the id".
pub fn role_filter(role: &str) -> Result<Option<Role>, Status> {
    if role.is_empty() {
        return Ok(None);
    }
    Role::parse(role).map(Some).ok_or_else(|| {
        Status::invalid_argument(format!("role is \"origin\" or \"edge\", not {role:?}"))
    })
}

/// The node with `id` (and `role`, when given); NOT_FOUND if none, INVALID_ARGUMENT if an
/// origin and an edge share the id and no role was given.
pub fn find_node<'a>(snap: &'a Snapshot, id: &str, role: &str) -> Result<&'a NodeRecord, Status> {
    let role = role_filter(role)?;
    let mut found =
        snap.nodes.values().filter(|n| n.id.as_str() == id && role.is_none_or(|r| r == n.role));
    match (found.next(), found.next()) {
        (Some(n), None) => Ok(n),
        (Some(_), Some(_)) => Err(Status::invalid_argument(format!(
            "both an origin and an edge are called {id:?}: give the role"
        ))),
        (None, _) => Err(Status::not_found(format!("no node {id:?} is registered"))),
    }
}

/// A stream as the API shows it; `ring` is the ring of ready origins (for its home).
pub fn stream(snap: &Snapshot, ring: &Ring, s: &StreamRecord) -> pb::Stream {
    let figures = stream_figures(snap, s);
    pb::Stream {
        app: s.stream.app().to_string(),
        name: s.stream.name().to_string(),
        origin: s.info.origin.to_string(),
        home: ring.owner(&s.stream).map(ToString::to_string).unwrap_or_default(),
        codecs: s.info.codecs.clone(),
        started_at_ms: s.info.started_at_ms,
        width: figures.width,
        height: figures.height,
        fps_milli: figures.fps_milli,
        ingress_bps: figures.ingress_bps,
        viewers: figures.viewers.into_iter().collect(),
    }
}

/// The ring of ready origins, as placement sees it.
pub fn origin_ring(snap: &Snapshot) -> Ring {
    Ring::new(snap.ready_origins(), sluice_cluster::DEFAULT_VNODES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::types::{LoadReport, NodeId, NodeInfo, StreamInfo, StreamLoad};

    /// One origin `o1` (version 1.2.3, started at 1000) publishing `live/x`, watched on edge
    /// `e1`, as a hand-built snapshot.
    fn snapshot() -> (Snapshot, StreamRecord) {
        let o1 = NodeId::new("o1").unwrap();
        let e1 = NodeId::new("e1").unwrap();
        let key = StreamKey::parse("live", "x").unwrap().0;
        let mut snap = Snapshot::default();
        let info =
            NodeInfo { version: "1.2.3".into(), started_at_ms: 1_000, ..NodeInfo::default() };
        let rec = |role, id: &NodeId, info| NodeRecord {
            role,
            id: id.clone(),
            info,
            lease: 1,
            create_revision: 1,
            mod_revision: 1,
        };
        snap.nodes.insert((Role::Origin, o1.clone()), rec(Role::Origin, &o1, info));
        snap.nodes.insert((Role::Edge, e1.clone()), rec(Role::Edge, &e1, NodeInfo::default()));
        let mut load = |role, id: &NodeId, figures| {
            let mut report = LoadReport::default();
            report.by_stream.insert(key.clone(), figures);
            let rec = LoadRecord { role, id: id.clone(), report, lease: 1, mod_revision: 2 };
            snap.loads.insert((role, id.clone()), rec);
        };
        load(
            Role::Origin,
            &o1,
            StreamLoad {
                width: 1280,
                height: 720,
                fps_milli: 29_970,
                ingress_bps: 3_000_000,
                ..StreamLoad::default()
            },
        );
        load(Role::Edge, &e1, StreamLoad { viewers: 5, ..StreamLoad::default() });
        let info = StreamInfo {
            origin: o1,
            codecs: vec!["h264".into(), "aac".into()],
            started_at_ms: 2_000,
            rendition_of: None,
            playout: false,
        };
        let stream = StreamRecord {
            stream: key.clone(),
            info,
            lease: 1,
            create_revision: 3,
            mod_revision: 3,
        };
        snap.streams.insert(key, stream.clone());
        (snap, stream)
    }

    #[test]
    fn streams_and_nodes_carry_their_figures() {
        let (snap, s) = snapshot();
        let got = stream(&snap, &origin_ring(&snap), &s);
        assert_eq!((got.origin.as_str(), got.home.as_str()), ("o1", "o1"));
        assert_eq!(got.codecs, ["h264", "aac"]);
        assert_eq!((got.width, got.height, got.fps_milli), (1280, 720, 29_970));
        assert_eq!((got.ingress_bps, got.started_at_ms), (3_000_000, 2_000));
        assert_eq!(got.viewers, [("e1".to_string(), 5)].into());

        let origin = snap.nodes.values().find(|n| n.role == Role::Origin).unwrap();
        let got = node(&snap, origin);
        assert_eq!((got.version.as_str(), got.started_at_ms), ("1.2.3", 1_000));
        assert!(got.load.is_some());
        // A node that predates the fields shows them empty.
        let edge = snap.nodes.values().find(|n| n.role == Role::Edge).unwrap();
        assert_eq!((node(&snap, edge).version.as_str(), node(&snap, edge).started_at_ms), ("", 0));
    }
}
