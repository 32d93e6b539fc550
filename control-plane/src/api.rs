//! `GET /api/cluster`: nodes, streams and totals as JSON, for the cluster page (and scripts).
//!
//! The figures are the gRPC API's: every node and stream goes through [`crate::convert`] (the
//! same `Node` and `Stream` messages `ListNodes`, `ListStreams` and `GetCapacity` answer) and is
//! then written out field by field, so the page and `sluicectl` never disagree. Like every
//! answer of a replica, it comes from the watch cache alone: any replica answers alike.
//!
//! The page keeps its chart history itself (it polls every 2 s), so the replica stays
//! stateless.

use crate::convert::{node, origin_ring, stream};
use crate::service::ControlPlane;
use crate::view::Totals;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sluice_cluster::types::{Role, Snapshot};
use sluice_proto::control::v1 as pb;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A node's latest load report (`NodeLoad`), with its viewer total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadView {
    pub viewers: BTreeMap<String, u64>,
    /// Viewers of every protocol but relays (what capacity counts).
    pub viewers_total: u64,
    pub streams: u64,
    pub egress_bps: u64,
    pub ingress_bps: u64,
    pub cpu_millicores: u64,
    pub memory_bytes: u64,
    pub max_viewers: u64,
    pub max_egress_bps: u64,
    pub draining: bool,
    pub reported_at_ms: u64,
    pub transcodes: u64,
    pub max_transcodes: u64,
}

impl From<pb::NodeLoad> for LoadView {
    fn from(l: pb::NodeLoad) -> LoadView {
        let viewers: BTreeMap<String, u64> = l.viewers.into_iter().collect();
        let viewers_total = viewers
            .iter()
            .filter(|(p, _)| p.as_str() != "relay")
            .map(|(_, v)| *v)
            .fold(0, u64::saturating_add);
        LoadView {
            viewers,
            viewers_total,
            streams: l.streams,
            egress_bps: l.egress_bps,
            ingress_bps: l.ingress_bps,
            cpu_millicores: l.cpu_millicores,
            memory_bytes: l.memory_bytes,
            max_viewers: l.max_viewers,
            max_egress_bps: l.max_egress_bps,
            draining: l.draining,
            reported_at_ms: l.reported_at_ms,
            transcodes: l.transcodes,
            max_transcodes: l.max_transcodes,
        }
    }
}

/// A node (`Node`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub id: String,
    pub role: String,
    pub state: String,
    pub addresses: BTreeMap<String, String>,
    /// `null` until the node's first load report.
    pub load: Option<LoadView>,
    pub version: String,
    pub started_at_ms: u64,
    pub drain_ordered: bool,
}

impl From<pb::Node> for NodeView {
    fn from(n: pb::Node) -> NodeView {
        NodeView {
            id: n.id,
            role: n.role,
            state: n.state,
            addresses: n.addresses.into_iter().collect(),
            load: n.load.map(LoadView::from),
            version: n.version,
            started_at_ms: n.started_at_ms,
            drain_ordered: n.drain_ordered,
        }
    }
}

/// A stream (`Stream`), with its viewer total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamView {
    pub app: String,
    pub name: String,
    pub origin: String,
    pub home: String,
    pub codecs: Vec<String>,
    pub started_at_ms: u64,
    pub width: u32,
    pub height: u32,
    pub fps_milli: u32,
    pub ingress_bps: u64,
    /// Viewers by node id.
    pub viewers: BTreeMap<String, u64>,
    pub viewers_total: u64,
}

impl From<pb::Stream> for StreamView {
    fn from(s: pb::Stream) -> StreamView {
        let viewers: BTreeMap<String, u64> = s.viewers.into_iter().collect();
        let viewers_total = viewers.values().copied().fold(0, u64::saturating_add);
        StreamView {
            app: s.app,
            name: s.name,
            origin: s.origin,
            home: s.home,
            codecs: s.codecs,
            started_at_ms: s.started_at_ms,
            width: s.width,
            height: s.height,
            fps_milli: s.fps_milli,
            ingress_bps: s.ingress_bps,
            viewers,
            viewers_total,
        }
    }
}

/// The whole answer of `/api/cluster`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterView {
    /// Whether the replica's cache has its first listing (until then everything is empty).
    pub ready: bool,
    /// The etcd revision the figures reflect.
    pub revision: i64,
    /// Origins first, then edges, each by id.
    pub nodes: Vec<NodeView>,
    /// By app, then name.
    pub streams: Vec<StreamView>,
    /// Over ready, non-draining edges (as `GetCapacity`).
    pub edges: Totals,
    pub origins: Totals,
    pub recommended_edges: Option<u64>,
    pub target_utilisation: f64,
}

/// The view of `snap`; `recommended_edges` and `target_utilisation` as `GetCapacity` gives them.
pub fn cluster_view(
    snap: &Snapshot,
    recommended_edges: Option<u64>,
    target_utilisation: f64,
) -> ClusterView {
    let ring = origin_ring(snap);
    ClusterView {
        ready: crate::service::cache_is_ready(snap),
        revision: snap.revision,
        nodes: snap.nodes.values().map(|n| NodeView::from(node(snap, n))).collect(),
        streams: snap.streams.values().map(|s| StreamView::from(stream(snap, &ring, s))).collect(),
        edges: crate::view::totals(snap, Role::Edge),
        origins: crate::view::totals(snap, Role::Origin),
        recommended_edges,
        target_utilisation,
    }
}

async fn cluster(State(control): State<Arc<ControlPlane>>) -> Response {
    let snap = control.snapshot();
    let view = cluster_view(&snap, control.recommended_edges(), control.target_utilisation());
    ([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(view)).into_response()
}

/// `GET /api/cluster`.
pub fn routes(control: Arc<ControlPlane>) -> Router {
    Router::new().route("/api/cluster", get(cluster)).with_state(control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::types::{
        LoadCapacity, LoadRecord, LoadReport, NodeInfo, NodeRecord, NodeState, StreamInfo,
        StreamRecord,
    };
    use sluice_cluster::NodeId;
    use sluice_media::stream_name::StreamKey;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn snapshot() -> Snapshot {
        let mut snap = Snapshot { revision: 9, connected: true, ..Snapshot::default() };
        for (role, name) in [(Role::Origin, "o1"), (Role::Edge, "e1"), (Role::Edge, "e2")] {
            let mut info = NodeInfo { state: NodeState::Ready, ..NodeInfo::default() };
            info.addresses.insert("http".into(), format!("{name}:8080"));
            let rec = NodeRecord {
                role,
                id: id(name),
                info,
                lease: 1,
                create_revision: 1,
                mod_revision: 1,
            };
            snap.nodes.insert((role, id(name)), rec);
        }
        let mut report = LoadReport {
            capacity: LoadCapacity {
                max_viewers: 100,
                max_egress_bps: 1_000_000,
                max_transcodes: 0,
            },
            egress_bps: 250_000,
            cpu_millicores: 120,
            ..LoadReport::default()
        };
        report.viewers.insert("flv".into(), 3);
        report.viewers.insert("hls".into(), 2);
        report.viewers.insert("relay".into(), 7);
        let load = LoadRecord { role: Role::Edge, id: id("e1"), report, lease: 1, mod_revision: 8 };
        snap.loads.insert((Role::Edge, id("e1")), load);
        let key = StreamKey::parse("live", "x").unwrap().0;
        let info = StreamInfo {
            origin: id("o1"),
            codecs: vec!["h264".into()],
            started_at_ms: 5,
            rendition_of: None,
            playout: false,
        };
        let rec = StreamRecord {
            stream: key.clone(),
            info,
            lease: 1,
            create_revision: 5,
            mod_revision: 5,
        };
        snap.streams.insert(key, rec);
        snap
    }

    #[test]
    fn the_view_carries_the_grpc_figures() {
        let snap = snapshot();
        let view = cluster_view(&snap, Some(1), 0.6);
        assert!(view.ready);
        let ids: Vec<&str> = view.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["o1", "e1", "e2"]);
        // The same node message as ListNodes, field by field.
        for (n, rec) in view.nodes.iter().zip(snap.nodes.values()) {
            assert_eq!(*n, NodeView::from(node(&snap, rec)));
        }
        let e1 = view.nodes[1].load.as_ref().expect("e1 reported");
        assert_eq!((e1.viewers_total, e1.max_viewers, e1.egress_bps), (5, 100, 250_000));
        assert!(view.nodes[2].load.is_none());
        assert_eq!(view.streams.len(), 1);
        assert_eq!((view.streams[0].app.as_str(), view.streams[0].home.as_str()), ("live", "o1"));
        assert_eq!(view.edges.viewers, 5);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["nodes"][1]["load"]["viewers"]["relay"], 7);
        assert_eq!(json["nodes"][2]["load"], serde_json::Value::Null);
        assert_eq!(json["recommended_edges"], 1);
        assert_eq!(json["streams"][0]["codecs"][0], "h264");
    }

    #[test]
    fn an_empty_cache_is_not_ready() {
        let view = cluster_view(&Snapshot::default(), None, 0.6);
        assert!(!view.ready && view.nodes.is_empty() && view.streams.is_empty());
        // Loaded once, but etcd out of reach since: shown, not ready.
        let stale = Snapshot { connected: false, ..snapshot() };
        let view = cluster_view(&stale, None, 0.6);
        assert!(!view.ready && !view.nodes.is_empty());
    }
}
