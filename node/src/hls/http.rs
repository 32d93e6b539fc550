//! HLS over HTTP:
//!
//! * `GET /APP/STREAM.m3u8`: the multivariant playlist. Without a `sid` query it starts an HLS
//!   session; the variant URI is `STREAM/index.m3u8?sid=...`.
//! * `GET /APP/STREAM/index.m3u8`: the media playlist, with LL-HLS blocking reload
//!   (`_HLS_msn`, `_HLS_part`) and delta updates (`_HLS_skip=YES`).
//! * `GET /APP/STREAM/init-N.mp4`, `seg-N.m4s`, `part-N.I.m4s`: CMAF objects.
//! * `GET /APP/STREAM/ts.m3u8`, `ts-N.ts`: the same segments as MPEG-TS (`--hls-ts`; see
//!   [`super::ts`]).
//!
//! A stream published nowhere gets 404 at once. A live stream whose first part does not exist
//! yet, the next part, or a blocking reload, waits on the stream's snapshot channel (woken by
//! the segmenter), bounded by [`HlsServing::wait_timeout`].
//!
//! Caching: media objects never change under a name (`immutable`); playlists live one second;
//! blocking-reload answers are unique per query and may be cached a few seconds.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use sluice_media::dash::DashResource;
use sluice_media::hls::{
    render_multivariant, HlsSnapshot, Lookup, PlaylistOptions, ReloadStatus, Resource,
    MEDIA_PLAYLIST_NAME,
};
use sluice_media::stream_name::StreamKey;
use sluice_media::ts::{parse_ts_segment_name, TS_PLAYLIST_NAME};
use tokio::sync::watch;
use tokio::time::Instant;

use super::renditions;
use super::session::{valid_sid, SessionError, SessionTable};
use super::ts::{self as hls_ts, TsCache};
use super::HlsServing;
use crate::admission::PerIpLimits;
use crate::hub::Hub;
use crate::metrics::{Metrics, Protocol};
use crate::play_auth::{unix_now, PlayAuth};
use crate::webhook::Webhook;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const MEDIA_TYPE: &str = "video/mp4";
pub(super) const CACHE_PLAYLIST: &str = "public, max-age=1";
const CACHE_BLOCKING: &str = "public, max-age=6";
const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// What the HLS handlers share.
pub struct HlsService {
    pub settings: HlsServing,
    pub sessions: Arc<SessionTable>,
    /// How long a request for a live stream waits for its first complete segment.
    pub(super) first_segment_wait: Duration,
    pub(super) hub: Hub,
    pub(super) bytes_out: Counter,
    /// MPEG-TS segments made so far (`--hls-ts`).
    pub ts_cache: TsCache,
    /// Which streams play only from a signed URL, or with the webhook's consent: checked
    /// where a session starts.
    pub(super) play_auth: Arc<PlayAuth>,
    webhook: Option<Arc<Webhook>>,
    metrics: Metrics,
    /// Where the renditions of a stream the multivariant playlist lists after it are found.
    pub(super) renditions: renditions::RenditionSources,
}

impl HlsService {
    /// `play_wait` (`--play-wait-timeout`) bounds the wait for a new stream's first segment
    /// when it is longer than three target durations (long publisher keyframe intervals).
    pub fn new(
        hub: Hub,
        settings: HlsServing,
        metrics: &Metrics,
        play_wait: Duration,
        play_auth: Arc<PlayAuth>,
        webhook: Option<Arc<Webhook>>,
        renditions: renditions::RenditionSources,
    ) -> Arc<Self> {
        let sessions = SessionTable::new(
            hub.clone(),
            settings.max_sessions,
            settings.session_idle(),
            settings.session_key.clone(),
            PerIpLimits {
                max_concurrent: settings.max_sessions_per_ip,
                per_second: settings.sessions_per_ip,
            },
        );
        // Sessions of webhook streams tell the webhook when they end.
        if let Some(webhook) = &webhook {
            sessions.notify_play_done(webhook.clone(), play_auth.clone());
        }
        let first_segment_wait = settings.wait_timeout().max(play_wait);
        Arc::new(HlsService {
            settings,
            sessions,
            first_segment_wait,
            hub,
            bytes_out: metrics.bytes_out(Protocol::Hls),
            ts_cache: TsCache::default(),
            play_auth,
            webhook,
            metrics: metrics.clone(),
            renditions,
        })
    }
}

/// The query parameters HLS requests use (public for the `request_names` fuzz target: every
/// byte of it is the client's).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HlsQuery {
    /// A session id of the right shape (anything else is dropped, never echoed).
    pub sid: Option<String>,
    pub msn: Option<u64>,
    pub part: Option<u32>,
    pub skip: bool,
}

impl HlsQuery {
    /// Parse a raw query; a malformed `_HLS_*` value is an error (400). Unknown keys are ignored.
    pub fn parse(raw: Option<&str>) -> Result<HlsQuery, &'static str> {
        let mut q = HlsQuery::default();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sid" => q.sid = valid_sid(v).then(|| v.to_string()),
                "_HLS_msn" => q.msn = Some(v.parse().map_err(|_| "bad _HLS_msn")?),
                "_HLS_part" => q.part = Some(v.parse().map_err(|_| "bad _HLS_part")?),
                "_HLS_skip" => q.skip = v == "YES" || v == "v2",
                _ => {}
            }
        }
        if q.part.is_some() && q.msn.is_none() {
            return Err("_HLS_part without _HLS_msn");
        }
        Ok(q)
    }

    /// The query appended to URIs handed out: the session id, if any.
    pub fn uri_suffix(&self) -> String {
        self.sid.as_ref().map_or(String::new(), |s| format!("?sid={s}"))
    }
}

impl HlsService {
    /// Whether this request may be served: a stream that is not private, a session minted
    /// for this stream (once its token was checked), or a valid play token; and for a webhook
    /// stream, a session live here or the webhook's consent. 403 otherwise.
    #[allow(clippy::result_large_err)] // the early answer (403) is the error
    pub async fn authorize(
        &self,
        app: &str,
        stream: &str,
        raw_query: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<(), Response> {
        let Ok(key) = parse_key(app, stream) else { return Ok(()) }; // 400 comes later
        let sid = HlsQuery::parse(raw_query).ok().and_then(|q| q.sid);
        // A rendition's objects may come with its source's session (an MPD lists the ladder
        // under the viewer's one session).
        let source = || self.renditions.source(&key);
        let verified = sid.as_deref().filter(|sid| {
            self.sessions.verify(sid, &key)
                || source().is_some_and(|s| self.sessions.verify(sid, &s))
        });
        if self.play_auth.is_private(&key) && verified.is_none() {
            self.play_auth.check(&key, raw_query, client, unix_now()).map_err(|e| {
                self.metrics.play_unauthorized(Protocol::Hls);
                text(StatusCode::FORBIDDEN, format!("{e}\n"))
            })?;
        }
        // The webhook is asked where a session would start here (none, or one that ended).
        if let (Some(webhook), true) = (&self.webhook, self.play_auth.asks_webhook(&key)) {
            if !verified.is_some_and(|sid| self.sessions.is_live(sid)) {
                let query = raw_query.unwrap_or_default();
                let ip = client.unwrap_or(IpAddr::from([0, 0, 0, 0]));
                let asked = webhook.allow_play(key.app(), key.name(), query, ip, "hls").await;
                asked.map_err(|reason| {
                    self.metrics.play_unauthorized(Protocol::Hls);
                    text(StatusCode::FORBIDDEN, format!("{reason}\n"))
                })?;
            }
        }
        Ok(())
    }
}

/// A playlist request without a session: start one and redirect (302) to the same playlist
/// with the session id first in its query (the request's other parameters kept).
pub(super) fn start_session(
    svc: &HlsService,
    key: &StreamKey,
    playlist: &str,
    raw_query: Option<&str>,
    client: Option<IpAddr>,
) -> Response {
    match svc.sessions.touch(None, key, client) {
        Ok(sid) => {
            let rest =
                raw_query.filter(|q| !q.is_empty()).map_or(String::new(), |q| format!("&{q}"));
            (
                StatusCode::FOUND,
                [
                    (header::LOCATION, format!("{playlist}?sid={sid}{rest}")),
                    (header::CACHE_CONTROL, "no-store".to_string()),
                ],
            )
                .into_response()
        }
        Err(e) => session_refused(&e),
    }
}

/// A session that could not start: 429 when the client starts them too fast, else 503.
pub(super) fn session_refused(e: &SessionError) -> Response {
    let status = match e {
        SessionError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    text(status, format!("{e}\n"))
}

pub(super) fn text(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, [(header::CACHE_CONTROL, "no-cache")], msg.into()).into_response()
}

pub(super) fn not_found(key: &StreamKey) -> Response {
    text(StatusCode::NOT_FOUND, format!("stream {key} is not published\n"))
}

pub(super) fn playlist(body: String, cache: &'static str, svc: &HlsService) -> Response {
    svc.bytes_out.inc_by(body.len() as u64);
    ([(header::CONTENT_TYPE, PLAYLIST_TYPE), (header::CACHE_CONTROL, cache)], body).into_response()
}

/// What a handler decides on one snapshot.
pub(super) enum Step {
    Answer(Response),
    Wait,
}

/// Apply `decide` to the latest snapshot, then to each new one, until it answers, the
/// deadline passes or the stream goes away (then `on_timeout`). Never waits when not `live`.
pub(super) async fn wait_until(
    rx: &mut watch::Receiver<Option<HlsSnapshot>>,
    live: bool,
    deadline: Instant,
    mut decide: impl FnMut(&HlsSnapshot) -> Step,
    on_timeout: impl FnOnce() -> Response,
) -> Response {
    loop {
        let snap = rx.borrow_and_update().clone();
        if let Some(snap) = snap {
            if let Step::Answer(r) = decide(&snap) {
                return r;
            }
        }
        if !live {
            return on_timeout();
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => continue,
            _ => return on_timeout(),
        }
    }
}

fn parse_key(app: &str, stream: &str) -> Result<StreamKey, sluice_media::stream_name::NameError> {
    StreamKey::parse(app, stream).map(|(key, _)| key)
}

/// What every HLS request checks first: HLS enabled, a valid stream name, a valid query.
#[allow(clippy::result_large_err)] // the early answer (404, 400) is the error
pub(super) fn accept(
    svc: &HlsService,
    app: &str,
    stream: &str,
    raw_query: Option<&str>,
) -> Result<(StreamKey, HlsQuery), Response> {
    if !svc.settings.enabled {
        return Err(text(StatusCode::NOT_FOUND, "HLS is disabled on this server\n"));
    }
    let key = parse_key(app, stream)
        .map_err(|e| text(StatusCode::BAD_REQUEST, format!("invalid stream name: {e}\n")))?;
    let mut query =
        HlsQuery::parse(raw_query).map_err(|e| text(StatusCode::BAD_REQUEST, format!("{e}\n")))?;
    // An id minted for another stream, or not by this node (or its cluster), is no session:
    // as if there were none (never echoed).
    query.sid = query.sid.filter(|sid| svc.sessions.verify(sid, &key));
    // Private and webhook streams: the HTTP handler authorised the request before this.
    Ok((key, query))
}

/// `GET /APP/STREAM.m3u8`.
pub async fn multivariant(
    svc: Arc<HlsService>,
    app: &str,
    stream: &str,
    raw_query: Option<&str>,
    client: Option<IpAddr>,
) -> Response {
    let (key, query) = match accept(&svc, app, stream, raw_query) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some((mut rx, true)) = svc.hub.hls(&key) else {
        return not_found(&key);
    };
    // Wait for the first complete segment: players without LL-HLS support (ffmpeg, older
    // devices) cannot start from parts alone.
    let deadline = Instant::now() + svc.first_segment_wait;
    let mut ready = None;
    let resp = wait_until(
        &mut rx,
        true,
        deadline,
        |snap| {
            if !snap.segments().is_empty() && snap.current_init().is_some() {
                ready = Some(snap.clone());
                Step::Answer(StatusCode::OK.into_response())
            } else {
                Step::Wait
            }
        },
        || text(StatusCode::NOT_FOUND, format!("stream {key} has no HLS media yet\n")),
    )
    .await;
    let Some(snap) = ready else { return resp };
    let sid = match svc.sessions.touch(query.sid.as_deref(), &key, client) {
        Ok(sid) => sid,
        Err(e) => return session_refused(&e),
    };
    let uri = format!("{}/{MEDIA_PLAYLIST_NAME}?sid={sid}", key.name());
    let Some(variant) = snap.variant(&uri) else {
        return text(StatusCode::NOT_FOUND, format!("stream {key} has no HLS media yet\n"));
    };
    let mut variants = vec![variant];
    let names = renditions::names(&svc, &key);
    let _pulls = renditions::pull(&svc, &names, svc.first_segment_wait).await;
    variants.extend(renditions::variants(&svc, &key, &names, client));
    playlist(render_multivariant(&variants), CACHE_PLAYLIST, &svc)
}

/// `GET /APP/STREAM/FILE`: the media playlist or a CMAF object.
pub async fn stream_file(
    svc: Arc<HlsService>,
    app: &str,
    stream: &str,
    file: &str,
    raw_query: Option<&str>,
    client: Option<IpAddr>,
) -> Response {
    let (key, query) = match accept(&svc, app, stream, raw_query) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if let Some(resource) = DashResource::parse(file) {
        let Some((rx, live)) = svc.hub.hls(&key) else {
            return not_found(&key);
        };
        if let Some(sid) = query.sid.as_deref() {
            if let Err(e) = svc.sessions.touch(Some(sid), &key, client) {
                return session_refused(&e);
            }
        }
        return super::dash::object(svc, &key, resource, rx, live).await;
    }
    let ts_file =
        if file == TS_PLAYLIST_NAME { Some(None) } else { parse_ts_segment_name(file).map(Some) };
    if ts_file.is_some() && !svc.settings.ts {
        return text(StatusCode::NOT_FOUND, "HLS MPEG-TS is disabled on this server\n");
    }
    let resource = if file == MEDIA_PLAYLIST_NAME || ts_file.is_some() {
        None
    } else {
        match Resource::parse(file) {
            Some(r) => Some(r),
            None => return text(StatusCode::NOT_FOUND, "no such HLS resource\n"),
        }
    };
    // Unknown stream, or one that ended and has nothing to serve: 404 at once.
    let Some((mut rx, live)) = svc.hub.hls(&key) else {
        return not_found(&key);
    };
    if !live && rx.borrow().is_none() {
        return not_found(&key);
    }
    if let Some(sid) = query.sid.as_deref() {
        if let Err(e) = svc.sessions.touch(Some(sid), &key, client) {
            return session_refused(&e);
        }
    }
    match (ts_file, resource) {
        (Some(None), _) if query.sid.is_none() => {
            start_session(&svc, &key, TS_PLAYLIST_NAME, raw_query, client)
        }
        (Some(None), _) => {
            hls_ts::ts_playlist(&svc, &mut rx, live, &query.uri_suffix(), &key).await
        }
        (Some(Some(msn)), _) => hls_ts::ts_segment(&svc, &mut rx, live, msn, &key).await,
        // A player that starts at the media playlist (not the multivariant) gets a session
        // too, so it counts as a viewer like every other.
        (None, None) if query.sid.is_none() => {
            start_session(&svc, &key, MEDIA_PLAYLIST_NAME, raw_query, client)
        }
        (None, None) => media_playlist(&svc, &mut rx, live, &query, &key).await,
        (None, Some(resource)) => {
            let deadline = Instant::now() + svc.settings.wait_timeout();
            let svc2 = svc.clone();
            wait_until(
                &mut rx,
                live,
                deadline,
                |snap| match snap.lookup(resource) {
                    Lookup::Init(init) => {
                        Step::Answer(media_object(&svc2, vec![init.bytes.clone()], MEDIA_TYPE))
                    }
                    Lookup::Segment(seg) => {
                        Step::Answer(media_object(&svc2, seg.chunks().collect(), MEDIA_TYPE))
                    }
                    Lookup::Part(part) => {
                        Step::Answer(media_object(&svc2, vec![part.bytes.clone()], MEDIA_TYPE))
                    }
                    Lookup::Wait => Step::Wait,
                    Lookup::NotFound => {
                        Step::Answer(text(StatusCode::NOT_FOUND, format!("{file} not found\n")))
                    }
                },
                || text(StatusCode::NOT_FOUND, format!("{file} not available\n")),
            )
            .await
        }
    }
}

async fn media_playlist(
    svc: &HlsService,
    rx: &mut watch::Receiver<Option<HlsSnapshot>>,
    live: bool,
    query: &HlsQuery,
    key: &StreamKey,
) -> Response {
    let suffix = query.uri_suffix();
    let blocking = query.msn.is_some();
    // A blocking reload waits for its part; a plain one for the first complete segment.
    let deadline = Instant::now()
        + if blocking { svc.settings.wait_timeout() } else { svc.first_segment_wait };
    let cache = if blocking { CACHE_BLOCKING } else { CACHE_PLAYLIST };
    wait_until(
        rx,
        live,
        deadline,
        |snap| {
            if !snap.is_playable() || (!blocking && snap.segments().is_empty()) {
                return Step::Wait;
            }
            if let Some(msn) = query.msn {
                match snap.reload_status(msn, query.part) {
                    ReloadStatus::Ready => {}
                    ReloadStatus::Wait => return Step::Wait,
                    ReloadStatus::TooFar => {
                        return Step::Answer(text(
                            StatusCode::BAD_REQUEST,
                            "_HLS_msn/_HLS_part too far ahead\n",
                        ))
                    }
                }
            }
            // Where the ladder's other streams are now, as this answer goes out.
            let reports = renditions::reports(svc, key);
            let opts = PlaylistOptions {
                query: &suffix,
                skip: query.skip,
                rendition_reports: &reports,
                end_list: false,
            };
            Step::Answer(playlist(snap.media_playlist(&opts), cache, svc))
        },
        || {
            if blocking {
                text(StatusCode::SERVICE_UNAVAILABLE, "the requested part did not appear in time\n")
            } else {
                text(StatusCode::NOT_FOUND, format!("stream {key} has no HLS media yet\n"))
            }
        },
    )
    .await
}

pub(super) fn media_object(
    svc: &HlsService,
    chunks: Vec<Bytes>,
    content_type: &'static str,
) -> Response {
    let body = ChunksBody::new(chunks);
    svc.bytes_out.inc_by(body.remaining);
    (
        [(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, CACHE_IMMUTABLE)],
        Body::new(body),
    )
        .into_response()
}

/// A response body made of shared buffers, with an exact length (so it is sent with
/// `Content-Length`, not chunked) and no copy.
struct ChunksBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl ChunksBody {
    fn new(chunks: Vec<Bytes>) -> Self {
        let chunks: VecDeque<Bytes> = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        ChunksBody { chunks, remaining }
    }
}

impl http_body::Body for ChunksBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        Poll::Ready(this.chunks.pop_front().map(|b| {
            this.remaining = this.remaining.saturating_sub(b.len() as u64);
            Ok(Frame::data(b))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let q = HlsQuery::parse(Some(
            "sid=0123456789abcdef0123456789abcdef&_HLS_msn=5&_HLS_part=2&_HLS_skip=YES&x=1",
        ))
        .unwrap();
        assert_eq!(
            q,
            HlsQuery {
                sid: Some("0123456789abcdef0123456789abcdef".into()),
                msn: Some(5),
                part: Some(2),
                skip: true
            }
        );
        assert_eq!(q.uri_suffix(), "?sid=0123456789abcdef0123456789abcdef");
        assert_eq!(HlsQuery::parse(None).unwrap(), HlsQuery::default());
        assert!(HlsQuery::parse(Some("_HLS_part=1")).is_err());
        assert!(HlsQuery::parse(Some("_HLS_msn=-1")).is_err());
        assert!(HlsQuery::parse(Some("_HLS_msn=99999999999999999999999")).is_err());
        // A sid of the wrong shape is ignored (never echoed into playlists).
        assert_eq!(HlsQuery::parse(Some("sid=%22x")).unwrap().sid, None);
    }

    #[test]
    fn chunks_body_has_exact_length() {
        let body = ChunksBody::new(vec![
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"de"),
        ]);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
        assert_eq!(body.chunks.len(), 2);
    }
}
