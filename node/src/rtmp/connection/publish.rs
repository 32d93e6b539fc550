//! A connection's `publish`: the publish gate (name, key or token, drain, quotas), the
//! registry's claim on the name (the connection waits for it as an activity), then the hub's
//! publisher with its claim guard, forward and quota check.

use sluice_cluster::types::Claim;
use sluice_cluster::ClaimError;
use sluice_media::stream_name::StreamKey;
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Activity, Connection};
use crate::hub::PublishError;
use crate::rtmp::claim_guard::ClaimGuard;
use crate::rtmp::publish_gate::{self, NotClaimed};

impl Connection {
    pub(super) fn on_publish(&mut self, stream_id: u32, name: &str) {
        if !matches!(self.activity, Activity::None) {
            self.session.reject_publish(
                stream_id,
                "NetStream.Publish.BadConnection",
                "this connection already publishes or plays a stream",
            );
            return;
        }
        // The registry decides below whether a stream hosted for another origin is stale.
        let hosted = |key: &StreamKey| self.hosted(key);
        let key = match publish_gate::admit(
            &self.ctx,
            self.app.as_deref(),
            name,
            crate::play_auth::unix_now(),
            hosted,
        ) {
            Ok(key) => key,
            Err(refusal) => {
                self.session.reject_publish(stream_id, refusal.code, &refusal.description);
                return;
            }
        };
        let claim = publish_gate::claim(&self.ctx, key.clone(), name, self.client_ip());
        self.activity = Activity::Claiming { stream_id, key, claim };
    }

    /// The registry answered a claim: publish, or refuse the name.
    pub(super) fn on_claimed(&mut self, result: Result<Claim, NotClaimed>) {
        let Activity::Claiming { stream_id, key, .. } =
            std::mem::replace(&mut self.activity, Activity::None)
        else {
            return;
        };
        let claim = match result {
            Ok(claim) => claim,
            Err(NotClaimed::Webhook(why)) => {
                self.ctx.metrics.publishes_rejected.inc();
                self.ctx.metrics.publishes_unauthorized.inc();
                if self.ctx.client_log.allow() {
                    info!(stream = %key, "publish refused by the publish webhook");
                }
                self.session.reject_publish(stream_id, "NetStream.Publish.Unauthorized", &why);
                return;
            }
            Err(NotClaimed::Registry(ClaimError::Taken { holder })) => {
                self.ctx.metrics.publishes_rejected.inc();
                if self.ctx.client_log.allow() {
                    info!(stream = %key, holder = ?holder, "publish refused: name claimed by another node");
                }
                let description =
                    format!("stream {key} is already being published on another node");
                self.session.reject_publish(stream_id, "NetStream.Publish.BadName", &description);
                return;
            }
            Err(NotClaimed::Registry(e)) => {
                self.ctx.metrics.publishes_rejected.inc();
                if self.ctx.client_log.allow() {
                    warn!(stream = %key, error = %e, "publish refused: registry unavailable");
                }
                self.session.reject_publish(
                    stream_id,
                    "NetStream.Publish.Failed",
                    &format!("cluster registry error: {e}"),
                );
                return;
            }
        };
        // The claim is ours: a forward still hosted under the old claim is stale.
        let published = match self.ctx.hub.publish(&key) {
            Err(PublishError::AlreadyPublishing(_)) if self.hosted(&key) => {
                self.ctx.hub.publish_over(&key)
            }
            other => other,
        };
        match published {
            Ok(publisher) => {
                self.span.record("stream", tracing::field::display(&key));
                self.span.record("role", "publish");
                if self.ctx.client_log.allow() {
                    info!(stream = %key, revision = claim.revision(), "publish start");
                }
                self.session.accept_publish(stream_id, key.name());
                let forward =
                    self.ctx.forwarding.as_ref().map(|f| f.start(key.clone(), claim.revision()));
                let guard = ClaimGuard {
                    registry: self.ctx.registry.clone(),
                    hub: self.ctx.hub.clone(),
                    claim: Some(claim),
                    codecs: Vec::new(),
                    codecs_tx: None,
                    unpublish: self.ctx.webhook.clone().map(|w| (w, key.clone(), self.client_ip())),
                };
                let quota = crate::rtmp::publish_quota::QuotaCheck::start(&self.ctx, &key);
                self.activity = Activity::Publishing {
                    stream_id,
                    publisher: Box::new(publisher),
                    _forward: forward,
                    _claim: Box::new(guard),
                    quota,
                };
                self.deadlines.progress(Instant::now());
            }
            Err(e @ PublishError::AlreadyPublishing(_)) => {
                if self.ctx.client_log.allow() {
                    info!(stream = %key, "publish refused: name in use");
                }
                self.session.reject_publish(stream_id, "NetStream.Publish.BadName", &e.to_string());
            }
            Err(e @ PublishError::TooManyStreams(_)) => {
                if self.ctx.client_log.allow() {
                    warn!(stream = %key, "publish refused: stream limit");
                }
                self.session.reject_publish(
                    stream_id,
                    "NetStream.Publish.Rejected",
                    &e.to_string(),
                );
            }
        }
    }
}
