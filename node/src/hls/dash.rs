//! MPEG-DASH over HTTP, from the same segments as HLS ([`sluice_media::dash`]):
//!
//! * `GET /APP/STREAM.mpd`: the live MPD. Without a `sid` query it starts a session (counted
//!   as a viewer like an HLS one) and redirects (302) to `STREAM.mpd?sid=...`; the MPD names
//!   that URL in `Location` too, so players refresh it with their session.
//! * `GET /APP/STREAM/dash-{v,a}-init-N.mp4`, `dash-{v,a}-N.m4s`: one track's init or media
//!   segment. A complete segment goes out with `Content-Length`; the one being produced
//!   (low-latency DASH) goes out chunked, each part's fragment as soon as it is made, waiting
//!   at most [`HlsServing::wait_timeout`](super::HlsServing::wait_timeout) for each.
//!
//! Authorisation, sessions, drain redirects and edge pulls are the HLS ones.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sluice_media::dash::{
    growth, lookup, render_mpd, DashLookup, DashResource, DashStream, MpdOptions, MPD_TYPE,
};
use sluice_media::hls::{HlsSnapshot, Track};
use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;
use tokio::time::Instant;

use super::http::{
    accept, media_object, not_found, session_refused, start_session, text, wait_until, HlsService,
    Step, CACHE_PLAYLIST,
};
use super::renditions;
use crate::play_auth::unix_now;

/// `GET /APP/STREAM.mpd`.
pub async fn mpd(
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
    let mpd_name = format!("{}.mpd", key.name());
    let Some(sid) = query.sid.as_deref() else {
        return start_session(&svc, &key, &mpd_name, raw_query, client);
    };
    if let Err(e) = svc.sessions.touch(Some(sid), &key, client) {
        return session_refused(&e);
    }
    let deadline = Instant::now() + svc.first_segment_wait;
    let mut ready = None;
    let resp = wait_until(
        &mut rx,
        true,
        deadline,
        |snap| {
            if snap.segments().is_empty() || snap.current_init().is_none() {
                return Step::Wait;
            }
            ready = Some(snap.clone());
            Step::Answer(StatusCode::OK.into_response())
        },
        || text(StatusCode::NOT_FOUND, format!("stream {key} has no DASH media yet\n")),
    )
    .await;
    let Some(source) = ready else { return resp };
    // The renditions that have media now, under the viewer's one session (which also admits
    // their objects for a private or webhook stream: see `HlsService::authorize`).
    let own_query = format!("?sid={sid}");
    let mut others: Vec<(String, HlsSnapshot)> = Vec::new();
    let names = renditions::names(&svc, &key);
    // An MPD is refreshed every second or so: a rendition this edge no longer pulls is
    // waited for briefly, not for a whole first segment.
    let wait = svc.first_segment_wait.min(std::time::Duration::from_secs(2));
    let _pulls = renditions::pull(&svc, &names, wait).await;
    for rendition in names {
        let Some((rx, true)) = svc.hub.hls(&rendition) else { continue };
        let Some(snap) = rx.borrow().clone().filter(|s| !s.segments().is_empty()) else {
            continue;
        };
        others.push((rendition.name().to_string(), snap));
    }
    let mut streams = vec![DashStream { base: key.name(), snapshot: &source, query: &own_query }];
    streams.extend(others.iter().map(|(name, snap)| DashStream {
        base: name,
        snapshot: snap,
        query: &own_query,
    }));
    let opts =
        MpdOptions { now_ms: unix_now_ms(), location: Some(&format!("{mpd_name}?sid={sid}")) };
    let Some(body) = render_mpd(&streams, &opts) else {
        return text(StatusCode::NOT_FOUND, format!("stream {key} has no DASH media yet\n"));
    };
    svc.bytes_out.inc_by(body.len() as u64);
    ([(header::CONTENT_TYPE, MPD_TYPE), (header::CACHE_CONTROL, CACHE_PLAYLIST)], body)
        .into_response()
}

fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(unix_now() * 1000, |d| d.as_millis() as u64)
}

/// `GET /APP/STREAM/dash-…`: one track's init or media segment.
pub(super) async fn object(
    svc: Arc<HlsService>,
    key: &StreamKey,
    resource: DashResource,
    mut rx: watch::Receiver<Option<HlsSnapshot>>,
    live: bool,
) -> Response {
    let content_type = resource.content_type();
    let deadline = Instant::now() + svc.settings.wait_timeout();
    let mut growing = None;
    let resp = wait_until(
        &mut rx,
        live,
        deadline,
        |snap| match lookup(snap, resource) {
            DashLookup::Init(bytes) => Step::Answer(media_object(&svc, vec![bytes], content_type)),
            DashLookup::Segment(chunks) => Step::Answer(media_object(&svc, chunks, content_type)),
            DashLookup::Growing => {
                let DashResource::Segment { track, base, number } = resource else {
                    return Step::Wait;
                };
                let msn = base.saturating_add(u64::from(number));
                // Answer once its first part exists (or it completed meanwhile).
                let g = growth(snap, track, msn, 0);
                if g.chunks.is_empty() && !g.done {
                    return Step::Wait;
                }
                growing = Some((track, msn, g.chunks, g.sent, g.done));
                Step::Answer(StatusCode::OK.into_response())
            }
            DashLookup::NotFound => Step::Answer(text(
                StatusCode::NOT_FOUND,
                format!("{resource} of {key} not found\n"),
            )),
        },
        || text(StatusCode::NOT_FOUND, format!("{resource} of {key} not available\n")),
    )
    .await;
    let Some((track, msn, chunks, sent, done)) = growing else { return resp };
    if chunks.is_empty() {
        return text(StatusCode::NOT_FOUND, format!("{resource} of {key} not found\n"));
    }
    let feed = Feed {
        rx,
        track,
        msn,
        pending: chunks.into(),
        sent,
        done,
        wait: svc.settings.wait_timeout(),
        svc: svc.clone(),
    };
    let body = Body::from_stream(futures_util::stream::unfold(feed, Feed::next));
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

/// The chunked body of a segment being produced: its track's fragment of each part, sent as
/// the part completes, until the segment does.
struct Feed {
    rx: watch::Receiver<Option<HlsSnapshot>>,
    track: Track,
    msn: u64,
    pending: VecDeque<Bytes>,
    sent: usize,
    done: bool,
    wait: std::time::Duration,
    svc: Arc<HlsService>,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Feed)> {
        loop {
            if let Some(chunk) = self.pending.pop_front() {
                self.svc.bytes_out.inc_by(chunk.len() as u64);
                return Some((Ok(chunk), self));
            }
            if self.done {
                return None;
            }
            // A stall or the stream's end cuts the response short: the client sees an
            // incomplete body, not a complete-looking short segment.
            match tokio::time::timeout(self.wait, self.rx.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    self.done = true;
                    return Some((Err(std::io::Error::other("segment stalled")), self));
                }
            }
            let snap = self.rx.borrow_and_update().clone();
            if let Some(snap) = snap {
                let g = growth(&snap, self.track, self.msn, self.sent);
                if g.gone {
                    // It left the window unfinished for this client: cut the response short
                    // rather than end it looking whole.
                    self.done = true;
                    return Some((Err(std::io::Error::other("segment gone")), self));
                }
                self.pending.extend(g.chunks);
                self.sent = g.sent;
                self.done = g.done;
            }
        }
    }
}
