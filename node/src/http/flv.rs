//! HTTP-FLV: `GET /APP/STREAM.flv` streams the FLV header, then the stream's tags, starting at
//! the latest keyframe (after metadata and sequence headers).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
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
        done = Some(Box::new(webhook.play_done(key.app(), key.name(), ip, "flv")));
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
    // The viewer goes to whichever takes it first: hyper's response body, or the direct
    // writer (`flv_direct`) that finds the handoff in the response's extensions.
    let handoff = FlvHandoff(Arc::new(Mutex::new(Some(viewer))));
    let body =
        Body::from_stream(stream::unfold((handoff.clone(), None), |(h, mut v)| async move {
            if v.is_none() {
                v = h.take();
            }
            let next = v.as_mut()?.next().await?;
            Some((Ok::<_, std::convert::Infallible>(next), (h, v)))
        }));
    let mut resp = (
        [(header::CONTENT_TYPE, "video/x-flv"), (header::CACHE_CONTROL, "no-cache, no-store")],
        body,
    )
        .into_response();
    resp.extensions_mut().insert(handoff);
    resp
}

/// An HTTP-FLV viewer not yet handed to a writer, in the response's extensions.
#[derive(Clone)]
pub(super) struct FlvHandoff(Arc<Mutex<Option<FlvViewer>>>);

impl FlvHandoff {
    pub(super) fn take(&self) -> Option<FlvViewer> {
        crate::lock::lock(&self.0).take()
    }
}

/// One HTTP-FLV viewer: turns deliveries into FLV tag pieces (shared buffers).
pub(super) struct FlvViewer {
    sub: Subscription,
    pending: VecDeque<Bytes>,
    deliveries: Vec<Delivery>,
    bytes_out: Counter,
    /// How long to keep the response open after the publisher left, waiting for it to return.
    republish_wait: Duration,
    unpublished: bool,
    /// The connection slot and its count in `sluice_connections`, held while streaming, and
    /// the webhook's `on_play_done` when it ends (webhook streams; boxed, as few have one).
    _slot: (OwnedSemaphorePermit, ConnectionGuard, Option<Box<crate::webhook::PlayDone>>),
}

impl FlvViewer {
    fn new(
        sub: Subscription,
        header: Bytes,
        metrics: &Metrics,
        republish_wait: Duration,
        slot: (OwnedSemaphorePermit, ConnectionGuard, Option<Box<crate::webhook::PlayDone>>),
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
            if !self.wait().await {
                return None;
            }
            let mut pending = std::mem::take(&mut self.pending);
            self.fill(|b| pending.push_back(b));
            self.pending = pending;
        }
    }

    /// Wait until there is something to collect. False: the publisher left and did not come
    /// back within the wait, or the hub closed the viewer.
    pub(super) async fn wait(&mut self) -> bool {
        if !self.sub.has_pending() {
            if self.unpublished {
                if tokio::time::timeout(self.republish_wait, self.sub.changed()).await.is_err() {
                    return false;
                }
            } else {
                self.sub.changed().await;
            }
        }
        !self.sub.is_closed()
    }

    /// Hand what the viewer has not had yet, piece by piece (never an empty one: it would end
    /// a chunked body), to `push`; the FLV file header first.
    pub(super) fn fill(&mut self, push: impl FnMut(Bytes)) {
        self.fill_framed(false, push);
    }

    /// What `fill` hands over, each tag framed as one HTTP/1.1 chunk (when `chunked`) with the
    /// stream's own framing ([`crate::hub::prepared::Prepared::flv_chunk_head`]): nothing is
    /// allocated per viewer. Returns the FLV bytes (without the framing).
    pub(super) fn fill_framed(&mut self, chunked: bool, mut push: impl FnMut(Bytes)) -> usize {
        self.sub.collect(&mut self.deliveries, COLLECT_BATCH);
        let mut flv_bytes = 0;
        for d in self.deliveries.drain(..) {
            match d {
                Delivery::Media(p) => {
                    flv_bytes += p.flv_head.len() + p.payload.len() + p.flv_tail.len();
                    let (head, tail) = if chunked {
                        (&p.flv_chunk_head, &p.flv_chunk_tail)
                    } else {
                        (&p.flv_head, &p.flv_tail)
                    };
                    push(head.clone());
                    if !p.payload.is_empty() {
                        push(p.payload.clone());
                    }
                    push(tail.clone());
                }
                Delivery::Unpublished => self.unpublished = true,
                Delivery::Republished => self.unpublished = false,
            }
        }
        Delivery::shrink_after_burst(&mut self.deliveries);
        flv_bytes
    }

    /// Take the pieces queued before any collect (the FLV file header).
    /// The direct writer's: it collects with [`FlvViewer::fill_framed`] from then on, so the
    /// queue's room goes too.
    pub(super) fn take_pending(&mut self, push: impl FnMut(Bytes)) {
        std::mem::take(&mut self.pending).into_iter().for_each(push);
    }

    /// Count `n` bytes as sent (`sluice_bytes_out_total{protocol="flv"}`).
    pub(super) fn sent(&self, n: usize) {
        self.bytes_out.inc_by(n as u64);
    }

    pub(super) fn is_closed(&self) -> bool {
        self.sub.is_closed()
    }
}
