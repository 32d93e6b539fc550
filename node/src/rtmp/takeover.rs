//! A live encoder's request for a name a scheduled playout at another origin holds: made
//! whenever, while the encoder's claim is pending, the registry shows the name held by a
//! playout elsewhere (the snapshot is followed, so a playout that claims meanwhile is asked
//! too), and withdrawn when the claim is settled or the encoder goes (however the claim's
//! future ends), retried a few times so a request is not left behind to hold the playout off.

use std::sync::Arc;
use std::time::Duration;

use sluice_cluster::Registry;
use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;
use tracing::{debug, warn};

/// Tries at withdrawing a request, and the time between them.
const WITHDRAW_TRIES: u32 = 5;
const WITHDRAW_RETRY: Duration = Duration::from_secs(1);

/// Follows the registry while a claim is pending; dropped: stops and withdraws.
pub(super) struct Takeover {
    stop: watch::Sender<bool>,
}

impl Takeover {
    /// Follow `key` in `registry`'s snapshot until dropped.
    pub(super) fn start(registry: Arc<dyn Registry>, key: StreamKey) -> Takeover {
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(follow(registry, key, stopped));
        Takeover { stop }
    }
}

impl Drop for Takeover {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Ask for `key` when a playout elsewhere holds it; at the end withdraw what was asked. A
/// request in flight is never cancelled (its revision would be lost).
async fn follow(registry: Arc<dyn Registry>, key: StreamKey, mut stopped: watch::Receiver<bool>) {
    let mut snapshot = registry.snapshot();
    let mut asked: Option<i64> = None;
    loop {
        let playout_elsewhere = snapshot
            .borrow_and_update()
            .stream(&key)
            .is_some_and(|r| r.info.playout && r.info.origin != *registry.node().0);
        if playout_elsewhere && asked.is_none() {
            match registry.request_takeover(&key).await {
                Ok(revision) => {
                    debug!(stream = %key, "asked the playout holding the name to give way");
                    asked = revision;
                }
                Err(e) => warn!(stream = %key, error = %e, "asking the playout to give way failed"),
            }
        }
        if *stopped.borrow() {
            break;
        }
        tokio::select! {
            changed = snapshot.changed() => if changed.is_err() { break },
            _ = stopped.changed() => {}
        }
    }
    let Some(revision) = asked else { return };
    for _ in 0..WITHDRAW_TRIES {
        match registry.withdraw_takeover(&key, revision).await {
            Ok(()) => return,
            Err(e) => {
                debug!(stream = %key, error = %e, "withdrawing a takeover request failed; again");
            }
        }
        tokio::time::sleep(WITHDRAW_RETRY).await;
    }
    warn!(stream = %key, "a takeover request could not be withdrawn (it goes with this node's lease)");
}
