//! `GET /vod/APP/NAME/ID/FILE`: a recording's index and segments ([`crate::recording`]), as
//! HLS VOD once the recording ended (an `EVENT` playlist while it is still being written).
//! Only names a recording holds are looked up; anything else is 404 without touching the disk.
//!
//! A recording plays under its stream's play policy: a private app's needs the stream's signed
//! URL (`?token=…`), which the index hands on to every file it names; a webhook app's is not
//! served (the webhook is asked about live plays only, so far). Segments are streamed from the
//! store, never read whole into memory.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use sluice_media::stream_name::StreamKey;
use tracing::warn;

use super::serve::ClientIp;
use super::HttpContext;
use crate::metrics::Protocol;
use crate::recording::is_recording_file;
use crate::recording::store::Store;

pub(super) async fn file(
    State(ctx): State<Arc<HttpContext>>,
    Path((app, stream, id, file)): Path<(String, String, String, String)>,
    RawQuery(query): RawQuery,
    client: Option<Extension<ClientIp>>,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such recording file\n").into_response();
    let Some(recordings) = &ctx.recordings else { return not_found() };
    let Ok((key, _)) = StreamKey::parse(&app, &stream) else { return not_found() };
    if !is_recording_file(&id, &file) {
        return not_found();
    }
    if ctx.play_auth.asks_webhook(&key) {
        ctx.metrics.play_unauthorized(Protocol::Hls);
        return (StatusCode::FORBIDDEN, "recordings of webhook apps are not served\n")
            .into_response();
    }
    let client = client.map(|c| c.0 .0);
    let now = crate::play_auth::unix_now();
    if let Err(e) = ctx.play_auth.check(&key, query.as_deref(), client, now) {
        ctx.metrics.play_unauthorized(Protocol::Hls);
        return (StatusCode::FORBIDDEN, format!("{e}\n")).into_response();
    }
    let path = format!("{app}/{stream}/{id}/{file}");
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
            let headers = [
                (header::CONTENT_TYPE, "video/mp4".to_string()),
                (header::CACHE_CONTROL, "max-age=86400, immutable".to_string()),
                (header::CONTENT_LENGTH, object.len.to_string()),
            ];
            (headers, Body::from_stream(object.body)).into_response()
        }
        Ok(None) => not_found(),
        Err(e) => failed(e),
    }
}

/// The index with `token_query` (`?token=…`, or nothing) on every URI it names, so a player
/// that was given a signed index URL fetches the init segments and segments with it too.
fn carry_token(index: &str, token_query: &str) -> String {
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
