//! Carrying out management orders about this node (drain, undrain, kick), read from the
//! registry cache. The decisions are the sans-IO [`policy::OrderPolicy`]; this task only feeds
//! it snapshots and the time, and does what it answers:
//!
//! - drain: registry state `Draining` (an origin leaves the ring; the control plane assigns
//!   no viewers to an edge; the load report says draining), the [`DrainGate`] closed to new
//!   work (`/readyz` 503, new HTTP viewers redirected to another ready edge when one is known,
//!   RTMP players and publishers refused);
//! - at the deadline: every remaining viewer closed ([`Hub::close_viewers`]) and, on an origin,
//!   every publisher; the process keeps running;
//! - start: registered `Starting`, `Ready` once the cache is loaded without a drain order;
//! - undrain: state `Ready`, the gate open again;
//! - kick: the publisher closed, logged and counted (`sluice_publishers_kicked_total`).

pub mod policy;

use std::sync::Arc;
use std::time::Duration;

use sluice_cluster::types::{NodeState, Role};
use sluice_cluster::Registry;
use tokio::task::JoinHandle;
use tracing::info;

use crate::drain::{DrainGate, DrainView};
use crate::hub::{Hub, KickReason};
use crate::metrics::Metrics;
use crate::registry::{advertise_state, Advertised};
use policy::{redirect_target, Action, OrderPolicy};

/// What the orders task acts on.
pub struct OrderContext {
    pub registry: Arc<dyn Registry>,
    pub hub: Hub,
    pub gate: Arc<DrainGate>,
    pub advertised: Advertised,
    pub metrics: Metrics,
    /// The node's `drain_timeout`: the deadline of orders that give none.
    pub drain_timeout: Duration,
}

/// Start following the orders about this node.
pub fn spawn(ctx: OrderContext) -> JoinHandle<()> {
    tokio::spawn(async move {
        let (id, role) = ctx.registry.node();
        let (id, role) = (id.clone(), role);
        let mut policy = OrderPolicy::new(role, id.clone(), ctx.drain_timeout);
        let mut snapshot = ctx.registry.snapshot();
        loop {
            let (actions, redirect) = {
                let snap = snapshot.borrow_and_update();
                let actions = policy.observe(&snap, crate::driver::now());
                let redirect = (role == Role::Edge && policy.is_draining())
                    .then(|| redirect_target(&snap, &id))
                    .flatten();
                (actions, redirect)
            };
            for action in actions {
                carry_out(&ctx, action).await;
            }
            if policy.is_draining() {
                ctx.gate.set_redirect(redirect);
            }
            tokio::select! {
                changed = snapshot.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                () = crate::driver::sleep_until(policy.next_deadline()) => {
                    if let Some(action) = policy.tick(crate::driver::now()) {
                        carry_out(&ctx, action).await;
                    }
                }
            }
        }
    })
}

async fn carry_out(ctx: &OrderContext, action: Action) {
    match action {
        Action::Ready => {
            info!("cluster cache loaded, no drain order: ready");
            advertise_state(ctx.registry.as_ref(), &ctx.advertised, NodeState::Ready).await;
        }
        Action::StartDrain { deadline, order } => {
            let left = deadline.saturating_duration_since(crate::driver::now());
            info!(deadline_in = ?left, issued_at_ms = order.issued_at_ms, "drain ordered: taking no new work");
            let redirect = ctx.gate.view().redirect;
            ctx.gate.set(DrainView { draining: true, closed: false, redirect });
            advertise_state(ctx.registry.as_ref(), &ctx.advertised, NodeState::Draining).await;
        }
        Action::CloseRemaining => {
            let view = DrainView { closed: true, ..ctx.gate.view() };
            ctx.gate.set(view);
            ctx.hub.close_viewers();
            let publishers = if ctx.registry.node().1 == Role::Origin {
                let keys = ctx.hub.published_keys();
                for key in &keys {
                    ctx.hub.kick(key, KickReason::Drained);
                }
                keys.len()
            } else {
                0
            };
            info!(publishers, "drain deadline: closed the remaining viewers and publishers");
        }
        Action::EndDrain => {
            info!("drain cancelled: taking new work again");
            ctx.gate.set(DrainView::default());
            advertise_state(ctx.registry.as_ref(), &ctx.advertised, NodeState::Ready).await;
        }
        Action::Kick { stream, issued_at_ms } => {
            if ctx.hub.is_live(&stream) {
                ctx.metrics.publishers_kicked.inc();
                info!(%stream, issued_at_ms, reason = "kick order from the control plane", "closing the publisher");
                ctx.hub.kick(&stream, KickReason::Ordered);
            }
        }
    }
}
