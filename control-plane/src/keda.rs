//! KEDA's external scaler (`externalscaler.ExternalScaler`), so KEDA can scale the edge
//! Deployment on the cluster's own figures, without Prometheus in between.
//!
//! One metric, [`METRIC_NAME`]: its value is the viewers on ready, non-draining edges, its
//! target the viewers one edge should carry (its capacity at the target utilisation), so the
//! HPA KEDA drives computes `replicas = ceil(viewers / target)`, the same figure as
//! `GetCapacity`'s `recommended_edges` for the viewer dimension. The target is the trigger's
//! `targetViewersPerEdge` metadata when given, else the mean reported edge capacity times the
//! control plane's `--target-utilisation`. `IsActive` is true while any stream is live, so an
//! idle cluster may scale its edges to KEDA's minimum (zero if the ScaledObject allows it).
//!
//! The ScaledObject for the edges (the Helm chart writes the same):
//!
//! ```yaml
//! apiVersion: keda.sh/v1alpha1
//! kind: ScaledObject
//! metadata:
//!   name: sluice-edge
//! spec:
//!   scaleTargetRef:
//!     name: sluice-edge            # the edge Deployment
//!   minReplicaCount: 1
//!   maxReplicaCount: 50
//!   triggers:
//!     - type: external             # or external-push (uses StreamIsActive)
//!       metricType: AverageValue
//!       metadata:
//!         scalerAddress: sluice-control-plane.sluice.svc:50051
//!         metricName: sluice-edge-viewers     # informative; the scaler names its metric
//!         targetViewersPerEdge: "6000"        # optional; default capacity x utilisation
//! ```
//!
//! KEDA sends no bearer token, so these calls are open (they reveal only viewer counts); with
//! `--tls-cert`, give the trigger KEDA's `caCert` so it can verify the control plane.

use crate::service::ControlPlane;
use crate::view::{self, DEFAULT_EDGE_CAPACITY};
use sluice_cluster::types::{Role, Snapshot};
use sluice_proto::externalscaler as pb;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

/// The one metric this scaler serves.
pub const METRIC_NAME: &str = "sluice-edge-viewers";

/// The trigger metadata key that sets the per-edge target.
pub const TARGET_KEY: &str = "targetViewersPerEdge";

/// Why the trigger's metadata was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{TARGET_KEY} is a positive number of viewers, not {0:?}")]
pub struct BadTarget(pub String);

/// Viewers one edge should carry: the trigger's `targetViewersPerEdge`, else the mean
/// reported capacity of ready, non-draining edges (the default capacity before any report)
/// times `utilisation`. At least 1, so KEDA never divides by zero.
pub fn target_per_edge(
    snap: &Snapshot,
    metadata: &HashMap<String, String>,
    utilisation: f64,
) -> Result<f64, BadTarget> {
    if let Some(text) = metadata.get(TARGET_KEY) {
        return match text.trim().parse::<f64>() {
            Ok(t) if t.is_finite() && t >= 1.0 => Ok(t),
            _ => Err(BadTarget(text.clone())),
        };
    }
    let totals = view::totals(snap, Role::Edge);
    let reporting = view::reporting_edges(snap);
    let mean_capacity = if reporting > 0 && totals.max_viewers > 0 {
        totals.max_viewers as f64 / reporting as f64
    } else {
        DEFAULT_EDGE_CAPACITY as f64
    };
    Ok((mean_capacity * utilisation).max(1.0))
}

/// The metric's value: viewers on ready, non-draining edges.
pub fn edge_viewers(snap: &Snapshot) -> u64 {
    view::totals(snap, Role::Edge).viewers
}

/// Whether KEDA should keep edges running: some stream is live.
pub fn is_active(snap: &Snapshot) -> bool {
    !snap.streams.is_empty()
}

/// Whether `name` (as KEDA sends it) is our metric. KEDA strips its `sN-` trigger prefix
/// before asking; an empty name is taken as ours too.
pub fn is_our_metric(name: &str) -> bool {
    name.is_empty() || name == METRIC_NAME || name.ends_with(&format!("-{METRIC_NAME}"))
}

fn bad_target(e: BadTarget) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The scaler service; clone of an `Arc`.
#[derive(Clone)]
pub struct Scaler(pub Arc<ControlPlane>);

type ActiveStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::IsActiveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::external_scaler_server::ExternalScaler for Scaler {
    async fn is_active(
        &self,
        _request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<pb::IsActiveResponse>, Status> {
        Ok(Response::new(pb::IsActiveResponse { result: is_active(&self.0.snapshot()) }))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        _request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<ActiveStream>, Status> {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(push_activity(self.0.subscribe(), self.0.closing(), tx));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn get_metric_spec(
        &self,
        request: Request<pb::ScaledObjectRef>,
    ) -> Result<Response<pb::GetMetricSpecResponse>, Status> {
        let metadata = request.into_inner().scaler_metadata;
        let target = target_per_edge(&self.0.snapshot(), &metadata, self.0.target_utilisation())
            .map_err(bad_target)?;
        Ok(Response::new(pb::GetMetricSpecResponse {
            metric_specs: vec![pb::MetricSpec {
                metric_name: METRIC_NAME.to_string(),
                target_size: target.ceil() as i64,
                target_size_float: target,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<pb::GetMetricsRequest>,
    ) -> Result<Response<pb::GetMetricsResponse>, Status> {
        let req = request.into_inner();
        if !is_our_metric(&req.metric_name) {
            return Err(Status::not_found(format!(
                "no metric {:?}: this scaler serves {METRIC_NAME:?}",
                req.metric_name
            )));
        }
        let viewers = edge_viewers(&self.0.snapshot());
        Ok(Response::new(pb::GetMetricsResponse {
            metric_values: vec![pb::MetricValue {
                metric_name: METRIC_NAME.to_string(),
                metric_value: i64::try_from(viewers).unwrap_or(i64::MAX),
                metric_value_float: viewers as f64,
            }],
        }))
    }
}

/// `StreamIsActive`'s task: the answer now, then each time it changes, until the client goes
/// away (the channel closes), the cache stops or the replica stops (`closing`).
async fn push_activity(
    mut snapshots: watch::Receiver<Snapshot>,
    mut closing: watch::Receiver<bool>,
    tx: mpsc::Sender<Result<pb::IsActiveResponse, Status>>,
) {
    let mut last = None;
    loop {
        let active = is_active(&snapshots.borrow_and_update());
        if last != Some(active) {
            last = Some(active);
            if tx.send(Ok(pb::IsActiveResponse { result: active })).await.is_err() {
                return;
            }
        }
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
            _ = closing.wait_for(|c| *c) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::types::{
        LoadCapacity, LoadRecord, LoadReport, NodeId, NodeInfo, NodeRecord, StreamInfo,
        StreamRecord,
    };
    use sluice_media::stream_name::StreamKey;

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn edge(snap: &mut Snapshot, name: &str, viewers: u64, max: u64, draining: bool) {
        let rec = NodeRecord {
            role: Role::Edge,
            id: id(name),
            info: NodeInfo::default(),
            lease: 1,
            create_revision: 1,
            mod_revision: 1,
        };
        snap.nodes.insert((Role::Edge, id(name)), rec);
        let mut report = LoadReport {
            capacity: LoadCapacity { max_viewers: max, max_egress_bps: 0, max_transcodes: 0 },
            draining,
            ..LoadReport::default()
        };
        report.viewers.insert("flv".into(), viewers);
        report.viewers.insert("relay".into(), 1_000);
        let rec = LoadRecord { role: Role::Edge, id: id(name), report, lease: 1, mod_revision: 2 };
        snap.loads.insert((Role::Edge, id(name)), rec);
    }

    fn publish(snap: &mut Snapshot, name: &str) {
        let key = StreamKey::parse("live", name).unwrap().0;
        let info = StreamInfo {
            origin: id("o1"),
            codecs: vec![],
            started_at_ms: 0,
            rendition_of: None,
            playout: false,
        };
        let rec = StreamRecord {
            stream: key.clone(),
            info,
            lease: 1,
            create_revision: 3,
            mod_revision: 3,
        };
        snap.streams.insert(key, rec);
    }

    fn meta(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_target_is_mean_capacity_at_the_utilisation_or_the_trigger_s_figure() {
        let mut snap = Snapshot::default();
        // Nothing reported: the default capacity.
        let t = target_per_edge(&snap, &meta(&[]), 0.6).unwrap();
        assert!((t - DEFAULT_EDGE_CAPACITY as f64 * 0.6).abs() < 1e-9);
        edge(&mut snap, "e1", 300, 1_000, false);
        edge(&mut snap, "e2", 100, 3_000, false);
        // A draining edge counts neither its viewers nor its capacity.
        edge(&mut snap, "e3", 50, 10_000, true);
        let t = target_per_edge(&snap, &meta(&[]), 0.5).unwrap();
        assert!((t - 1_000.0).abs() < 1e-9, "mean 2 000 at 50 %: {t}");
        let t = target_per_edge(&snap, &meta(&[(TARGET_KEY, " 250 ")]), 0.5).unwrap();
        assert!((t - 250.0).abs() < 1e-9);
        for bad in ["0", "-3", "many", "NaN", ""] {
            assert_eq!(
                target_per_edge(&snap, &meta(&[(TARGET_KEY, bad)]), 0.5),
                Err(BadTarget(bad.to_string()))
            );
        }
        // Relay viewers are not audience.
        assert_eq!(edge_viewers(&snap), 400);
        // KEDA's HPA: ceil(400 / 250) = 2 edges.
        assert_eq!((edge_viewers(&snap) as f64 / 250.0).ceil() as u64, 2);
    }

    #[test]
    fn active_while_a_stream_is_live_and_the_metric_name_is_ours() {
        let mut snap = Snapshot::default();
        assert!(!is_active(&snap));
        publish(&mut snap, "x");
        assert!(is_active(&snap));
        assert!(is_our_metric(METRIC_NAME));
        assert!(is_our_metric("s0-sluice-edge-viewers"));
        assert!(is_our_metric(""));
        assert!(!is_our_metric("cpu"));
    }

    #[tokio::test(start_paused = true)]
    async fn stream_is_active_sends_changes_until_the_client_goes_away() {
        let (tx, rx) = watch::channel(Snapshot::default());
        let (_closing, closed) = watch::channel(false);
        let (out, mut answers) = mpsc::channel(4);
        let task = tokio::spawn(push_activity(rx, closed, out));
        async fn next(answers: &mut mpsc::Receiver<Result<pb::IsActiveResponse, Status>>) -> bool {
            answers.recv().await.unwrap().unwrap().result
        }
        assert!(!next(&mut answers).await);
        let mut live = Snapshot::default();
        publish(&mut live, "x");
        tx.send(live.clone()).unwrap();
        assert!(next(&mut answers).await);
        // A new snapshot with the same answer sends nothing; the next change does.
        let mut loaded = live.clone();
        edge(&mut loaded, "e1", 5, 100, false);
        tx.send(loaded).unwrap();
        tx.send(Snapshot::default()).unwrap();
        assert!(!next(&mut answers).await);
        drop(answers);
        task.await.unwrap();
    }
}
