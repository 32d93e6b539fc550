//! `/metrics` of a replica, with prometheus-client: the replica's own counters
//! (`crate::counters`) and, read from the watch cache at each scrape, the cluster's figures as `GetCapacity`
//! reports them: totals per role over ready, non-draining nodes, the recommended edge count,
//! and every node's own figures from its last load report.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use sluice_cluster::types::{NodeState, Role, Snapshot};

use crate::service::ControlPlane;
use crate::view::{self, Totals};

/// The registry a replica serves on `/metrics`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    pub fn new(control: Arc<ControlPlane>) -> Metrics {
        let mut registry = Registry::default();
        control.counters().register(&mut registry);
        registry.register_collector(Box::new(ClusterFigures(control)));
        Metrics { registry }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The cluster's figures, computed from the snapshot when scraped.
struct ClusterFigures(Arc<ControlPlane>);

impl std::fmt::Debug for ClusterFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterFigures")
    }
}

impl Collector for ClusterFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // One snapshot for every figure of the scrape, so they agree with each other.
        let control = &self.0;
        let snap = control.snapshot();
        let ready = i64::from(crate::service::cache_is_ready(&snap));
        let help = "1 once the cluster cache is loaded and follows etcd";
        gauge(&mut encoder, "sluice_control_plane_ready", help, ready)?;
        let totals = [Role::Edge, Role::Origin].map(|r| (r, view::totals(&snap, r)));
        totals_by_role(&mut encoder, &totals)?;
        let reporting = view::reporting_edges(&snap);
        let recommended =
            view::recommended_edges(&totals[0].1, reporting, control.target_utilisation());
        if let Some(n) = recommended {
            let help = "Edges the load needs at the target utilisation";
            gauge(&mut encoder, "sluice_cluster_recommended_edges", help, as_gauge(n))?;
        }
        nodes(&mut encoder, &snap)
    }
}

/// Gauges are i64; figures from the cache are bounded far below that.
fn as_gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: i64) -> std::fmt::Result {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One gauge family with a value per label set.
fn family(
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    values: &[(Vec<(&'static str, String)>, i64)],
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, value) in values {
        ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

/// One figure of [`Totals`].
type TotalsField = fn(&Totals) -> u64;

/// `GetCapacity`'s totals, per role (ready, non-draining nodes).
fn totals_by_role(encoder: &mut DescriptorEncoder, roles: &[(Role, Totals)]) -> std::fmt::Result {
    let fields: [(&str, &str, TotalsField); 8] = [
        ("sluice_cluster_viewers", "Viewers on ready, non-draining nodes", |t| t.viewers),
        ("sluice_cluster_max_viewers", "Viewer capacity of those nodes", |t| t.max_viewers),
        ("sluice_cluster_egress_bps", "Egress of those nodes, bit/s", |t| t.egress_bps),
        ("sluice_cluster_max_egress_bps", "Egress capacity of those nodes, bit/s", |t| {
            t.max_egress_bps
        }),
        ("sluice_cluster_cpu_millicores", "CPU use of those nodes, thousandths of a core", |t| {
            t.cpu_millicores
        }),
        ("sluice_cluster_viewer_headroom", "Viewers those nodes can still take", |t| {
            t.viewer_headroom
        }),
        ("sluice_cluster_transcodes", "Streams those nodes transcode", |t| t.transcodes),
        ("sluice_cluster_max_transcodes", "Streams those nodes may transcode at once", |t| {
            t.max_transcodes
        }),
    ];
    for (name, help, field) in fields {
        let values: Vec<_> = roles
            .iter()
            .map(|(role, t)| (vec![("role", role.as_str().to_string())], as_gauge(field(t))))
            .collect();
        family(encoder, (name, help), &values)?;
    }
    Ok(())
}

/// Every node's figures from its last load report, and whether it takes new work.
fn nodes(encoder: &mut DescriptorEncoder, snap: &Snapshot) -> std::fmt::Result {
    let mut up = Vec::new();
    let mut reported: [Vec<_>; 6] = Default::default();
    for n in snap.nodes.values() {
        let labels = vec![("role", n.role.as_str().to_string()), ("node", n.id.to_string())];
        let load = snap.load(n.role, &n.id).map(|l| &l.report);
        let serving = n.info.state == NodeState::Ready && load.is_some_and(|r| !r.draining);
        up.push((labels.clone(), i64::from(serving)));
        let Some(r) = load else { continue };
        let figures = [
            r.total_viewers(),
            r.capacity.max_viewers,
            r.egress_bps,
            r.cpu_millicores,
            r.memory_bytes,
            r.streams,
        ];
        for (list, value) in reported.iter_mut().zip(figures) {
            list.push((labels.clone(), as_gauge(value)));
        }
    }
    family(
        encoder,
        ("sluice_cluster_node_serving", "1 when the node is ready and not draining"),
        &up,
    )?;
    let names = [
        ("sluice_cluster_node_viewers", "Viewers on the node (relays excluded), last report"),
        ("sluice_cluster_node_max_viewers", "The node's configured viewer capacity"),
        ("sluice_cluster_node_egress_bps", "The node's egress, bit/s, last report"),
        ("sluice_cluster_node_cpu_millicores", "The node's CPU use, thousandths of a core"),
        ("sluice_cluster_node_memory_bytes", "The node's resident memory"),
        ("sluice_cluster_node_streams", "Streams live on the node"),
    ];
    for (name, values) in names.into_iter().zip(&reported) {
        family(encoder, name, values)?;
    }
    Ok(())
}
