//! What the commands print, as serde types built from the protobuf answers: the JSON and YAML
//! output (field names as in `control.proto`, raw numbers, maps in key order) and the input
//! of the table renderers.

use std::collections::BTreeMap;

use serde::Serialize;
use sluice_proto::control::v1 as pb;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeView {
    pub id: String,
    pub role: String,
    pub state: String,
    pub version: String,
    pub addresses: BTreeMap<String, String>,
    /// Milliseconds since the epoch; 0 when not reported.
    pub started_at_ms: u64,
    pub drain_ordered: bool,
    /// Absent until the node's first load report.
    pub load: Option<LoadView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadView {
    pub viewers: BTreeMap<String, u64>,
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

impl LoadView {
    /// Viewers of every protocol but relays (other nodes pulling streams).
    pub fn audience(&self) -> u64 {
        self.viewers.iter().filter(|(p, _)| p.as_str() != "relay").map(|(_, n)| n).sum()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeList {
    pub nodes: Vec<NodeView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
}

impl StreamView {
    pub fn key(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamList {
    pub streams: Vec<StreamView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TotalsView {
    pub viewers: u64,
    pub max_viewers: u64,
    pub egress_bps: u64,
    pub max_egress_bps: u64,
    pub cpu_millicores: u64,
    pub viewer_headroom: u64,
    pub transcodes: u64,
    pub max_transcodes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CapacityView {
    pub nodes: Vec<NodeView>,
    pub edges: TotalsView,
    pub origins: TotalsView,
    pub recommended_edges: Option<u64>,
    pub target_utilisation: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssignView {
    pub url: String,
    pub edge_id: String,
    pub protocol: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestView {
    pub url: String,
    pub origin_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainView {
    pub node: Option<NodeView>,
    /// When the node closes what is left (ms since the epoch); absent for an undrain.
    pub deadline_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KickView {
    pub stream: String,
    pub origin_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecordingView {
    pub origin_id: String,
    pub app: String,
    pub stream: String,
    pub id: String,
    pub started_at_ms: u64,
    pub duration_s: f64,
    pub segments: u64,
    pub periods: u64,
    pub bytes: u64,
    pub finished: bool,
    pub hls_url: String,
    /// Empty until the recording is finished.
    pub mp4_url: String,
}

impl RecordingView {
    /// `APP/STREAM/ID`, as `recordings show` and `rm` take it.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.app, self.stream, self.id)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecordingList {
    /// Newest first.
    pub recordings: Vec<RecordingView>,
    /// The limit left some out.
    pub truncated: bool,
    /// Origins that did not answer: what they hold is not listed.
    pub unreachable_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeletedView {
    /// What was deleted, as it was (one per origin that held it).
    pub deleted: Vec<RecordingView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    /// `node_added`, `stream_ended`, ...
    pub kind: String,
    pub node: Option<NodeView>,
    pub stream: Option<StreamView>,
    pub revision: i64,
    pub at_ms: u64,
}

impl From<pb::NodeLoad> for LoadView {
    fn from(l: pb::NodeLoad) -> LoadView {
        LoadView {
            viewers: l.viewers.into_iter().collect(),
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

impl From<pb::Node> for NodeView {
    fn from(n: pb::Node) -> NodeView {
        NodeView {
            id: n.id,
            role: n.role,
            state: n.state,
            version: n.version,
            addresses: n.addresses.into_iter().collect(),
            started_at_ms: n.started_at_ms,
            drain_ordered: n.drain_ordered,
            load: n.load.map(LoadView::from),
        }
    }
}

/// Nodes sorted by role (origins first) and id, as every listing shows them.
pub fn nodes(nodes: Vec<pb::Node>) -> Vec<NodeView> {
    let mut nodes: Vec<NodeView> = nodes.into_iter().map(NodeView::from).collect();
    nodes.sort_by(|a, b| (b.role.as_str(), &a.id).cmp(&(a.role.as_str(), &b.id)));
    nodes
}

impl From<pb::Stream> for StreamView {
    fn from(s: pb::Stream) -> StreamView {
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
            viewers: s.viewers.into_iter().collect(),
        }
    }
}

/// Streams sorted by `app/name`.
pub fn streams(streams: Vec<pb::Stream>) -> Vec<StreamView> {
    let mut streams: Vec<StreamView> = streams.into_iter().map(StreamView::from).collect();
    streams.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
    streams
}

impl From<pb::CapacityTotals> for TotalsView {
    fn from(t: pb::CapacityTotals) -> TotalsView {
        TotalsView {
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
}

impl From<pb::GetCapacityResponse> for CapacityView {
    fn from(c: pb::GetCapacityResponse) -> CapacityView {
        CapacityView {
            nodes: nodes(c.nodes),
            edges: c.edges.map(TotalsView::from).unwrap_or_default(),
            origins: c.origins.map(TotalsView::from).unwrap_or_default(),
            recommended_edges: c.recommended_edges,
            target_utilisation: c.target_utilisation,
        }
    }
}

/// The protocol's name as the `--protocol` flag spells it.
pub fn protocol_name(p: i32) -> String {
    match pb::Protocol::try_from(p) {
        Ok(pb::Protocol::Unspecified | pb::Protocol::HttpFlv) => "flv".into(),
        Ok(pb::Protocol::Hls) => "hls".into(),
        Ok(pb::Protocol::Rtmp) => "rtmp".into(),
        Err(_) => format!("unknown({p})"),
    }
}

impl From<pb::AssignViewerResponse> for AssignView {
    fn from(a: pb::AssignViewerResponse) -> AssignView {
        AssignView { url: a.url, edge_id: a.edge_id, protocol: protocol_name(a.protocol) }
    }
}

impl From<pb::ResolveIngestResponse> for IngestView {
    fn from(r: pb::ResolveIngestResponse) -> IngestView {
        IngestView { url: r.url, origin_id: r.origin_id }
    }
}

impl From<pb::Recording> for RecordingView {
    fn from(r: pb::Recording) -> RecordingView {
        RecordingView {
            origin_id: r.origin_id,
            app: r.app,
            stream: r.stream,
            id: r.id,
            started_at_ms: r.started_at_ms,
            duration_s: r.duration_s,
            segments: r.segments,
            periods: r.periods,
            bytes: r.bytes,
            finished: r.finished,
            hls_url: r.hls_url,
            mp4_url: r.mp4_url,
        }
    }
}

impl From<pb::ListRecordingsResponse> for RecordingList {
    fn from(l: pb::ListRecordingsResponse) -> RecordingList {
        RecordingList {
            recordings: l.recordings.into_iter().map(RecordingView::from).collect(),
            truncated: l.truncated,
            unreachable_origins: l.unreachable_origins,
        }
    }
}

impl From<pb::DeleteRecordingResponse> for DeletedView {
    fn from(d: pb::DeleteRecordingResponse) -> DeletedView {
        DeletedView { deleted: d.deleted.into_iter().map(RecordingView::from).collect() }
    }
}

impl From<pb::WatchEvent> for EventView {
    fn from(e: pb::WatchEvent) -> EventView {
        let kind = match pb::watch_event::Kind::try_from(e.kind) {
            Ok(k) => k.as_str_name().to_ascii_lowercase(),
            Err(_) => format!("unknown({})", e.kind),
        };
        EventView {
            kind,
            node: e.node.map(NodeView::from),
            stream: e.stream.map(StreamView::from),
            revision: e.revision,
            at_ms: e.at_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_sorted_origins_first() {
        let node = |id: &str, role: &str| pb::Node {
            id: id.into(),
            role: role.into(),
            ..pb::Node::default()
        };
        let sorted = nodes(vec![node("e2", "edge"), node("o1", "origin"), node("e1", "edge")]);
        let ids: Vec<&str> = sorted.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["o1", "e1", "e2"]);
    }

    #[test]
    fn audience_leaves_out_relays() {
        let load = LoadView {
            viewers: [("flv".into(), 3), ("hls".into(), 2), ("relay".into(), 4)].into(),
            ..LoadView::default()
        };
        assert_eq!(load.audience(), 5);
    }

    #[test]
    fn enums_have_their_short_names() {
        assert_eq!(protocol_name(pb::Protocol::Hls.into()), "hls");
        assert_eq!(protocol_name(0), "flv");
        let e = EventView::from(pb::WatchEvent {
            kind: pb::watch_event::Kind::StreamStarted.into(),
            ..pb::WatchEvent::default()
        });
        assert_eq!(e.kind, "stream_started");
    }
}
