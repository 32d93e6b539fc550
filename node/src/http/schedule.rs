//! The playout schedule API (behind the admin guard):
//!
//! * `GET /api/schedule`: the entries, by start, with their state;
//! * `POST /api/schedule` with JSON `{"app", "stream", "file" or "recording", "start_ms",
//!   "loop"}` (`recording`: a finished recording's `APP/NAME/ID`; `start_ms`: Unix ms, default
//!   now; `loop`: default false): 201 with the entry;
//! * `DELETE /api/schedule/ID`: remove an entry, stopping it if it plays.
//!
//! Changes need `--token-file` or `--admin-allow` (403 on an open admin API). In a cluster the
//! schedule is the control plane's (`sluicectl schedule`): GET lists it with how the entries
//! stand on this node; changes are refused (409).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use super::HttpContext;
use crate::playout::schedule::{EntryValue, ScheduleError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewEntry {
    app: String,
    stream: String,
    #[serde(default)]
    file: String,
    recording: Option<String>,
    start_ms: Option<i64>,
    #[serde(rename = "loop", default)]
    looped: bool,
}

fn no_playout() -> Response {
    (StatusCode::NOT_FOUND, "this node plays nothing out (no --playout-dir)\n").into_response()
}

fn refused(ctx: &HttpContext) -> Option<Response> {
    ctx.admin.is_open().then(|| {
        let text = "changing the schedule needs --token-file or --admin-allow on this node\n";
        (StatusCode::FORBIDDEN, text).into_response()
    })
}

fn error(e: ScheduleError) -> Response {
    let status = match e {
        ScheduleError::NotFound => StatusCode::NOT_FOUND,
        ScheduleError::Full | ScheduleError::Clustered => StatusCode::CONFLICT,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, format!("{e}\n")).into_response()
}

pub(super) async fn list(State(ctx): State<Arc<HttpContext>>) -> Response {
    let Some(playout) = &ctx.playout else { return no_playout() };
    Json(serde_json::json!({ "entries": playout.list() })).into_response()
}

pub(super) async fn add(
    State(ctx): State<Arc<HttpContext>>,
    body: Result<Json<NewEntry>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(playout) = &ctx.playout else { return no_playout() };
    if let Some(refused) = refused(&ctx) {
        return refused;
    }
    let Json(e) = match body {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{}\n", e.body_text())).into_response(),
    };
    let start = e.start_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    });
    let value = EntryValue {
        app: e.app,
        stream: e.stream,
        file: e.file,
        recording: e.recording,
        start_ms: start,
        looped: e.looped,
    };
    if let Err(e) = playout.check_recording(&value).await {
        return error(e);
    }
    match playout.add(value) {
        Ok(entry) => (StatusCode::CREATED, Json(entry)).into_response(),
        Err(e) => error(e),
    }
}

pub(super) async fn remove(
    State(ctx): State<Arc<HttpContext>>,
    Path(id): Path<String>,
) -> Response {
    let Some(playout) = &ctx.playout else { return no_playout() };
    if let Some(refused) = refused(&ctx) {
        return refused;
    }
    match playout.remove(&id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(e),
    }
}
