//! `GET /vod/APP/NAME/ID/FILE`: a recording's index and segments ([`crate::recording`]), as
//! HLS VOD once the recording ended (an `EVENT` playlist while it is still being written).
//! Only names a recording holds are looked up; anything else is 404 without touching the disk.
//!
//! `GET /vod/APP/NAME/ID.mp4`: a finished recording as one faststart MP4
//! ([`crate::recording::download`]), with Range requests (one range: 206; several: the whole
//! file; none satisfiable: 416), streamed from the segment files.
//!
//! A recording plays under its stream's play policy: a private app's needs the stream's signed
//! URL (`?token=…`), which the index hands on to every file it names; a webhook app's is not
//! served (the webhook is asked about live plays only, so far). Segments are streamed from the
//! store, never read whole into memory.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use sluice_media::stream_name::StreamKey;
use tracing::warn;

use super::serve::ClientIp;
use super::HttpContext;
use crate::metrics::Protocol;
use bytes::Bytes;
use sluice_media::mp4::Slice;

use crate::recording::backend::Backend;
use crate::recording::download::{Download, DownloadError};
use crate::recording::is_recording_file;
use crate::recording::store::Store;

pub(super) async fn file(
    State(ctx): State<Arc<HttpContext>>,
    Path((app, stream, id, file)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
) -> Response {
    if !is_recording_file(&id, &file) {
        return not_found();
    }
    if let Some(refused) = refusal(&ctx, &app, &stream, query.as_deref(), client) {
        return refused;
    }
    let path = format!("{app}/{stream}/{id}/{file}");
    let Some(recordings) = &ctx.recordings else {
        return remote(&ctx, &app, &stream, &path, query.as_deref(), &headers, true).await;
    };
    let failed = |e: std::io::Error| {
        warn!(key = path, error = %e, "vod: reading a recording failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "reading the recording failed\n").into_response()
    };
    if file == "index.m3u8" {
        // Small, and it grows while the stream is recorded: read whole, never cached.
        let text = match recordings.store().get(&path).await {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) => return not_found(),
            Err(e) => return failed(e),
        };
        let text = carry_token(&text, &super::token_query(query.as_deref()));
        let headers = [
            (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
            (header::CACHE_CONTROL, "no-cache"),
        ];
        return (headers, text).into_response();
    }
    match recordings.store().read(&path).await {
        Ok(Some(object)) => {
            let kind = if file == crate::recording::THUMBNAIL { "image/jpeg" } else { "video/mp4" };
            let headers = [
                (header::CONTENT_TYPE, kind.to_string()),
                (header::CACHE_CONTROL, "max-age=86400, immutable".to_string()),
                (header::CONTENT_LENGTH, object.len.to_string()),
            ];
            (headers, Body::from_stream(object.body)).into_response()
        }
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}

/// An edge: the request passed to the origins ([`super::vod_proxy`]), `cacheable` if what
/// the path names never changes once written. A private stream's origin is shown a token of
/// the edge's own (the viewer's may be bound to the viewer's address); a playlist's URLs get
/// the viewer's token back.
async fn remote(
    ctx: &HttpContext,
    app: &str,
    stream: &str,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    cacheable: bool,
) -> Response {
    let (Some(upstream), Ok((key, None))) = (&ctx.vod_upstream, StreamKey::parse(app, stream))
    else {
        return not_found();
    };
    if key.app() != app || key.name() != stream {
        return not_found();
    }
    let now = crate::play_auth::unix_now();
    let token = ctx.play_auth.upstream_token(&key, now, 600);
    let request = super::vod_proxy::Request {
        key: &key,
        path: &format!("/vod/{path}"),
        upstream_query: token.map(|t| format!("token={t}")),
        viewer_token: super::token_query(query),
        headers,
        cacheable,
    };
    upstream.get(request).await
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such recording file\n").into_response()
}

/// A recording plays under its stream's play policy; `Some`: the refusal (404 or 403).
fn refusal(
    ctx: &HttpContext,
    app: &str,
    stream: &str,
    query: Option<&str>,
    client: Option<Extension<ClientIp>>,
) -> Option<Response> {
    let Ok((key, _)) = StreamKey::parse(app, stream) else { return Some(not_found()) };
    if ctx.play_auth.asks_webhook(&key) {
        ctx.metrics.play_unauthorized(Protocol::Hls);
        let text = "recordings of webhook apps are not served\n";
        return Some((StatusCode::FORBIDDEN, text).into_response());
    }
    let client = client.map(|c| c.0 .0);
    let now = crate::play_auth::unix_now();
    if let Err(e) = ctx.play_auth.check(&key, query, client, now) {
        ctx.metrics.play_unauthorized(Protocol::Hls);
        return Some((StatusCode::FORBIDDEN, format!("{e}\n")).into_response());
    }
    None
}

/// `GET /vod/APP/NAME/dvr.m3u8` and `GET /vod/APP/NAME/ID.mp4`.
pub(super) async fn stream_file(
    State(ctx): State<Arc<HttpContext>>,
    Path((app, stream, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
) -> Response {
    if ctx.recordings.is_none() {
        let id = file.strip_suffix(".mp4").filter(|id| is_recording_file(id, "index.m3u8"));
        if file != "dvr.m3u8" && id.is_none() {
            return not_found();
        }
        if let Some(refused) = refusal(&ctx, &app, &stream, query.as_deref(), client) {
            return refused;
        }
        let path = format!("{app}/{stream}/{file}");
        return remote(&ctx, &app, &stream, &path, query.as_deref(), &headers, false).await;
    }
    if file == "dvr.m3u8" {
        dvr(&ctx, &app, &stream, query.as_deref(), client)
    } else {
        mp4(&ctx, &app, &stream, &file, query.as_deref(), client, &headers).await
    }
}

/// The time-shift playlist of a stream being recorded ([`crate::recording::dvr`]).
fn dvr(
    ctx: &HttpContext,
    app: &str,
    stream: &str,
    query: Option<&str>,
    client: Option<Extension<ClientIp>>,
) -> Response {
    let Some(recordings) = &ctx.recordings else { return not_found() };
    if let Some(refused) = refusal(ctx, app, stream, query, client) {
        return refused;
    }
    let Ok((key, _)) = StreamKey::parse(app, stream) else { return not_found() };
    let Some(playlist) = recordings.dvr(&key) else {
        let text = "no time-shift for this stream: it is not being recorded here (or DVR is off)\n";
        return (StatusCode::NOT_FOUND, text).into_response();
    };
    let text = carry_token(&String::from_utf8_lossy(&playlist), &super::token_query(query));
    let headers = [
        (header::CONTENT_TYPE, "application/vnd.apple.mpegurl"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, text).into_response()
}

/// A finished recording as one MP4.
async fn mp4(
    ctx: &HttpContext,
    app: &str,
    stream: &str,
    file: &str,
    query: Option<&str>,
    client: Option<Extension<ClientIp>>,
    headers: &HeaderMap,
) -> Response {
    let Some(recordings) = &ctx.recordings else { return not_found() };
    let Some(id) = file.strip_suffix(".mp4").filter(|id| is_recording_file(id, "index.m3u8"))
    else {
        return not_found();
    };
    if let Some(refused) = refusal(ctx, app, stream, query, client) {
        return refused;
    }
    let prefix = format!("{app}/{stream}/{id}");
    let download = match recordings.download(&prefix).await {
        Ok(download) => download,
        Err(DownloadError::NotFound) => return not_found(),
        Err(DownloadError::NotFinished) => {
            let text = format!(
                "the recording is still being written: play /vod/{prefix}/index.m3u8 until it ends\n"
            );
            return (StatusCode::CONFLICT, text).into_response();
        }
        Err(e) => {
            warn!(recording = prefix, error = %e, "vod: no MP4 for a recording");
            return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response();
        }
    };
    let len = download.layout.len();
    let range = headers.get(header::RANGE).map(|v| {
        let ranges = http_range_header::parse_range_header(v.to_str().unwrap_or_default());
        ranges.and_then(|r| r.validate(len))
    });
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len),
        Some(Ok(ranges)) => match ranges.as_slice() {
            [one] => (StatusCode::PARTIAL_CONTENT, *one.start(), one.end() + 1),
            // Several ranges (or none of an empty file): the whole file, as RFC 9110 allows.
            _ => (StatusCode::OK, 0, len),
        },
        Some(Err(http_range_header::RangeUnsatisfiableError::Unsatisfiable)) => {
            let headers = [(header::CONTENT_RANGE, format!("bytes */{len}"))];
            return (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response();
        }
        // A malformed or other-unit Range header is ignored (RFC 9110 14.2): the whole file.
        Some(Err(_)) => (StatusCode::OK, 0, len),
    };
    let mut response =
        Response::new(Body::from_stream(body(recordings.store().clone(), download, start, end)));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, header::HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, header::HeaderValue::from_static("max-age=86400"));
    h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(end - start));
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{len}", end - 1);
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            h.insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// Bytes `start..end` of a recording's MP4: parts of its head and ranges of its segment files,
/// each file opened only when its turn comes.
fn body(
    store: Arc<Backend>,
    download: Arc<Download>,
    start: u64,
    end: u64,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send {
    use futures_util::{stream, StreamExt, TryStreamExt};
    let slices: Vec<Slice> = download.layout.slices(start, end).collect();
    let head = download.layout.head().clone();
    stream::iter(slices)
        .then(move |slice| {
            let (store, head) = (store.clone(), head.clone());
            let key = match &slice {
                Slice::Source { source, .. } => download.sources.get(*source).cloned(),
                Slice::Head(_) => None,
            };
            async move {
                match (slice, key) {
                    (Slice::Head(range), _) => Ok(stream::iter([Ok(head.slice(range))]).boxed()),
                    (Slice::Source { offset, len, .. }, Some(key)) => {
                        match store.read_range(&key, offset, len).await {
                            Ok(Some(object)) => Ok(object.body),
                            Ok(None) => Err(std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                format!("{key} is gone"),
                            )),
                            Err(e) => Err(e),
                        }
                    }
                    (Slice::Source { source, .. }, None) => Err(std::io::Error::other(format!(
                        "the layout names source {source}, which the index does not"
                    ))),
                }
            }
        })
        .inspect_err(|e| warn!(error = %e, "vod: an MP4 download broke off"))
        .try_flatten()
}

/// The index with `token_query` (`?token=…`, or nothing) on every URI it names, so a player
/// that was given a signed index URL fetches the init segments and segments with it too.
pub(super) fn carry_token(index: &str, token_query: &str) -> String {
    if token_query.is_empty() {
        return index.to_string();
    }
    let mut out = String::with_capacity(index.len() + index.lines().count() * token_query.len());
    for line in index.lines() {
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"").and_then(|u| u.strip_suffix('"'))
        {
            out.push_str(&format!("#EXT-X-MAP:URI=\"{uri}{token_query}\""));
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push_str(line);
            out.push_str(token_query);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_token_goes_on_every_uri_and_nowhere_else() {
        let index =
            "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4\"\n#EXTINF:2.000,\nseg-5.m4s\n#EXT-X-ENDLIST\n";
        let out = super::carry_token(index, "?token=1.ab");
        assert_eq!(
            out,
            "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4?token=1.ab\"\n#EXTINF:2.000,\nseg-5.m4s?token=1.ab\n#EXT-X-ENDLIST\n"
        );
        assert_eq!(super::carry_token(index, ""), index);
    }
}
