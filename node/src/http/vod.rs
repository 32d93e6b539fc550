//! `GET /vod/APP/NAME/ID/FILE`: a recording's index and segments ([`crate::recording`]), as
//! HLS VOD once the recording ended (an `EVENT` playlist while it is still being written).
//! Only names a recording holds are looked up; anything else is 404 without touching the disk.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice_media::stream_name::StreamKey;
use tracing::warn;

use super::HttpContext;
use crate::recording::is_recording_file;
use crate::recording::store::Store;

pub(super) async fn file(
    State(ctx): State<Arc<HttpContext>>,
    Path((app, stream, id, file)): Path<(String, String, String, String)>,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such recording file\n").into_response();
    let Some(recordings) = &ctx.recordings else { return not_found() };
    if StreamKey::parse(&app, &stream).is_err() || !is_recording_file(&id, &file) {
        return not_found();
    }
    let key = format!("{app}/{stream}/{id}/{file}");
    match recordings.store().get(&key).await {
        Ok(Some(bytes)) => {
            let (kind, cache) = if file.ends_with(".m3u8") {
                // The index grows while the stream is recorded; it is final once it ends.
                ("application/vnd.apple.mpegurl", "no-cache")
            } else {
                ("video/mp4", "max-age=86400, immutable")
            };
            ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, cache)], bytes).into_response()
        }
        Ok(None) => not_found(),
        Err(e) => {
            warn!(key, error = %e, "vod: reading a recording failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "reading the recording failed\n").into_response()
        }
    }
}
