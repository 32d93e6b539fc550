//! Renditions in a cluster: the transcoding home announces each as a publish is announced
//! (claimed in the registry, with the source it renders, and sent to its own ring home), so
//! every node finds it like any stream; and every node reads from the registry which
//! renditions a source has, for its multivariant playlist and MPD.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_cluster::types::{Snapshot, StreamInfo};
use sluice_cluster::Registry;
use sluice_media::stream_name::StreamKey;
use tokio::sync::{oneshot, watch};
use tracing::{debug, warn};

use crate::forward::Forwarding;
use crate::hls::renditions::RenditionFinder;
use crate::transcode::Announce;

/// Claims renditions for this node and forwards them to their ring homes.
pub struct ClusterAnnounce {
    pub registry: Arc<dyn Registry>,
    pub forwarding: Option<Arc<Forwarding>>,
}

impl Announce for ClusterAnnounce {
    fn announce(&self, rendition: &StreamKey, source: &StreamKey) -> Box<dyn Send> {
        let (done, ended) = oneshot::channel::<()>();
        let registry = self.registry.clone();
        let forwarding = self.forwarding.clone();
        let key = rendition.clone();
        let info = StreamInfo {
            origin: registry.node().0.clone(),
            codecs: Vec::new(),
            started_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            rendition_of: Some(source.name().to_string()),
        };
        tokio::spawn(async move {
            let claim = match registry.claim(key.clone(), info).await {
                Ok(claim) => claim,
                Err(e) => {
                    return warn!(rendition = %key, error = %e, "rendition not claimed: other nodes will not find it");
                }
            };
            debug!(rendition = %key, "rendition claimed");
            let forward = forwarding.map(|f| f.start(key.clone(), claim.revision()));
            let _ = ended.await; // the guard was dropped: the rendition ended
            drop(forward);
            if let Err(e) = registry.release(claim).await {
                warn!(rendition = %key, error = %e, "rendition claim not released (its lease will end it)");
            }
        });
        Box::new(done)
    }
}

/// The renditions of a source the registry knows (claims naming it), by name.
pub fn finder(snapshot: watch::Receiver<Snapshot>) -> RenditionFinder {
    Arc::new(move |source: &StreamKey| {
        let snap = snapshot.borrow();
        snap.streams
            .values()
            .filter(|r| {
                r.stream.app() == source.app()
                    && r.info.rendition_of.as_deref() == Some(source.name())
            })
            .map(|r| r.stream.clone())
            .collect()
    })
}
