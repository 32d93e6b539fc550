//! A publisher's quota (`--quota-file`), checked on its media at most every
//! [`CHECK_EVERY`]: a declared breach (codec, resolution, metadata rates) cuts it at once; a
//! measured one (bit rate, frame rate) is warned, then cut after `--quota-grace`. Cutting is a
//! kick: the connection tells the encoder why (`NetStream.Publish.Rejected`) and closes. And
//! `max-streams`, checked before a publish claims its name.

use std::time::Duration;

use sluice_media::stream_name::StreamKey;
use tokio::time::Instant;
use tracing::{info, warn};

use super::RtmpContext;
use crate::hub::{KickReason, Publisher};
use crate::quota::{Limit, QuotaWatch, Verdict};

/// How often a publisher's facts are checked against its quota (on media arrival).
const CHECK_EVERY: Duration = Duration::from_millis(250);

/// The quota watch of one publisher.
#[derive(Debug)]
pub(super) struct QuotaCheck {
    watch: QuotaWatch,
    next: Instant,
}

impl QuotaCheck {
    /// The check for a publisher of `key`, when its app has a quota.
    pub(super) fn start(ctx: &RtmpContext, key: &StreamKey) -> Option<Box<QuotaCheck>> {
        let limits = ctx.quotas.for_app(key.app())?.clone();
        let watch = QuotaWatch::new(limits, ctx.quota_grace);
        Some(Box::new(QuotaCheck { watch, next: Instant::now() }))
    }

    /// After a media message: check when due, and act on the verdict.
    pub(super) fn on_media(&mut self, ctx: &RtmpContext, publisher: &Publisher, now: Instant) {
        if now < self.next {
            return;
        }
        self.next = now + CHECK_EVERY;
        let key = publisher.key();
        match self.watch.check(&publisher.facts(now), now) {
            Verdict::Within => {}
            Verdict::Warn(breach) => {
                ctx.metrics.quota_breach(breach.limit, "warned");
                if ctx.client_log.allow() {
                    warn!(stream = %key, limit = breach.limit.label(), detail = %breach.detail, grace = ?ctx.quota_grace, "publisher over its quota: cut if it stays over");
                }
            }
            Verdict::Cut(breach) => {
                ctx.metrics.quota_breach(breach.limit, "cut");
                if ctx.client_log.allow() {
                    warn!(stream = %key, limit = breach.limit.label(), detail = %breach.detail, "publisher over its quota: cut");
                }
                publisher.kick(KickReason::OverQuota(breach.detail));
            }
        }
    }
}

/// Why `key` may not start: its app already has its `max-streams` live in the cluster (as
/// the registry lists them; a stream taken over here does not count twice).
pub(super) fn streams_refusal(ctx: &RtmpContext, key: &StreamKey) -> Option<String> {
    let max = ctx.quotas.for_app(key.app())?.max_streams?;
    let live = {
        let snap = ctx.registry.snapshot();
        let snap = snap.borrow();
        snap.streams.keys().filter(|k| k.app() == key.app() && *k != key).count()
    };
    if live < max {
        return None;
    }
    ctx.metrics.quota_breach(Limit::Streams, "refused");
    if ctx.client_log.allow() {
        info!(stream = %key, max, "publish refused: the app has its maximum of live streams");
    }
    Some(format!("app {} already has its maximum of {max} live streams", key.app()))
}
