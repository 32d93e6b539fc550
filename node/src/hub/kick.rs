//! Why a publisher was stopped, carried from whoever stops it (a takeover, the registry, an
//! operator's order, a drain) to the connection, which tells the encoder before closing.

use std::sync::Mutex;

use sluice_media::stream_name::StreamKey;
use tokio::sync::Notify;

use crate::lock::lock;

/// Why a publisher is stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KickReason {
    /// Another publisher of the same name took over on this node.
    TakenOver,
    /// The stream's registry claim went to another node (`holder`, when known): this node was
    /// cut off from the registry past its lease, and the name moved on.
    ClaimLost { holder: Option<String> },
    /// A kick order from the control plane (`sluicectl streams kick`).
    Ordered,
    /// This node's drain deadline passed.
    Drained,
    /// The publisher went past its app's quota (`--quota-file`); what it went past.
    OverQuota(String),
}

impl KickReason {
    /// The onStatus code the encoder gets.
    pub fn code(&self) -> &'static str {
        match self {
            KickReason::TakenOver => "NetStream.Publish.BadName",
            KickReason::ClaimLost { .. } | KickReason::Ordered | KickReason::Drained => {
                "NetStream.Publish.Failed"
            }
            KickReason::OverQuota(_) => "NetStream.Publish.Rejected",
        }
    }

    /// What the encoder is told (names no secret: the key only).
    pub fn description(&self, key: &StreamKey) -> String {
        match self {
            KickReason::TakenOver => format!("stream {key} was taken over by another publisher"),
            KickReason::ClaimLost { holder: Some(holder) } => format!(
                "this origin lost its claim on stream {key} (it was cut off from the cluster \
                 registry) and {holder} holds it now: publish again to take it back"
            ),
            KickReason::ClaimLost { holder: None } => format!(
                "this origin lost its claim on stream {key} (it was cut off from the cluster \
                 registry): publish again"
            ),
            KickReason::Ordered => format!("stream {key} was stopped by an operator"),
            KickReason::Drained => {
                "this origin is shutting down (drain deadline passed): publish to another origin"
                    .to_string()
            }
            KickReason::OverQuota(what) => format!("stream {key} is over its quota: {what}"),
        }
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            KickReason::TakenOver => "taken_over",
            KickReason::ClaimLost { .. } => "claim_lost",
            KickReason::Ordered => "ordered",
            KickReason::Drained => "drained",
            KickReason::OverQuota(_) => "over_quota",
        }
    }
}

/// The signal that stops one publisher: the first reason given wins.
#[derive(Debug, Default)]
pub struct Kick {
    notify: Notify,
    reason: Mutex<Option<KickReason>>,
}

impl Kick {
    pub fn kick(&self, reason: KickReason) {
        lock(&self.reason).get_or_insert(reason);
        self.notify.notify_one();
    }

    /// Resolves once kicked, with the reason.
    pub async fn kicked(&self) -> KickReason {
        loop {
            if let Some(reason) = lock(&self.reason).clone() {
                return reason;
            }
            self.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_reason_is_kept_and_a_kick_before_waiting_is_not_lost() {
        let kick = Kick::default();
        kick.kick(KickReason::ClaimLost { holder: Some("o2".into()) });
        kick.kick(KickReason::TakenOver);
        let reason = kick.kicked().await;
        assert_eq!(reason, KickReason::ClaimLost { holder: Some("o2".into()) });
        let key = StreamKey::parse("live", "cam").unwrap().0;
        let told = reason.description(&key);
        assert!(told.contains("live/cam") && told.contains("o2"), "{told}");
        assert_eq!(reason.code(), "NetStream.Publish.Failed");
    }
}
