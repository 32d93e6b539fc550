//! The gRPC front end: `sluice.control.v1.ControlPlane` over [`ControlPlane`]. Each method
//! only translates; conversions live in [`crate::convert`], management in [`crate::admin`],
//! the event stream in [`crate::watch`], the recordings calls in [`crate::recordings`].

use crate::convert::{
    choice_status, find_node, node, origin_ring, protocol, stream, stream_key, totals,
};
use crate::recordings::Recordings;
use crate::service::ControlPlane;
use crate::view::parse_avoid;
use sluice_cluster::types::Role;
use sluice_proto::control::v1 as pb;
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The service; clones share the replica.
#[derive(Clone)]
pub struct Grpc {
    pub control: Arc<ControlPlane>,
    /// The recordings calls (the origins' HTTP APIs).
    pub recordings: Arc<Recordings>,
    /// The content catalog (`--catalog`), when there is one.
    pub catalog: Option<sluice_catalog::Catalog>,
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
        let avoid = parse_avoid(req.avoid_edges.iter().map(String::as_str))
            .map_err(Status::invalid_argument)?;
        let client = match req.client_ip.as_str() {
            "" => None,
            ip => Some(
                ip.parse().map_err(|_| Status::invalid_argument("client_ip: not an IP address"))?,
            ),
        };
        let choice =
            self.control.assign(&key, protocol(proto), &avoid, client).map_err(choice_status)?;
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
            self.control.ingest(&key).ok_or_else(|| Status::unavailable("no origin is ready"))?;
        Ok(Response::new(pb::ResolveIngestResponse { url, origin_id: origin.to_string() }))
    }

    async fn get_capacity(
        &self,
        _request: Request<pb::GetCapacityRequest>,
    ) -> Result<Response<pb::GetCapacityResponse>, Status> {
        let snap = self.control.snapshot();
        Ok(Response::new(pb::GetCapacityResponse {
            nodes: snap.nodes.values().map(|n| node(&snap, n)).collect(),
            edges: Some(totals(self.control.totals(Role::Edge))),
            origins: Some(totals(self.control.totals(Role::Origin))),
            recommended_edges: self.control.recommended_edges(),
            target_utilisation: self.control.target_utilisation(),
        }))
    }

    async fn list_nodes(
        &self,
        _request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let snap = self.control.snapshot();
        Ok(Response::new(pb::ListNodesResponse {
            nodes: snap.nodes.values().map(|n| node(&snap, n)).collect(),
        }))
    }

    async fn list_streams(
        &self,
        _request: Request<pb::ListStreamsRequest>,
    ) -> Result<Response<pb::ListStreamsResponse>, Status> {
        let snap = self.control.snapshot();
        let ring = origin_ring(&snap);
        let streams = snap.streams.values().map(|s| stream(&snap, &ring, s)).collect();
        Ok(Response::new(pb::ListStreamsResponse { streams }))
    }

    async fn get_node(
        &self,
        request: Request<pb::GetNodeRequest>,
    ) -> Result<Response<pb::Node>, Status> {
        let req = request.into_inner();
        let snap = self.control.snapshot();
        let n = find_node(&snap, &req.id, &req.role)?;
        Ok(Response::new(node(&snap, n)))
    }

    async fn get_stream(
        &self,
        request: Request<pb::GetStreamRequest>,
    ) -> Result<Response<pb::Stream>, Status> {
        let req = request.into_inner();
        let key = stream_key(&req.app, &req.stream)?;
        let snap = self.control.snapshot();
        let s = snap
            .streams
            .get(&key)
            .ok_or_else(|| Status::not_found(format!("{key} has no publisher")))?;
        Ok(Response::new(stream(&snap, &origin_ring(&snap), s)))
    }

    async fn drain_node(
        &self,
        request: Request<pb::DrainNodeRequest>,
    ) -> Result<Response<pb::DrainNodeResponse>, Status> {
        crate::admin::drain(&self.control, request.into_inner()).await.map(Response::new)
    }

    async fn undrain_node(
        &self,
        request: Request<pb::UndrainNodeRequest>,
    ) -> Result<Response<pb::UndrainNodeResponse>, Status> {
        crate::admin::undrain(&self.control, request.into_inner()).await.map(Response::new)
    }

    async fn kick_publisher(
        &self,
        request: Request<pb::KickPublisherRequest>,
    ) -> Result<Response<pb::KickPublisherResponse>, Status> {
        crate::admin::kick(&self.control, request.into_inner()).await.map(Response::new)
    }

    async fn list_recordings(
        &self,
        request: Request<pb::ListRecordingsRequest>,
    ) -> Result<Response<pb::ListRecordingsResponse>, Status> {
        let snap = self.control.snapshot();
        self.recordings.list(&snap, request.into_inner()).await.map(Response::new)
    }

    async fn get_recording(
        &self,
        request: Request<pb::GetRecordingRequest>,
    ) -> Result<Response<pb::Recording>, Status> {
        let snap = self.control.snapshot();
        self.recordings.get(&snap, request.into_inner()).await.map(Response::new)
    }

    async fn delete_recording(
        &self,
        request: Request<pb::DeleteRecordingRequest>,
    ) -> Result<Response<pb::DeleteRecordingResponse>, Status> {
        let snap = self.control.snapshot();
        self.recordings.delete(&snap, request.into_inner()).await.map(Response::new)
    }

    async fn set_ladder(
        &self,
        request: Request<pb::SetLadderRequest>,
    ) -> Result<Response<pb::Ladder>, Status> {
        crate::ladders::set(&self.control, request.into_inner()).await.map(Response::new)
    }

    async fn delete_ladder(
        &self,
        request: Request<pb::DeleteLadderRequest>,
    ) -> Result<Response<pb::DeleteLadderResponse>, Status> {
        crate::ladders::delete(&self.control, request.into_inner()).await.map(Response::new)
    }

    async fn add_schedule_entry(
        &self,
        request: Request<pb::AddScheduleEntryRequest>,
    ) -> Result<Response<pb::ScheduleEntry>, Status> {
        crate::schedule::add(&self.control, request.into_inner()).await.map(Response::new)
    }

    async fn remove_schedule_entry(
        &self,
        request: Request<pb::RemoveScheduleEntryRequest>,
    ) -> Result<Response<pb::RemoveScheduleEntryResponse>, Status> {
        crate::schedule::remove(&self.control, request.into_inner()).await.map(Response::new)
    }

    async fn list_schedule(
        &self,
        _request: Request<pb::ListScheduleRequest>,
    ) -> Result<Response<pb::ListScheduleResponse>, Status> {
        Ok(Response::new(crate::schedule::list(&self.control)))
    }

    async fn search_catalog(
        &self,
        request: Request<pb::SearchCatalogRequest>,
    ) -> Result<Response<pb::SearchCatalogResponse>, Status> {
        crate::catalog::search(self.catalog.as_ref(), request.into_inner()).await.map(Response::new)
    }

    async fn get_catalog_item(
        &self,
        request: Request<pb::GetCatalogItemRequest>,
    ) -> Result<Response<pb::CatalogItem>, Status> {
        crate::catalog::get(self.catalog.as_ref(), request.into_inner()).await.map(Response::new)
    }

    async fn update_catalog_item(
        &self,
        request: Request<pb::UpdateCatalogItemRequest>,
    ) -> Result<Response<pb::CatalogItem>, Status> {
        crate::catalog::update(self.catalog.as_ref(), request.into_inner()).await.map(Response::new)
    }

    async fn list_ladders(
        &self,
        _request: Request<pb::ListLaddersRequest>,
    ) -> Result<Response<pb::ListLaddersResponse>, Status> {
        Ok(Response::new(crate::ladders::list(&self.control)))
    }

    type WatchStream = crate::watch::EventStream;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Ok(Response::new(crate::watch::events(&self.control, request.into_inner())))
    }
}
