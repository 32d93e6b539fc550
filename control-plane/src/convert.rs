//! Cluster records as protobuf messages, and request fields as cluster types: the one place
//! the gRPC front end, the watch stream and the HTTP pages translate.

use crate::assign::AssignError;
use crate::view::{ChoiceError, PlayProtocol, Totals};
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
    }
}

pub fn node(snap: &Snapshot, n: &NodeRecord) -> pb::Node {
    pb::Node {
        id: n.id.to_string(),
        role: n.role.as_str().to_string(),
        state: state_name(n.info.state).to_string(),
        addresses: n.info.addresses.clone().into_iter().collect(),
        load: snap.load(n.role, &n.id).map(node_load),
        drain_ordered: snap.drain_order(n.role, &n.id).is_some(),
        // Version and start time come with the per-node figures.
        ..pb::Node::default()
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
pub fn stream(_snap: &Snapshot, ring: &Ring, s: &StreamRecord) -> pb::Stream {
    pb::Stream {
        app: s.stream.app().to_string(),
        name: s.stream.name().to_string(),
        origin: s.info.origin.to_string(),
        home: ring.owner(&s.stream).map(ToString::to_string).unwrap_or_default(),
        codecs: s.info.codecs.clone(),
        started_at_ms: s.info.started_at_ms,
        ..pb::Stream::default()
    }
}

/// The ring of ready origins, as placement sees it.
pub fn origin_ring(snap: &Snapshot) -> Ring {
    Ring::new(snap.ready_origins(), sluice_cluster::DEFAULT_VNODES)
}
