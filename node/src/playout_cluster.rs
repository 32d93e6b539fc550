//! Playout in a cluster: the registry's schedule ([`Snapshot::schedule`], set through the
//! control plane) as [`ClusterSchedule`]. Each entry is played by its stream's player (its
//! ring home, or the first origin after it in ring order with `--playout-dir`);
//! the runner publishes only while this node holds the name's claim, which is taken in the
//! background when it asks ([`Claims::ready`]) and let go when the playout ends here (unless a
//! live publisher of this node has the name by then). While it publishes, the stream is
//! forwarded to its standbys like an encoder's. Its claim says it is a playout's: a live
//! encoder at another origin asks for the name (a takeover request in the registry), and the
//! playout gives way, lets the claim go and asks for it again only once the name is free.
//!
//! [`Snapshot::schedule`]: sluice_cluster::types::Snapshot::schedule

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_cluster::types::{Claim, StreamInfo};
use sluice_cluster::Registry;
use sluice_media::stream_name::StreamKey;
use tracing::{debug, info, warn};

use crate::forward::{ForwardGuard, Forwarding};
use crate::hub::{Hub, KickReason};
use crate::lock::lock;
use crate::placement::Placement;
use crate::playout::schedule::EntryValue;
use crate::playout::{Claims, ClusterSchedule, Ready};

/// Where this node stands with a name it plays out.
enum Held {
    /// A claim is being asked for.
    Claiming,
    /// Claimed; forwarded while published.
    Holding { claim: Claim, forward: Option<ForwardGuard> },
}

/// The registry's schedule, this node's claims of the names it plays out.
pub struct RegistrySchedule {
    registry: Arc<dyn Registry>,
    placement: Placement,
    forwarding: Option<Arc<Forwarding>>,
    hub: Hub,
    held: Arc<Mutex<HashMap<StreamKey, Held>>>,
    refusals: Arc<crate::log_limit::RateLimitedLog>,
}

impl RegistrySchedule {
    pub fn new(
        registry: Arc<dyn Registry>,
        placement: Placement,
        forwarding: Option<Arc<Forwarding>>,
        hub: Hub,
    ) -> Arc<RegistrySchedule> {
        let mut snapshot = placement.snapshot.clone();
        let this = Arc::new(RegistrySchedule {
            registry,
            placement,
            forwarding,
            hub,
            held: Arc::default(),
            refusals: Arc::new(crate::log_limit::RateLimitedLog::new(2)),
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            while snapshot.changed().await.is_ok() {
                let Some(this) = weak.upgrade() else { return };
                this.give_way();
            }
        });
        this
    }

    /// Whether another node holds or asks for `key` (a live encoder there wants it).
    fn wanted_elsewhere(&self, key: &StreamKey) -> bool {
        let snap = self.placement.snapshot.borrow();
        let me = &self.placement.node_id;
        snap.takeovers.get(key).is_some_and(|node| node != me)
            || snap.stream(key).is_some_and(|r| r.info.origin != *me)
    }

    /// Stop playing out the names a live encoder at another origin asks for: the runner gives
    /// way ([`Claims::displaced`]), which lets the claim go.
    fn give_way(&self) {
        let asked: Vec<StreamKey> = {
            let snap = self.placement.snapshot.borrow();
            let me = &self.placement.node_id;
            snap.takeovers.iter().filter(|(_, node)| *node != me).map(|(k, _)| k.clone()).collect()
        };
        for key in asked {
            let holding = matches!(lock(&self.held).get(&key), Some(Held::Holding { .. }));
            if !holding {
                continue;
            }
            info!(stream = %key, "playout: a live encoder at another origin takes the name over");
            // On air: kicked, and the runner gives way (which lets the claim go). Between
            // publishes (late, waiting for a keyframe): the claim goes now.
            if !self.hub.kick_yielding(&key, KickReason::TakenOver) {
                self.let_go(&key);
            }
        }
    }

    /// Let go of `key`'s claim, if held (unless a live publisher here has the name by then).
    fn let_go(&self, key: &StreamKey) {
        if let Some(Held::Holding { claim, forward }) = lock(&self.held).remove(key) {
            drop(forward);
            tokio::spawn(release(self.registry.clone(), self.hub.clone(), claim));
        }
    }

    /// Ask for `key`'s claim in the background.
    fn claim(&self, key: &StreamKey) {
        let info = StreamInfo {
            origin: self.registry.node().0.clone(),
            codecs: Vec::new(),
            started_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            rendition_of: None,
            playout: true,
        };
        let (registry, hub, held) = (self.registry.clone(), self.hub.clone(), self.held.clone());
        let (key, refusals) = (key.clone(), self.refusals.clone());
        tokio::spawn(async move {
            let result = registry.claim(key.clone(), info).await;
            // What to let go of: a claim that came after the playout stopped or gave way.
            let stale = {
                let mut map = lock(&held);
                let wanted = matches!(map.get(&key), Some(Held::Claiming));
                match result {
                    Ok(claim) if wanted => {
                        debug!(stream = %key, "playout: name claimed");
                        map.insert(key, Held::Holding { claim, forward: None });
                        None
                    }
                    Ok(claim) => Some(claim),
                    Err(e) => {
                        if wanted {
                            map.remove(&key);
                        }
                        if refusals.allow() {
                            warn!(stream = %key, error = %e, "playout: the name is not claimed (held elsewhere?); tried again at the next keyframe");
                        }
                        None
                    }
                }
            };
            if let Some(claim) = stale {
                release(registry, hub, claim).await;
            }
        });
    }
}

/// Let `claim` go unless this node publishes its stream again by now.
async fn release(registry: Arc<dyn Registry>, hub: Hub, claim: Claim) {
    if hub.is_live(&claim.stream) {
        return;
    }
    let stream = claim.stream.clone();
    if let Err(e) = registry.release(claim).await {
        warn!(%stream, error = %e, "playout: the name's claim was not released (its lease will end it)");
    }
}

impl Claims for RegistrySchedule {
    fn ready(&self, key: &StreamKey) -> Ready {
        if self.wanted_elsewhere(key) {
            // Given way; asked for again once the name is free.
            self.let_go(key);
            return Ready::No;
        }
        let still_held = self.registry.claims().iter().any(|c| c.stream == *key);
        let mut held = lock(&self.held);
        match held.get_mut(key) {
            Some(Held::Claiming) => return Ready::Claiming,
            Some(Held::Holding { claim, forward }) if still_held => {
                if forward.is_none() {
                    *forward =
                        self.forwarding.as_ref().map(|f| f.start(key.clone(), claim.revision()));
                }
                return Ready::Yes;
            }
            // Not asked for yet, or let go meanwhile (a live publisher here ended and
            // released it): ask again.
            _ => {}
        }
        held.insert(key.clone(), Held::Claiming);
        drop(held);
        self.claim(key);
        Ready::Claiming
    }

    fn displaced(&self, key: &StreamKey) {
        // A live publisher here holds the name (the claim is per node) and forwards it itself:
        // the claim stays. For one at another origin it is let go.
        self.let_go(key);
    }

    fn codecs(&self, key: &StreamKey, codecs: &[String]) {
        let claim = match lock(&self.held).get(key) {
            Some(Held::Holding { claim, .. }) => claim.clone(),
            _ => return,
        };
        let mut info = claim.info.clone();
        info.codecs = codecs.to_vec();
        let registry = self.registry.clone();
        tokio::spawn(async move {
            match registry.update_claim(&claim, info).await {
                Ok(_) => debug!(stream = %claim.stream, "playout: claim updated with its codecs"),
                Err(e) => {
                    warn!(stream = %claim.stream, error = %e, "playout: could not write the codecs into the claim");
                }
            }
        });
    }

    fn ended(&self, key: &StreamKey) {
        // A claim still in flight is let go by its task when it comes (it is no longer
        // wanted); one held is let go now, unless a live publisher here has the name.
        self.let_go(key);
    }
}

impl ClusterSchedule for RegistrySchedule {
    fn entries(&self) -> Vec<(String, EntryValue)> {
        let snap = self.placement.snapshot.borrow();
        snap.schedule.values().map(|r| (r.id.clone(), r.value.clone())).collect()
    }

    fn is_home(&self, key: &StreamKey) -> bool {
        // Its ring home, or the first after it that plays files out (an origin without
        // --playout-dir never is).
        self.placement.player(key).is_some_and(|player| player == self.placement.node_id)
    }
}
