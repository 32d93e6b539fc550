//! HTTP-FLV: `GET /APP/STREAM.flv` streams the FLV header, then the stream's tags, starting at
//! the latest keyframe (after metadata and sequence headers).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use prometheus_client::metrics::counter::Counter;
use sluice_media::stream_name::StreamKey;
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use super::HttpContext;
use crate::hub::log::Delivery;
use crate::hub::Subscription;
use crate::metrics::{ConnectionGuard, ErrorKind, Metrics, Protocol};

const COLLECT_BATCH: usize = 128 * 1024;

#[tracing::instrument(name = "http_flv", skip(ctx, query))]
pub(super) async fn play(
    ctx: Arc<HttpContext>,
    app: &str,
    stream: &str,
    query: Option<&str>,
    client: Option<std::net::IpAddr>,
) -> Response {
    let key = match StreamKey::parse(app, stream) {
        Ok((key, _)) => key,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, format!("invalid stream name: {e}\n")).into_response()
        }
    };
    if let Err(e) = ctx.play_auth.check(&key, query, client, crate::play_auth::unix_now()) {
        ctx.metrics.play_unauthorized(Protocol::Flv);
        return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response();
    }
    let mut done = None;
    if let (Some(webhook), true) = (&ctx.webhook, ctx.play_auth.asks_webhook(&key)) {
        let ip = client.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let asked =
            webhook.allow_play(key.app(), key.name(), query.unwrap_or_default(), ip, "flv").await;
        if let Err(reason) = asked {
            ctx.metrics.play_unauthorized(Protocol::Flv);
            return (StatusCode::FORBIDDEN, format!("{reason}\n")).into_response();
        }
        done = Some(webhook.play_done(key.app(), key.name(), ip, "flv"));
    }
    // The last `--publisher-reserve` slots are RTMP's: viewers can never lock publishers out.
    let reserved = ctx.connection_slots.available_permits() <= ctx.publisher_reserve;
    let permit = ctx.connection_slots.clone().try_acquire_owned();
    let Ok(permit) = permit.map_err(|_| ()).and_then(|p| if reserved { Err(()) } else { Ok(p) })
    else {
        ctx.metrics.error(ErrorKind::Limit);
        return (StatusCode::SERVICE_UNAVAILABLE, "server is at its connection limit\n")
            .into_response();
    };
    let guard = ConnectionGuard::new(&ctx.metrics);
    let mut sub = match ctx.hub.subscribe(&key, Protocol::Flv) {
        Ok(sub) => sub,
        Err(e @ crate::hub::SubscribeError::NotFound(_)) => {
            return (StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
        }
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    };
    debug!(stream = %key, live = sub.is_live(), "http-flv subscribed");
    if !sub.wait_live(ctx.limits.play_wait_timeout).await {
        debug!(stream = %key, "http-flv: stream not found");
        return (StatusCode::NOT_FOUND, format!("stream {key} is not published\n")).into_response();
    }
    sub.start_playing();
    debug!(stream = %key, "http-flv play");
    let (has_audio, has_video) =
        ctx.hub.snapshot().into_iter().find(|s| s.app == key.app() && s.name == key.name()).map_or(
            (true, true),
            |s| match (s.audio.is_some(), s.video.is_some()) {
                (false, false) => (true, true),
                flags => flags,
            },
        );
    let header = Bytes::copy_from_slice(&sluice_media::flv::file_header(has_audio, has_video));
    let viewer = FlvViewer::new(
        sub,
        header,
        &ctx.metrics,
        ctx.limits.play_wait_timeout,
        (permit, guard, done),
    );
    let body = Body::from_stream(stream::unfold(viewer, |mut v| async move {
        let next = v.next().await?;
        Some((Ok::<_, std::convert::Infallible>(next), v))
    }));
    ([(header::CONTENT_TYPE, "video/x-flv"), (header::CACHE_CONTROL, "no-cache, no-store")], body)
        .into_response()
}

/// One HTTP-FLV viewer: turns deliveries into FLV tag pieces (shared buffers).
struct FlvViewer {
    sub: Subscription,
    pending: VecDeque<Bytes>,
    deliveries: Vec<Delivery>,
    bytes_out: Counter,
    /// How long to keep the response open after the publisher left, waiting for it to return.
    republish_wait: Duration,
    unpublished: bool,
    /// The connection slot and its count in `sluice_connections`, held while streaming, and
    /// the webhook's `on_play_done` when it ends (webhook streams).
    _slot: (OwnedSemaphorePermit, ConnectionGuard, Option<crate::webhook::PlayDone>),
}

impl FlvViewer {
    fn new(
        sub: Subscription,
        header: Bytes,
        metrics: &Metrics,
        republish_wait: Duration,
        slot: (OwnedSemaphorePermit, ConnectionGuard, Option<crate::webhook::PlayDone>),
    ) -> Self {
        let mut pending = VecDeque::new();
        pending.push_back(header);
        FlvViewer {
            sub,
            pending,
            deliveries: Vec::new(),
            bytes_out: metrics.bytes_out(Protocol::Flv),
            republish_wait,
            unpublished: false,
            _slot: slot,
        }
    }

    /// The next piece of the response body; `None` ends it (the publisher left and did not
    /// come back within the wait timeout, or the hub closed the viewer).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.sub.is_closed() {
                // The hub closed this viewer (a drain order's deadline): end the response.
                return None;
            }
            if let Some(b) = self.pending.pop_front() {
                self.bytes_out.inc_by(b.len() as u64);
                return Some(b);
            }
            if !self.sub.has_pending() {
                if self.unpublished {
                    tokio::time::timeout(self.republish_wait, self.sub.changed()).await.ok()?;
                } else {
                    self.sub.changed().await;
                }
            }
            self.sub.collect(&mut self.deliveries, COLLECT_BATCH);
            for d in self.deliveries.drain(..) {
                match d {
                    Delivery::Media(p) => {
                        // Never yield an empty frame: it would end a chunked body.
                        self.pending.push_back(p.flv_head.clone());
                        if !p.payload.is_empty() {
                            self.pending.push_back(p.payload.clone());
                        }
                        self.pending.push_back(p.flv_tail.clone());
                    }
                    Delivery::Unpublished => self.unpublished = true,
                    Delivery::Republished => self.unpublished = false,
                }
            }
        }
    }
}
