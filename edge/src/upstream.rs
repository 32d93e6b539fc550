//! The edge's [`Upstream`]: one pull task per stream, started by the first viewer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_cluster::Registry;
use sluice_media::stream_name::StreamKey;
use sluice_node::hub::Hub;
use sluice_node::lock::lock;
use sluice_node::peers::Peers;
use sluice_node::placement::Placement;
use sluice_node::server::UpstreamContext;
use sluice_node::upstream::Upstream;
use tokio::time::Instant;

use crate::args::PullSettings;
use crate::pull;
use crate::table::{PullEntry, PullTable};

/// Pulls streams over the relay from the origins that hold them.
pub struct RelayUpstream {
    pub(crate) hub: Hub,
    pub(crate) registry: Arc<dyn Registry>,
    pub(crate) placement: Placement,
    pub(crate) peers: Arc<Peers>,
    pub(crate) settings: PullSettings,
    pub(crate) pulls: PullTable,
}

impl RelayUpstream {
    pub fn new(ctx: UpstreamContext, settings: PullSettings) -> Arc<Self> {
        Arc::new(RelayUpstream {
            hub: ctx.hub,
            registry: ctx.registry,
            placement: ctx.placement,
            peers: ctx.peers,
            settings,
            pulls: Arc::new(Mutex::new(HashMap::new())),
        })
    }
}

impl Upstream for RelayUpstream {
    fn pull(&self, key: &StreamKey) -> bool {
        let mut pulls = lock(&self.pulls);
        if let Some(entry) = pulls.get_mut(key) {
            if !entry.task.is_finished() {
                entry.wanted = Instant::now();
                return true;
            }
        }
        // The registry cache, not etcd: no request per viewer.
        if self.registry.snapshot().borrow().stream(key).is_none() {
            return false;
        }
        let task = tokio::spawn(pull::run(pull::PullTask {
            key: key.clone(),
            hub: self.hub.clone(),
            placement: self.placement.clone(),
            peers: self.peers.clone(),
            settings: self.settings.clone(),
            pulls: self.pulls.clone(),
        }));
        pulls.insert(key.clone(), PullEntry { wanted: Instant::now(), task });
        true
    }
}
