//! Whether a publish may go on to claim its name: publish authorisation (or the plain name
//! rules), the node's role, a drain, and a name already live here. Each refusal is counted,
//! logged at the connection log's rate and told to the encoder. Then the claim itself: the
//! publish webhook's answer (when there is one), then the registry's.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_cluster::types::{Claim, StreamInfo};
use sluice_cluster::ClaimError;
use sluice_media::stream_name::StreamKey;
use tracing::info;

use super::RtmpContext;
use crate::log_limit::printable;

/// A publish refused before its claim: the onStatus code and what the encoder is told.
pub(super) struct Refusal {
    pub code: &'static str,
    pub description: String,
}

fn refuse(ctx: &RtmpContext, code: &'static str, description: String) -> Refusal {
    ctx.metrics.publishes_rejected.inc();
    Refusal { code, description }
}

/// The stream `name` publishes in `app` (`None`: not connected yet), if it may be published
/// here now. `hosted`: the stream is live here as a forward from another origin (its claim,
/// checked next, decides).
pub(super) fn admit(
    ctx: &RtmpContext,
    app: Option<&str>,
    name: &str,
    now_unix: u64,
    hosted: impl Fn(&StreamKey) -> bool,
) -> Result<StreamKey, Refusal> {
    let log = ctx.client_log.allow();
    let key = match (&ctx.publish_auth, app) {
        (Some(auth), Some(app)) => auth.current().check(app, name, now_unix).map_err(|e| {
            ctx.metrics.publishes_unauthorized.inc();
            // The name is not logged: it may be a mistyped key.
            if log {
                info!(app, reason = e.label(), "publish refused: not authorised");
            }
            refuse(ctx, "NetStream.Publish.Unauthorized", e.to_string())
        })?,
        (_, None) => {
            return Err(refuse(ctx, "NetStream.Publish.BadName", "publish before connect".into()))
        }
        (None, Some(app)) => match StreamKey::parse(app, name) {
            Ok((key, _query)) => key,
            Err(e) => {
                if log {
                    info!(name = %printable(name, 64), error = %e, "publish refused: bad stream name");
                }
                let why = format!("invalid stream name: {e}");
                return Err(refuse(ctx, "NetStream.Publish.BadName", why));
            }
        },
    };
    if ctx.registry.node().1 == sluice_cluster::types::Role::Edge {
        if log {
            info!(stream = %key, "publish refused: this node is an edge");
        }
        let why = "this node is an edge: publish to an origin".to_string();
        return Err(refuse(ctx, "NetStream.Publish.Rejected", why));
    }
    if ctx.drain.is_draining() {
        if log {
            info!(stream = %key, "publish refused: this node is draining");
        }
        let why = "this origin is draining: publish to another origin".to_string();
        return Err(refuse(ctx, "NetStream.Publish.Rejected", why));
    }
    if let Some(why) = super::publish_quota::streams_refusal(ctx, &key) {
        return Err(refuse(ctx, "NetStream.Publish.Rejected", why));
    }
    if ctx.hub.is_live(&key)
        && !ctx.hub.config().publish_takeover
        && !hosted(&key)
        && !ctx.hub.yields(&key)
    {
        if log {
            info!(stream = %key, "publish refused: name in use");
        }
        let why = format!("stream {key} is already being published");
        return Err(refuse(ctx, "NetStream.Publish.BadName", why));
    }
    Ok(key)
}

/// A claim in flight in the registry (may be held up to the lease TTL + margin), after the
/// publish webhook's answer when there is one.
pub(super) type PendingClaim = Pin<Box<dyn Future<Output = Result<Claim, NotClaimed>> + Send>>;

/// Why a publish did not get its claim.
pub(super) enum NotClaimed {
    /// The publish webhook refused (or did not answer, fail-closed): what to tell the encoder.
    Webhook(String),
    Registry(ClaimError),
}

/// Ask the webhook (if any), then claim `key` in the registry for this node. `name` is what
/// the encoder sent (its query goes to the webhook); `client` its address.
pub(super) fn claim(ctx: &RtmpContext, key: StreamKey, name: &str, client: IpAddr) -> PendingClaim {
    let registry = ctx.registry.clone();
    let info = StreamInfo {
        origin: registry.node().0.clone(),
        codecs: Vec::new(),
        started_at_ms: unix_now_ms(),
        rendition_of: None,
        playout: false,
    };
    let webhook = ctx.webhook.clone();
    let query = name.split_once('?').map_or("", |(_, q)| q).to_string();
    Box::pin(async move {
        if let Some(webhook) = webhook {
            let (app, name) = (key.app(), key.name());
            webhook.allow_publish(app, name, &query, client).await.map_err(NotClaimed::Webhook)?;
        }
        // A playout at another origin holding the name is asked to give way while claiming.
        let takeover = super::takeover::Takeover::start(registry.clone(), key.clone());
        let claimed = registry.claim(key, info).await;
        drop(takeover);
        claimed.map_err(NotClaimed::Registry)
    })
}

fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
