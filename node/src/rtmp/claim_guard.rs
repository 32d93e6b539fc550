//! The registry claim of a publishing RTMP connection: released when its publisher is gone,
//! and kept up to date with the stream's codecs.

use std::sync::Arc;

use sluice_cluster::types::Claim;
use sluice_cluster::Registry;
use tracing::{debug, warn};

/// Releases a stream claim in the registry when its publisher is gone (unless this node
/// publishes the stream again by then: a claim is per node, not per connection).
pub(super) struct ClaimGuard {
    pub(super) registry: Arc<dyn Registry>,
    pub(super) hub: crate::hub::Hub,
    pub(super) claim: Option<Claim>,
    /// Codecs last handed to the claim writer.
    pub(super) codecs: Vec<String>,
    /// The claim writer's input (its task ends with this guard).
    pub(super) codecs_tx: Option<tokio::sync::watch::Sender<Vec<String>>>,
    /// The webhook told when the publish ends (`on_unpublish`), the stream and the encoder's
    /// address.
    pub(super) unpublish: Option<(
        Arc<crate::webhook::Webhook>,
        sluice_media::stream_name::StreamKey,
        std::net::IpAddr,
    )>,
}

impl ClaimGuard {
    /// Write the stream's codecs into its claim (the claim is made before media arrives).
    /// One task per publish writes the latest value, in order.
    pub(super) fn advertise_codecs(&mut self, codecs: &[String]) {
        self.codecs = codecs.to_vec();
        if let Some(tx) = &self.codecs_tx {
            let _ = tx.send(self.codecs.clone());
            return;
        }
        let Some(claim) = self.claim.clone() else { return };
        let (tx, mut rx) = tokio::sync::watch::channel(self.codecs.clone());
        rx.mark_changed();
        self.codecs_tx = Some(tx);
        let registry = self.registry.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let mut info = claim.info.clone();
                info.codecs = rx.borrow_and_update().clone();
                // A live encoder's now (it may have taken over a playout's claim here).
                info.playout = false;
                match registry.update_claim(&claim, info).await {
                    Ok(true) => {
                        debug!(stream = %claim.stream, "claim updated with the stream's codecs");
                    }
                    Ok(false) => return,
                    Err(e) => {
                        warn!(stream = %claim.stream, error = %e, "could not write the stream's codecs into its claim");
                    }
                }
            }
        });
    }
}

impl Drop for ClaimGuard {
    fn drop(&mut self) {
        if let Some((webhook, stream, client)) = self.unpublish.take() {
            webhook.notify_unpublish(stream.app(), stream.name(), client);
        }
        let Some(claim) = self.claim.take() else { return };
        let (registry, hub) = (self.registry.clone(), self.hub.clone());
        tokio::spawn(async move {
            if hub.is_live(&claim.stream) {
                return;
            }
            let stream = claim.stream.clone();
            if let Err(e) = registry.release(claim).await {
                warn!(%stream, error = %e, "releasing the stream claim failed; retried until it reaches the registry or the lease ends");
            }
        });
    }
}
