//! The gRPC front end: `sluice.control.v1.ControlPlane` over [`ControlPlane`].

use crate::assign::AssignError;
use crate::service::ControlPlane;
use crate::view::{ChoiceError, PlayProtocol, Totals};
use sluice_cluster::types::{LoadRecord, NodeRecord, NodeState, Role, Snapshot};
use sluice_cluster::Ring;
use sluice_media::stream_name::StreamKey;
use sluice_proto::control::v1 as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The service; clone of an `Arc`.
#[derive(Clone)]
pub struct Grpc(pub Arc<ControlPlane>);

fn stream_key(app: &str, name: &str) -> Result<StreamKey, Status> {
    match StreamKey::parse(app, name) {
        Ok((key, None)) => Ok(key),
        _ => Err(Status::invalid_argument(format!("invalid stream name {app:?}/{name:?}"))),
    }
}

fn protocol(p: pb::Protocol) -> PlayProtocol {
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

fn state_name(s: NodeState) -> &'static str {
    match s {
        NodeState::Starting => "starting",
        NodeState::Ready => "ready",
        NodeState::Draining => "draining",
    }
}

fn node_load(l: &LoadRecord) -> pb::NodeLoad {
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

fn node(snap: &Snapshot, n: &NodeRecord) -> pb::Node {
    pb::Node {
        id: n.id.to_string(),
        role: n.role.as_str().to_string(),
        state: state_name(n.info.state).to_string(),
        addresses: n.info.addresses.clone().into_iter().collect(),
        load: snap.load(n.role, &n.id).map(node_load),
    }
}

fn totals(t: Totals) -> pb::CapacityTotals {
    pb::CapacityTotals {
        viewers: t.viewers,
        max_viewers: t.max_viewers,
        egress_bps: t.egress_bps,
        max_egress_bps: t.max_egress_bps,
        cpu_millicores: t.cpu_millicores,
        viewer_headroom: t.viewer_headroom,
    }
}

#[tonic::async_trait]
impl pb::control_plane_server::ControlPlane for Grpc {
    async fn assign_viewer(
        &self,
        request: Request<pb::AssignViewerRequest>,
    ) -> Result<Response<pb::AssignViewerResponse>, Status> {
        let req = request.into_inner();
        let key = stream_key(&req.app, &req.stream)?;
        let proto = req.protocol();
        let choice = self.0.assign(&key, protocol(proto)).map_err(choice_status)?;
        Ok(Response::new(pb::AssignViewerResponse {
            url: choice.url,
            edge_id: choice.edge,
            protocol: proto.into(),
        }))
    }

    async fn resolve_ingest(
        &self,
        request: Request<pb::ResolveIngestRequest>,
    ) -> Result<Response<pb::ResolveIngestResponse>, Status> {
        let req = request.into_inner();
        let key = stream_key(&req.app, &req.stream)?;
        let (origin, url) =
            self.0.ingest(&key).ok_or_else(|| Status::unavailable("no origin is ready"))?;
        Ok(Response::new(pb::ResolveIngestResponse { url, origin_id: origin.to_string() }))
    }

    async fn get_capacity(
        &self,
        _request: Request<pb::GetCapacityRequest>,
    ) -> Result<Response<pb::GetCapacityResponse>, Status> {
        let snap = self.0.snapshot();
        Ok(Response::new(pb::GetCapacityResponse {
            nodes: snap.nodes.values().map(|n| node(&snap, n)).collect(),
            edges: Some(totals(self.0.totals(Role::Edge))),
            origins: Some(totals(self.0.totals(Role::Origin))),
            recommended_edges: self.0.recommended_edges(),
            target_utilisation: self.0.target_utilisation(),
        }))
    }

    async fn list_nodes(
        &self,
        _request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let snap = self.0.snapshot();
        Ok(Response::new(pb::ListNodesResponse {
            nodes: snap.nodes.values().map(|n| node(&snap, n)).collect(),
        }))
    }

    async fn list_streams(
        &self,
        _request: Request<pb::ListStreamsRequest>,
    ) -> Result<Response<pb::ListStreamsResponse>, Status> {
        let snap = self.0.snapshot();
        let ring = Ring::new(snap.ready_origins(), sluice_cluster::DEFAULT_VNODES);
        let streams = snap
            .streams
            .values()
            .map(|s| pb::Stream {
                app: s.stream.app().to_string(),
                name: s.stream.name().to_string(),
                origin: s.info.origin.to_string(),
                home: ring.owner(&s.stream).map(ToString::to_string).unwrap_or_default(),
                codecs: s.info.codecs.clone(),
                started_at_ms: s.info.started_at_ms,
            })
            .collect();
        Ok(Response::new(pb::ListStreamsResponse { streams }))
    }
}
