//! Renditions in a cluster: the transcoding home announces each as a publish is announced
//! (claimed in the registry, with the source it renders, and sent to its own ring home), so
//! every node finds it like any stream; and every node reads from the registry which
//! renditions a source has, for its multivariant playlist and MPD.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sluice_cluster::types::{Snapshot, StreamInfo};
use sluice_cluster::Registry;
use sluice_media::stream_name::StreamKey;
use tokio::sync::{oneshot, watch};
use tracing::{debug, warn};

use crate::forward::Forwarding;
use crate::hls::renditions::ClusterRenditions;
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
            playout: false,
        };
        tokio::spawn(async move {
            let mut ended = ended;
            // Tried until it holds (another origin may still hold it for a moment after a
            // handover, or the registry may be out of reach) or the rendition ends.
            let mut delay = Duration::from_millis(500);
            let claim = loop {
                let attempt = tokio::select! {
                    result = registry.claim(key.clone(), info.clone()) => result,
                    _ = &mut ended => return,
                };
                match attempt {
                    Ok(claim) => break claim,
                    Err(e) => {
                        warn!(rendition = %key, error = %e, retry_s = delay.as_secs_f64(), "rendition not claimed yet: other nodes do not find it");
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = &mut ended => return,
                }
                delay = (delay * 2).min(Duration::from_secs(10));
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

/// The renditions the registry knows: claims naming their source.
pub struct RegistryRenditions(pub watch::Receiver<Snapshot>);

impl ClusterRenditions for RegistryRenditions {
    fn renditions(&self, source: &StreamKey) -> Vec<StreamKey> {
        let snap = self.0.borrow();
        snap.streams
            .values()
            .filter(|r| {
                r.stream.app() == source.app()
                    && r.info.rendition_of.as_deref() == Some(source.name())
            })
            .map(|r| r.stream.clone())
            .collect()
    }

    fn source(&self, rendition: &StreamKey) -> Option<StreamKey> {
        let snap = self.0.borrow();
        let name = snap.streams.get(rendition)?.info.rendition_of.clone()?;
        StreamKey::parse(rendition.app(), &name).ok().map(|(key, _)| key)
    }
}
