//! The `Watch` event stream: node and stream events from successive cache snapshots.

use crate::service::ControlPlane;
use sluice_proto::control::v1 as pb;
use std::pin::Pin;
use tonic::Status;

/// What `Watch` returns.
pub type EventStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::WatchEvent, Status>> + Send + 'static>>;

/// The events for one `Watch` call.
pub fn events(_cp: &ControlPlane, _req: pb::WatchRequest) -> EventStream {
    Box::pin(tokio_stream::once(Err(Status::unimplemented("Watch is not built yet"))))
}
