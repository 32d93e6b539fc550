//! The placement driver: turns the registry cache into a damped [`Ring`] a node can read
//! without asking etcd (`ring.borrow().owner(&stream)`).

use crate::damping::{Damper, DampingConfig};
use crate::ring::{Ring, DEFAULT_VNODES};
use crate::types::Snapshot;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Ring parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementConfig {
    /// Virtual nodes per origin (default 64).
    pub vnodes: u32,
    pub damping: DampingConfig,
}

impl Default for PlacementConfig {
    fn default() -> Self {
        PlacementConfig { vnodes: DEFAULT_VNODES, damping: DampingConfig::default() }
    }
}

/// Follow `snapshot` and publish the ring over its ready origins, damped. The task ends when
/// the snapshot sender is gone; abort the handle to stop it sooner.
pub fn spawn_ring(
    mut snapshot: watch::Receiver<Snapshot>,
    cfg: PlacementConfig,
) -> (watch::Receiver<Arc<Ring>>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(Arc::new(Ring::new([], cfg.vnodes)));
    let task = tokio::spawn(async move {
        let mut damper = Damper::new(cfg.damping.clone());
        loop {
            let now = Instant::now().into_std();
            let origins = snapshot.borrow_and_update().ready_origins();
            damper.observe(&origins, now);
            let members = damper.members(now);
            tx.send_if_modified(|ring| {
                let changed = ring.members() != &members;
                if changed {
                    tracing::info!(?members, "ring membership changed");
                    *ring = Arc::new(Ring::new(members, cfg.vnodes));
                }
                changed
            });
            let next = damper.next_change(now).map(Instant::from_std);
            tokio::select! {
                changed = snapshot.changed() => if changed.is_err() { return },
                _ = sleep_until_opt(next) => {}
            }
        }
    });
    (rx, task)
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
