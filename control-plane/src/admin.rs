//! Management orders: drain, undrain, kick. Orders are written to etcd so every replica (and
//! the nodes themselves) see them; the control plane keeps none of its own. The nodes carry
//! them out: a drained node marks itself draining, redirects or refuses new viewers and closes
//! the rest at the deadline; the ingest origin of a kicked stream closes its publisher.

use crate::convert::{find_node, node, role_filter, stream_key};
use crate::service::ControlPlane;
use sluice_cluster::types::{DrainOrder, KickOrder, Role, MAX_DRAIN_DEADLINE_SECS};
use sluice_cluster::{NodeId, OrderWriter, RegistryError};
use sluice_proto::control::v1 as pb;
use std::time::{SystemTime, UNIX_EPOCH};
use tonic::Status;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn writer(cp: &ControlPlane) -> Result<&OrderWriter, Status> {
    cp.orders().ok_or_else(|| Status::failed_precondition("this control plane cannot write orders"))
}

fn write_failed(e: &RegistryError) -> Status {
    Status::unavailable(format!("writing the order to etcd failed: {e}"))
}

/// When the node closes what is left, on the issuer's clock; 0 when the node's own
/// `drain_timeout` applies (the control plane does not know it).
fn deadline_ms(order: DrainOrder) -> u64 {
    match order.deadline_seconds {
        0 => 0,
        s => order.issued_at_ms.saturating_add(u64::from(s) * 1000),
    }
}

/// Drain a node (see `DrainNode` in control.proto). Asking again with the same deadline keeps
/// the order in force as it is (its deadline keeps counting); another deadline replaces it.
pub async fn drain(
    cp: &ControlPlane,
    req: pb::DrainNodeRequest,
) -> Result<pb::DrainNodeResponse, Status> {
    if req.deadline_seconds > MAX_DRAIN_DEADLINE_SECS {
        return Err(Status::invalid_argument(format!(
            "deadline_seconds is at most {MAX_DRAIN_DEADLINE_SECS}"
        )));
    }
    let snap = cp.snapshot();
    let n = find_node(&snap, &req.id, &req.role)?;
    let order = match snap.drain_order(n.role, &n.id) {
        Some(current) if current.order.deadline_seconds == req.deadline_seconds => current.order,
        _ => {
            let order =
                DrainOrder { deadline_seconds: req.deadline_seconds, issued_at_ms: now_ms() };
            writer(cp)?.drain(n.role, &n.id, order).await.map_err(|e| write_failed(&e))?;
            tracing::info!(node = %n.id, role = n.role.as_str(), deadline_s = order.deadline_seconds, "drain ordered");
            order
        }
    };
    let mut shown = node(&snap, n);
    shown.drain_ordered = true;
    Ok(pb::DrainNodeResponse { node: Some(shown), deadline_ms: deadline_ms(order) })
}

/// Cancel a drain order. A node that is gone (crashed, or stopped while drained) can still have
/// its order cancelled, so it comes back ready.
pub async fn undrain(
    cp: &ControlPlane,
    req: pb::UndrainNodeRequest,
) -> Result<pb::UndrainNodeResponse, Status> {
    let snap = cp.snapshot();
    let (role, id, shown) = match find_node(&snap, &req.id, &req.role) {
        Ok(n) => (n.role, n.id.clone(), Some(node(&snap, n))),
        Err(e) if e.code() == tonic::Code::NotFound => {
            let (role, id) = ordered_absent_node(&snap, &req.id, &req.role)?.ok_or(e)?;
            (role, id, None)
        }
        Err(e) => return Err(e),
    };
    writer(cp)?.undrain(role, &id).await.map_err(|e| write_failed(&e))?;
    tracing::info!(node = %id, role = role.as_str(), "drain cancelled");
    let mut shown = shown.unwrap_or_else(|| pb::Node {
        id: id.to_string(),
        role: role.as_str().to_string(),
        ..pb::Node::default()
    });
    shown.drain_ordered = false;
    Ok(pb::UndrainNodeResponse { node: Some(shown) })
}

/// The node a drain order names when that node is not registered: `Ok(None)` when no order
/// names it either.
fn ordered_absent_node(
    snap: &sluice_cluster::Snapshot,
    id: &str,
    role: &str,
) -> Result<Option<(Role, NodeId)>, Status> {
    let role = role_filter(role)?;
    let mut found = snap
        .drains
        .values()
        .filter(|d| d.id.as_str() == id && role.is_none_or(|r| r == d.role))
        .map(|d| (d.role, d.id.clone()));
    match (found.next(), found.next()) {
        (Some(_), Some(_)) => Err(Status::invalid_argument(format!(
            "both an origin and an edge called {id:?} have drain orders: give the role"
        ))),
        (one, _) => Ok(one),
    }
}

/// Close a stream's publisher on its ingest origin (NOT_FOUND when the stream has none).
pub async fn kick(
    cp: &ControlPlane,
    req: pb::KickPublisherRequest,
) -> Result<pb::KickPublisherResponse, Status> {
    let key = stream_key(&req.app, &req.stream)?;
    let snap = cp.snapshot();
    let s =
        snap.stream(&key).ok_or_else(|| Status::not_found(format!("{key} has no publisher")))?;
    writer(cp)?
        .kick(&key, KickOrder { issued_at_ms: now_ms() })
        .await
        .map_err(|e| write_failed(&e))?;
    tracing::info!(stream = %key, origin = %s.info.origin, "publisher kick ordered");
    Ok(pb::KickPublisherResponse { origin_id: s.info.origin.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assign::BalanceFactor;
    use sluice_cluster::types::NodeInfo;
    use sluice_cluster::{MemoryRegistry, MemoryStore, Observer, RegistryConfig};

    #[tokio::test]
    async fn orders_land_in_etcd_and_unknown_names_are_not_found() {
        let store = MemoryStore::new();
        let observer = Observer::memory(&store, "/t");
        let cfg = RegistryConfig::new(NodeId::new("e1").unwrap(), Role::Edge).with_prefix("/t");
        let _edge = MemoryRegistry::start(store.clone(), cfg, NodeInfo::default()).await.unwrap();
        let mut snap = observer.snapshot();
        snap.wait_for(|s| !s.nodes.is_empty()).await.unwrap();
        let cp = ControlPlane::new(observer.snapshot(), BalanceFactor::default(), 0.6)
            .with_orders(observer.orders());
        let e1 = NodeId::new("e1").unwrap();

        let req = |id: &str, secs| pb::DrainNodeRequest {
            id: id.into(),
            role: String::new(),
            deadline_seconds: secs,
        };
        let resp = drain(&cp, req("e1", 30)).await.unwrap();
        assert!(resp.node.unwrap().drain_ordered);
        assert!(resp.deadline_ms > 30_000);
        snap.wait_for(|s| s.drain_order(Role::Edge, &e1).is_some()).await.unwrap();
        // The same order again keeps the first one (and its deadline).
        let again = drain(&cp, req("e1", 30)).await.unwrap();
        assert_eq!(again.deadline_ms, resp.deadline_ms);
        // The node's own drain_timeout: no deadline the control plane could state.
        assert_eq!(drain(&cp, req("e1", 0)).await.unwrap().deadline_ms, 0);
        assert_eq!(drain(&cp, req("nobody", 0)).await.unwrap_err().code(), tonic::Code::NotFound);
        assert_eq!(
            drain(&cp, req("e1", MAX_DRAIN_DEADLINE_SECS + 1)).await.unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        snap.wait_for(|s| {
            s.drain_order(Role::Edge, &e1).is_some_and(|d| d.order.deadline_seconds == 0)
        })
        .await
        .unwrap();

        let un = pb::UndrainNodeRequest { id: "e1".into(), role: "edge".into() };
        assert!(!undrain(&cp, un).await.unwrap().node.unwrap().drain_ordered);
        snap.wait_for(|s| s.drains.is_empty()).await.unwrap();

        let kick_req = pb::KickPublisherRequest { app: "live".into(), stream: "x".into() };
        assert_eq!(kick(&cp, kick_req).await.unwrap_err().code(), tonic::Code::NotFound);
    }
}
