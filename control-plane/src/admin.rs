//! Management orders: drain, undrain, kick. Orders are written to etcd so every replica (and
//! the nodes themselves) see them; the control plane keeps none of its own.

use crate::service::ControlPlane;
use sluice_proto::control::v1 as pb;
use tonic::Status;

/// Drain a node (see `DrainNode` in control.proto).
pub async fn drain(
    _cp: &ControlPlane,
    _req: pb::DrainNodeRequest,
) -> Result<pb::DrainNodeResponse, Status> {
    Err(Status::unimplemented("DrainNode is not built yet"))
}

/// Cancel a drain order.
pub async fn undrain(
    _cp: &ControlPlane,
    _req: pb::UndrainNodeRequest,
) -> Result<pb::UndrainNodeResponse, Status> {
    Err(Status::unimplemented("UndrainNode is not built yet"))
}

/// Close a stream's publisher on its ingest origin.
pub async fn kick(
    _cp: &ControlPlane,
    _req: pb::KickPublisherRequest,
) -> Result<pb::KickPublisherResponse, Status> {
    Err(Status::unimplemented("KickPublisher is not built yet"))
}
