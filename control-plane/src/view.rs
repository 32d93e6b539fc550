//! Answers computed from a cache snapshot (sans-IO): which edges may take viewers and with what
//! load, the chosen edge's URL, a stream's ingest home, capacity totals, a stream's live
//! figures.
//!
//! Loads between two reports: an edge reports every ~2 s, so a burst of assignments would all
//! see the same load. [`Pending`] counts what this replica assigned to an edge since that
//! edge's last report (keyed by the report's revision) and adds it to the reported load; a new
//! report (which includes those viewers once they connected) resets it. Replicas do not share
//! these counts: each corrects only its own burst, which is all it can know without state.

use crate::assign::{AssignError, Assigner, EdgeLoad};
use sluice_cluster::ring::{Ring, DEFAULT_VNODES};
use sluice_cluster::types::{LoadReport, NodeRecord, NodeState, Role, Snapshot, StreamRecord};
use sluice_cluster::NodeId;
use sluice_media::stream_name::StreamKey;
use std::collections::BTreeMap;

/// Capacity assumed for an edge that has not reported yet (the nodes' `max-viewers` default).
pub const DEFAULT_EDGE_CAPACITY: u64 = 10_000;

/// How a viewer plays, which decides the URL's form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayProtocol {
    Flv,
    Hls,
    Rtmp,
}

/// The edge chosen for a viewer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Choice {
    pub edge: String,
    pub url: String,
}

/// Why no edge was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    #[error("the stream has no publisher")]
    NoPublisher,
    #[error(transparent)]
    Assign(#[from] AssignError),
    #[error("the chosen edge advertises no address for this protocol")]
    NoAddress,
    /// Play tokens are bound to viewers' addresses and the request named none.
    #[error("this control plane binds play tokens to the viewer's address: give client_ip")]
    NoClientAddress,
}

/// Viewers this replica assigned to each edge since the edge's last load report.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    /// edge → (revision of the report the count is relative to, count).
    counts: BTreeMap<NodeId, (i64, u64)>,
}

impl Pending {
    /// Assigned to `edge` since its report at `report_revision` (0: no report yet).
    pub fn get(&self, edge: &NodeId, report_revision: i64) -> u64 {
        match self.counts.get(edge) {
            Some(&(rev, count)) if rev == report_revision => count,
            _ => 0,
        }
    }

    /// One more viewer sent to `edge`, whose latest report is at `report_revision`.
    pub fn add(&mut self, edge: &NodeId, report_revision: i64) {
        let count = self.get(edge, report_revision).saturating_add(1);
        self.counts.insert(edge.clone(), (report_revision, count));
    }

    /// Forget edges that are gone from `snap`, so the map stays as small as the cluster.
    pub fn retain_known(&mut self, snap: &Snapshot) {
        self.counts.retain(|id, _| snap.node(Role::Edge, id).is_some());
    }
}

fn report_revision(snap: &Snapshot, id: &NodeId) -> i64 {
    snap.load(Role::Edge, id).map_or(0, |l| l.mod_revision)
}

/// Ready edges whose last report does not say draining and that no drain order names (an
/// ordered edge is skipped at once, before it has marked itself draining), with their load
/// (reported plus pending) and capacity (reported, or [`DEFAULT_EDGE_CAPACITY`] before the
/// first report).
pub fn eligible_edges(snap: &Snapshot, pending: &Pending) -> Vec<EdgeLoad> {
    snap.nodes_of(Role::Edge)
        .filter(|n| n.info.state == NodeState::Ready)
        .filter(|n| snap.drain_order(Role::Edge, &n.id).is_none())
        .filter_map(|n| {
            let report = snap.load(Role::Edge, &n.id).map(|l| &l.report);
            if report.is_some_and(|r| r.draining) {
                return None;
            }
            let capacity = match report.map(|r| r.capacity.max_viewers) {
                Some(0) | None => DEFAULT_EDGE_CAPACITY,
                Some(c) => c,
            };
            let reported = report.map_or(0, LoadReport::total_viewers);
            let load = reported.saturating_add(pending.get(&n.id, report_revision(snap, &n.id)));
            Some(EdgeLoad { id: n.id.clone(), capacity, load })
        })
        .collect()
}

/// The URL of `stream` on a node, for `protocol`; `None` without that address. HTTP-FLV and
/// HLS are handed out over HTTPS, and RTMP as RTMPS, when the node serves it.
pub fn play_url(node: &NodeRecord, stream: &StreamKey, protocol: PlayProtocol) -> Option<String> {
    let (app, name) = (stream.app(), stream.name());
    let web = || {
        let a = &node.info.addresses;
        a.get("https").map(|h| ("https", h)).or_else(|| a.get("http").map(|h| ("http", h)))
    };
    match protocol {
        PlayProtocol::Flv => {
            let (scheme, host) = web()?;
            Some(format!("{scheme}://{host}/{app}/{name}.flv"))
        }
        PlayProtocol::Hls => {
            let (scheme, host) = web()?;
            Some(format!("{scheme}://{host}/{app}/{name}.m3u8"))
        }
        PlayProtocol::Rtmp => {
            let a = &node.info.addresses;
            let (scheme, host) = a
                .get("rtmps")
                .map(|h| ("rtmps", h))
                .or_else(|| a.get("rtmp").map(|h| ("rtmp", h)))?;
            Some(format!("{scheme}://{host}/{app}/{name}"))
        }
    }
}

/// Most edges one request may ask to avoid.
pub const MAX_AVOID: usize = 16;

/// The edges a viewer asks not to be sent back to (ones it just failed on), as it names
/// them: at most [`MAX_AVOID`] valid node ids.
pub fn parse_avoid<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<Vec<NodeId>, String> {
    let mut avoid = Vec::new();
    for id in ids.into_iter().filter(|id| !id.is_empty()) {
        if avoid.len() == MAX_AVOID {
            return Err(format!("at most {MAX_AVOID} edges to avoid"));
        }
        avoid.push(NodeId::new(id).map_err(|e| e.to_string())?);
    }
    Ok(avoid)
}

/// Choose the edge for one more viewer of `stream` and count it in `pending`, passing over the
/// edges in `avoid` while another has room. `assigner` is the caller's ring, kept between
/// calls; it is updated to the snapshot's edges and loads here.
pub fn assign_viewer(
    snap: &Snapshot,
    pending: &mut Pending,
    assigner: &mut Assigner,
    stream: &StreamKey,
    protocol: PlayProtocol,
    avoid: &[NodeId],
) -> Result<Choice, ChoiceError> {
    if snap.stream(stream).is_none() {
        return Err(ChoiceError::NoPublisher);
    }
    assigner.update(eligible_edges(snap, pending));
    let index = assigner.choose_avoiding(&stream.to_string(), avoid)?;
    let id = assigner.edge(index).id.clone();
    let node = snap.node(Role::Edge, &id).ok_or(ChoiceError::NoAddress)?;
    let url = play_url(node, stream, protocol).ok_or(ChoiceError::NoAddress)?;
    pending.add(&id, report_revision(snap, &id));
    Ok(Choice { edge: id.to_string(), url })
}

/// The ring home of `stream` among ready origins and its RTMP ingest URL. The nodes damp
/// flapping origins out of their ring; this is the undamped ring, the same once membership is
/// stable.
pub fn ingest_home(snap: &Snapshot, stream: &StreamKey) -> Option<(NodeId, String)> {
    let ring = Ring::new(snap.ready_origins(), DEFAULT_VNODES);
    let owner = ring.owner(stream)?.clone();
    let node = snap.node(Role::Origin, &owner)?;
    let url = play_url(node, stream, PlayProtocol::Rtmp)?;
    Some((owner, url))
}

/// Load against capacity summed over one role's ready, non-draining nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Totals {
    pub viewers: u64,
    pub max_viewers: u64,
    pub egress_bps: u64,
    pub max_egress_bps: u64,
    pub cpu_millicores: u64,
    pub viewer_headroom: u64,
    pub transcodes: u64,
    pub max_transcodes: u64,
}

/// Totals over the nodes of `role` that are ready and not draining, from their reports.
pub fn totals(snap: &Snapshot, role: Role) -> Totals {
    let mut t = Totals::default();
    for n in snap.nodes_of(role).filter(|n| n.info.state == NodeState::Ready) {
        let Some(load) = snap.load(role, &n.id) else { continue };
        let r = &load.report;
        if r.draining {
            continue;
        }
        let viewers = r.total_viewers();
        t.viewers = t.viewers.saturating_add(viewers);
        t.max_viewers = t.max_viewers.saturating_add(r.capacity.max_viewers);
        t.egress_bps = t.egress_bps.saturating_add(r.egress_bps);
        t.max_egress_bps = t.max_egress_bps.saturating_add(r.capacity.max_egress_bps);
        t.cpu_millicores = t.cpu_millicores.saturating_add(r.cpu_millicores);
        t.viewer_headroom =
            t.viewer_headroom.saturating_add(r.capacity.max_viewers.saturating_sub(viewers));
        t.transcodes = t.transcodes.saturating_add(r.transcodes);
        t.max_transcodes = t.max_transcodes.saturating_add(r.capacity.max_transcodes);
    }
    t
}

/// Default target utilisation for [`recommended_edges`]: edges at 60 % of capacity leave room
/// for a popular stream's arrival and for one edge failing.
pub const DEFAULT_TARGET_UTILISATION: f64 = 0.6;

/// How many edges the current edge load needs so that, on average, edges run at `target`
/// (0 < target <= 1) of their viewer and egress capacity: the larger of the two needs, and at
/// least one edge. Sized on the mean capacity of the reporting edges; `None` when no edge has
/// reported a capacity.
pub fn recommended_edges(edges: &Totals, reporting: u64, target: f64) -> Option<u64> {
    if reporting == 0 || !(target > 0.0 && target <= 1.0) {
        return None;
    }
    let need = |used: u64, capacity: u64| -> Option<f64> {
        (capacity > 0).then(|| used as f64 / (target * capacity as f64 / reporting as f64))
    };
    let viewers = need(edges.viewers, edges.max_viewers);
    let egress = need(edges.egress_bps, edges.max_egress_bps);
    let n = viewers
        .into_iter()
        .chain(egress)
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))?;
    Some((n.ceil() as u64).max(1))
}

/// Edges of `snap` that are ready, not draining and have reported a load.
pub fn reporting_edges(snap: &Snapshot) -> u64 {
    snap.nodes_of(Role::Edge)
        .filter(|n| n.info.state == NodeState::Ready)
        .filter(|n| snap.load(Role::Edge, &n.id).is_some_and(|l| !l.report.draining))
        .count() as u64
}

/// A stream's live figures as the API shows them (zeros where no report has them yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamFigures {
    pub width: u32,
    pub height: u32,
    /// Frames per second, in thousandths.
    pub fps_milli: u32,
    pub ingress_bps: u64,
    /// Viewers (relay feeds not counted) by node id; nodes without any are left out.
    pub viewers: BTreeMap<String, u64>,
}

/// The figures of `stream`: picture size and rates from its ingest origin's latest load report
/// (the node that receives the publisher's frames), viewers from every node's report (edges,
/// and origins that serve viewers themselves). An origin and an edge sharing an id are summed.
pub fn stream_figures(snap: &Snapshot, stream: &StreamRecord) -> StreamFigures {
    let media = snap
        .load(Role::Origin, &stream.info.origin)
        .and_then(|l| l.report.by_stream.get(&stream.stream))
        .copied()
        .unwrap_or_default();
    let mut viewers = BTreeMap::new();
    for load in snap.loads.values() {
        let Some(here) = load.report.by_stream.get(&stream.stream) else { continue };
        if here.viewers > 0 {
            let n: &mut u64 = viewers.entry(load.id.to_string()).or_default();
            *n = n.saturating_add(here.viewers);
        }
    }
    StreamFigures {
        width: media.width,
        height: media.height,
        fps_milli: media.fps_milli,
        ingress_bps: media.ingress_bps,
        viewers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assign::BalanceFactor;
    use sluice_cluster::types::{LoadCapacity, LoadRecord, NodeInfo, StreamInfo, StreamRecord};

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn sk(name: &str) -> StreamKey {
        StreamKey::parse("live", name).unwrap().0
    }

    fn node(snap: &mut Snapshot, role: Role, name: &str, state: NodeState) {
        let mut info = NodeInfo { state, ..NodeInfo::default() };
        info.addresses.insert("http".into(), format!("{name}.example:8080"));
        info.addresses.insert("rtmp".into(), format!("{name}.example:1935"));
        let rec =
            NodeRecord { role, id: id(name), info, lease: 1, create_revision: 1, mod_revision: 1 };
        snap.nodes.insert((role, id(name)), rec);
    }

    fn load(snap: &mut Snapshot, name: &str, viewers: u64, max: u64, draining: bool, rev: i64) {
        let mut report = LoadReport {
            capacity: LoadCapacity { max_viewers: max, max_egress_bps: 0, max_transcodes: 0 },
            draining,
            ..LoadReport::default()
        };
        report.viewers.insert("flv".into(), viewers);
        let rec =
            LoadRecord { role: Role::Edge, id: id(name), report, lease: 1, mod_revision: rev };
        snap.loads.insert((Role::Edge, id(name)), rec);
    }

    fn publish(snap: &mut Snapshot, name: &str) {
        let info = StreamInfo {
            origin: id("o1"),
            codecs: vec![],
            started_at_ms: 0,
            rendition_of: None,
            playout: false,
        };
        let rec =
            StreamRecord { stream: sk(name), info, lease: 1, create_revision: 5, mod_revision: 5 };
        snap.streams.insert(sk(name), rec);
    }

    fn cluster() -> Snapshot {
        let mut snap = Snapshot { revision: 10, ..Snapshot::default() };
        node(&mut snap, Role::Origin, "o1", NodeState::Ready);
        node(&mut snap, Role::Edge, "e1", NodeState::Ready);
        node(&mut snap, Role::Edge, "e2", NodeState::Ready);
        node(&mut snap, Role::Edge, "e3", NodeState::Starting);
        node(&mut snap, Role::Edge, "e4", NodeState::Ready);
        load(&mut snap, "e1", 10, 100, false, 7);
        load(&mut snap, "e4", 0, 100, true, 7);
        publish(&mut snap, "x");
        snap
    }

    #[test]
    fn only_ready_non_draining_edges_are_eligible() {
        let edges = eligible_edges(&cluster(), &Pending::default());
        let ids: Vec<_> = edges.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2"]);
        assert_eq!((edges[0].load, edges[0].capacity), (10, 100));
        assert_eq!((edges[1].load, edges[1].capacity), (0, DEFAULT_EDGE_CAPACITY));
        // A drain order takes an edge out at once, before the edge reports itself draining.
        let mut snap = cluster();
        let order = sluice_cluster::types::DrainRecord {
            role: Role::Edge,
            id: id("e1"),
            order: sluice_cluster::types::DrainOrder::default(),
            mod_revision: 11,
        };
        snap.drains.insert((Role::Edge, id("e1")), order);
        let edges = eligible_edges(&snap, &Pending::default());
        assert_eq!(edges.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), ["e2"]);
    }

    #[test]
    fn assignment_needs_a_publisher_and_gives_an_absolute_url() {
        let snap = cluster();
        let mut pending = Pending::default();
        let f = &mut Assigner::new([], BalanceFactor::default());
        assert_eq!(
            assign_viewer(&snap, &mut pending, f, &sk("nobody"), PlayProtocol::Flv, &[]),
            Err(ChoiceError::NoPublisher)
        );
        let c = assign_viewer(&snap, &mut pending, f, &sk("x"), PlayProtocol::Flv, &[]).unwrap();
        assert!(c.edge == "e1" || c.edge == "e2");
        assert_eq!(c.url, format!("http://{}.example:8080/live/x.flv", c.edge));
        let h = assign_viewer(&snap, &mut pending, f, &sk("x"), PlayProtocol::Hls, &[]).unwrap();
        assert!(h.url.ends_with("/live/x.m3u8"));
        let r = assign_viewer(&snap, &mut pending, f, &sk("x"), PlayProtocol::Rtmp, &[]).unwrap();
        assert!(r.url.starts_with("rtmp://") && r.url.ends_with(":1935/live/x"));
    }

    #[test]
    fn an_edge_that_serves_https_and_rtmps_is_handed_out_over_them() {
        let mut snap = cluster();
        for ((_, id), node) in &mut snap.nodes {
            let https = format!("{id}.example:443");
            node.info.addresses.insert("https".to_string(), https);
        }
        let f = &mut Assigner::new([], BalanceFactor::default());
        let mut pending = Pending::default();
        let c = assign_viewer(&snap, &mut pending, f, &sk("x"), PlayProtocol::Hls, &[]).unwrap();
        assert_eq!(c.url, format!("https://{}.example:443/live/x.m3u8", c.edge));
        let r = assign_viewer(&snap, &mut pending, f, &sk("x"), PlayProtocol::Rtmp, &[]).unwrap();
        assert!(r.url.starts_with("rtmp://"), "RTMP stays RTMP without RTMPS: {}", r.url);
        for ((_, id), node) in &mut snap.nodes {
            node.info.addresses.insert("rtmps".to_string(), format!("{id}.example:1936"));
        }
        let r = assign_viewer(&snap, &mut pending, f, &sk("x"), PlayProtocol::Rtmp, &[]).unwrap();
        assert_eq!(r.url, format!("rtmps://{}.example:1936/live/x", r.edge));
    }

    #[test]
    fn no_edges_is_an_error() {
        let mut snap = cluster();
        snap.nodes.retain(|(role, _), _| *role == Role::Origin);
        let got = assign_viewer(
            &snap,
            &mut Pending::default(),
            &mut Assigner::new([], BalanceFactor::default()),
            &sk("x"),
            PlayProtocol::Flv,
            &[],
        );
        assert_eq!(got, Err(ChoiceError::Assign(AssignError::NoEdges)));
    }

    #[test]
    fn pending_counts_until_the_next_report() {
        let mut snap = cluster();
        let mut pending = Pending::default();
        pending.add(&id("e1"), 7);
        pending.add(&id("e1"), 7);
        assert_eq!(eligible_edges(&snap, &pending)[0].load, 12);
        // A newer report replaces the pending count.
        load(&mut snap, "e1", 12, 100, false, 8);
        assert_eq!(eligible_edges(&snap, &pending)[0].load, 12);
        snap.nodes.remove(&(Role::Edge, id("e1")));
        pending.retain_known(&snap);
        assert_eq!(pending.get(&id("e1"), 7), 0);
    }

    #[test]
    fn ingest_home_is_the_ring_owner_among_ready_origins() {
        let mut snap = cluster();
        let (home, url) = ingest_home(&snap, &sk("x")).unwrap();
        assert_eq!(home.as_str(), "o1");
        assert_eq!(url, "rtmp://o1.example:1935/live/x");
        snap.nodes.retain(|(role, _), _| *role == Role::Edge);
        assert_eq!(ingest_home(&snap, &sk("x")), None);
    }

    #[test]
    fn recommended_edges_size_for_the_target_utilisation() {
        let t = Totals {
            viewers: 1_200,
            max_viewers: 4_000,
            egress_bps: 1_000,
            max_egress_bps: 1_000_000,
            ..Totals::default()
        };
        // 4 edges of 1 000 viewers at 60 %: 1 200 / 600 = 2 edges.
        assert_eq!(recommended_edges(&t, 4, 0.6), Some(2));
        // Egress can be the tighter figure: 900 000 of 1 000 000 bit/s over 4 edges at 60 %.
        let hot = Totals { egress_bps: 900_000, ..t };
        assert_eq!(recommended_edges(&hot, 4, 0.6), Some(6));
        // Idle: still one edge; nothing reported or a bad target: no figure.
        assert_eq!(
            recommended_edges(&Totals { max_viewers: 10, ..Totals::default() }, 1, 0.6),
            Some(1)
        );
        assert_eq!(recommended_edges(&t, 0, 0.6), None);
        assert_eq!(recommended_edges(&t, 4, 0.0), None);
        assert_eq!(recommended_edges(&t, 4, f64::NAN), None);
        assert_eq!(reporting_edges(&cluster()), 1);
    }

    #[test]
    fn stream_figures_come_from_the_ingest_origin_and_every_node() {
        use sluice_cluster::types::StreamLoad;
        let mut snap = cluster();
        let figures = |snap: &Snapshot| stream_figures(snap, snap.stream(&sk("x")).unwrap());
        assert_eq!(figures(&snap), StreamFigures::default(), "nothing reported yet");

        let mut report = |role: Role, name: &str, stream: StreamLoad| {
            let mut report = LoadReport::default();
            report.by_stream.insert(sk("x"), stream);
            let rec = LoadRecord { role, id: id(name), report, lease: 1, mod_revision: 9 };
            snap.loads.insert((role, id(name)), rec);
        };
        let media = StreamLoad {
            width: 1280,
            height: 720,
            fps_milli: 30_000,
            ingress_bps: 2_000_000,
            ..StreamLoad::default()
        };
        report(Role::Origin, "o1", media);
        // Another origin relaying the stream (its home, say) measures it too: not the source.
        report(Role::Origin, "o2", StreamLoad { width: 640, viewers: 1, ..StreamLoad::default() });
        report(Role::Edge, "e1", StreamLoad { viewers: 2, ..StreamLoad::default() });
        report(Role::Edge, "e2", StreamLoad { viewers: 1, ..StreamLoad::default() });
        report(Role::Edge, "e4", StreamLoad::default());
        // An edge with the same id as an origin: summed.
        report(Role::Edge, "o2", StreamLoad { viewers: 3, ..StreamLoad::default() });
        let f = figures(&snap);
        assert_eq!((f.width, f.height, f.fps_milli, f.ingress_bps), (1280, 720, 30_000, 2_000_000));
        let viewers: Vec<_> = f.viewers.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(viewers, [("e1", 2), ("e2", 1), ("o2", 4)]);
    }

    #[test]
    fn totals_skip_draining_and_unreported_nodes() {
        let t = totals(&cluster(), Role::Edge);
        assert_eq!((t.viewers, t.max_viewers, t.viewer_headroom), (10, 100, 90));
    }
}
