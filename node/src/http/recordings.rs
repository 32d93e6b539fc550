//! The recordings API (behind the admin guard, like `/api/streams`):
//!
//! * `GET /api/recordings[?app=A&stream=S&limit=N]`: the node's recordings, newest first
//!   (`limit`: default 100, at most 1000), with `truncated` when the limit left some out;
//! * `GET /api/recordings/APP/STREAM/ID`: one recording;
//! * `DELETE /api/recordings/APP/STREAM/ID`: delete a finished recording (409 while it is
//!   being written; 403 on a node whose admin API is open: deleting needs `--token-file` or
//!   `--admin-allow`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sluice_media::stream_name::StreamKey;
use tracing::warn;

use super::HttpContext;
use crate::recording::is_recording_file;
use crate::recording::listing::{DeleteError, Filter};

/// Listed when no `limit` is asked for.
const DEFAULT_LIMIT: usize = 100;
/// The most one answer lists.
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    app: Option<String>,
    stream: Option<String>,
    limit: Option<usize>,
}

fn not_recording() -> Response {
    (StatusCode::NOT_FOUND, "this node does not record (no --record-dir)\n").into_response()
}

fn failed(e: &dyn std::fmt::Display) -> Response {
    warn!(error = %e, "recordings API: reading the recordings failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "reading the recordings failed\n").into_response()
}

pub(super) async fn list(
    State(ctx): State<Arc<HttpContext>>,
    Query(q): Query<ListQuery>,
) -> Response {
    let Some(recordings) = &ctx.recordings else { return not_recording() };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    match recordings.list(Filter { app: q.app, stream: q.stream, limit }).await {
        Ok((list, truncated)) => {
            Json(serde_json::json!({ "recordings": list, "truncated": truncated })).into_response()
        }
        Err(e) => failed(&e),
    }
}

/// The stream key and id of a path, when they name something a recording could be.
fn parse(app: &str, stream: &str, id: &str) -> Option<StreamKey> {
    let (key, _) = StreamKey::parse(app, stream).ok()?;
    is_recording_file(id, "index.m3u8").then_some(key)
}

pub(super) async fn one(
    State(ctx): State<Arc<HttpContext>>,
    Path((app, stream, id)): Path<(String, String, String)>,
) -> Response {
    let Some(recordings) = &ctx.recordings else { return not_recording() };
    let none = || (StatusCode::NOT_FOUND, "no such recording\n").into_response();
    let Some(key) = parse(&app, &stream, &id) else { return none() };
    match recordings.one(&key, &id).await {
        Ok(Some(info)) => Json(info).into_response(),
        Ok(None) => none(),
        Err(e) => failed(&e),
    }
}

pub(super) async fn delete(
    State(ctx): State<Arc<HttpContext>>,
    Path((app, stream, id)): Path<(String, String, String)>,
) -> Response {
    let Some(recordings) = &ctx.recordings else { return not_recording() };
    if ctx.admin.is_open() {
        // Reading an open API is a choice a newcomer's node makes; deleting is not.
        let text = "deleting recordings needs --token-file or --admin-allow on this node\n";
        return (StatusCode::FORBIDDEN, text).into_response();
    }
    let Some(key) = parse(&app, &stream, &id) else {
        return (StatusCode::NOT_FOUND, "no such recording\n").into_response();
    };
    match recordings.delete(&key, &id).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e @ DeleteError::NotFound) => (StatusCode::NOT_FOUND, format!("{e}\n")).into_response(),
        Err(e @ DeleteError::InProgress) => {
            (StatusCode::CONFLICT, format!("{e}\n")).into_response()
        }
        Err(e @ DeleteError::Io(_)) => failed(&e),
    }
}
