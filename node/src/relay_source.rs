//! The [`MediaSource`] an origin serves to subscribing nodes from its hub: streams published
//! here and streams forwarded here by their ingest origin, each fed by [`spawn_feed`].

use std::sync::Arc;

use sluice_cluster::Registry;
use sluice_media::stream_name::StreamKey;
use sluice_relay::{Frame, MediaSource, SubscribeRefusal, SubscribeRequest};
use tokio::sync::mpsc;
use tracing::{debug, info};

use crate::forward::Forwarding;
use crate::hub::Hub;
use crate::relay_feed::spawn_feed;

/// Serves this node's live streams to subscribing nodes: streams published here and streams
/// forwarded here by their ingest origin.
pub struct HubSource {
    hub: Hub,
    registry: Arc<dyn Registry>,
    forwarding: Option<Arc<Forwarding>>,
}

impl HubSource {
    pub fn new(
        hub: Hub,
        registry: Arc<dyn Registry>,
        forwarding: Option<Arc<Forwarding>>,
    ) -> Arc<Self> {
        Arc::new(HubSource { hub, registry, forwarding })
    }

    /// The claim revision this node serves `key` under: its own claim, or the one a forward
    /// carried.
    fn revision(&self, key: &StreamKey) -> Option<i64> {
        let own =
            self.registry.claims().into_iter().find(|c| &c.stream == key).map(|c| c.revision());
        own.or_else(|| self.forwarding.as_ref().and_then(|f| f.forwarded_revision(key)))
    }
}

impl MediaSource for HubSource {
    fn subscribe(
        &self,
        request: &SubscribeRequest,
    ) -> Result<mpsc::Receiver<Frame>, SubscribeRefusal> {
        let key = StreamKey::parse(&request.app, &request.name)
            .map_err(|_| SubscribeRefusal::NotFound)?
            .0;
        if !self.hub.is_live(&key) {
            debug!(stream = %key, peer = %request.peer_node_id, "relay subscribe: not live here");
            return Err(SubscribeRefusal::NotFound);
        }
        if request.claim_revision != 0 {
            let ours = self.revision(&key);
            if ours != Some(request.claim_revision) {
                info!(stream = %key, peer = %request.peer_node_id, wanted = request.claim_revision, ours = ?ours, "relay subscribe: stale claim revision");
                return Err(SubscribeRefusal::Stale);
            }
        }
        let span = tracing::info_span!("relay_serve", stream = %key, peer = %request.peer_node_id);
        crate::trace_context::adopt_traceparent(&span, &request.traceparent);
        let _entered = span.enter();
        info!("serving stream to peer");
        spawn_feed(&self.hub, &key).map_err(|_| SubscribeRefusal::NotFound)
    }
}
