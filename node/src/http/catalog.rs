//! The catalog API (behind the admin guard, like `/api/recordings`):
//!
//! * `GET /api/catalog?q=WORDS&tags=A,B&kind=live|recording&app=A&stream=S&from=MS&to=MS&limit=N&page=TOKEN`:
//!   one page of the items found, newest first, with `next_page` when more follow;
//! * `GET /api/catalog/items/ID`: one item (`ID`: `APP/STREAM` for a live stream,
//!   `APP/STREAM/START` for a recording);
//! * `PATCH /api/catalog/items/ID` with JSON `{"title", "description", "tags"}` (each
//!   optional): change what is said of it (403 on a node whose admin API is open).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use sluice_catalog::{CatalogError, Kind, Metadata};
use tracing::warn;

use super::HttpContext;

#[derive(Debug, Deserialize)]
pub(super) struct SearchQuery {
    q: Option<String>,
    /// Comma-separated.
    tags: Option<String>,
    kind: Option<String>,
    app: Option<String>,
    stream: Option<String>,
    from: Option<i64>,
    to: Option<i64>,
    limit: Option<usize>,
    page: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Change {
    title: Option<String>,
    description: Option<String>,
    tags: Option<Vec<String>>,
}

fn no_catalog() -> Response {
    let text = "this node keeps no catalog (--catalog, or --record-dir for the default)\n";
    (StatusCode::NOT_FOUND, text).into_response()
}

fn not_open() -> Response {
    let text = "the catalog database is out of reach (the node's log says why)\n";
    (StatusCode::SERVICE_UNAVAILABLE, text).into_response()
}

fn error(e: CatalogError) -> Response {
    match e {
        CatalogError::Invalid(m) => (StatusCode::BAD_REQUEST, format!("{m}\n")).into_response(),
        CatalogError::NotFound => (StatusCode::NOT_FOUND, "no such catalog item\n").into_response(),
        e => {
            warn!(error = %e, "catalog API: the database failed");
            (StatusCode::SERVICE_UNAVAILABLE, "the catalog is unavailable\n").into_response()
        }
    }
}

pub(super) async fn search(
    State(ctx): State<Arc<HttpContext>>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let Some(sync) = &ctx.catalog else { return no_catalog() };
    let kind = match q.kind.as_deref().map(|k| Kind::parse(k).ok_or(k)) {
        None => None,
        Some(Ok(kind)) => Some(kind),
        Some(Err(k)) => {
            let text = format!("kind {k:?}: live or recording\n");
            return (StatusCode::BAD_REQUEST, text).into_response();
        }
    };
    let query = sluice_catalog::Query {
        text: q.q.unwrap_or_default(),
        tags: q
            .tags
            .iter()
            .flat_map(|t| t.split(','))
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect(),
        kind,
        app: q.app,
        stream: q.stream,
        from_ms: q.from,
        to_ms: q.to,
        limit: q.limit.unwrap_or(0),
        page: q.page,
    };
    let Some(catalog) = sync.catalog() else { return not_open() };
    match catalog.search(&query).await {
        Ok(page) => Json(page).into_response(),
        Err(e) => error(e),
    }
}

pub(super) async fn item(State(ctx): State<Arc<HttpContext>>, Path(id): Path<String>) -> Response {
    let Some(sync) = &ctx.catalog else { return no_catalog() };
    let Some(catalog) = sync.catalog() else { return not_open() };
    match catalog.get(&id).await {
        Ok(Some(item)) => Json(item).into_response(),
        Ok(None) => error(CatalogError::NotFound),
        Err(e) => error(e),
    }
}

pub(super) async fn describe(
    State(ctx): State<Arc<HttpContext>>,
    Path(id): Path<String>,
    change: Result<Json<Change>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(sync) = &ctx.catalog else { return no_catalog() };
    if ctx.admin.is_open() {
        let text = "editing the catalog needs --token-file or --admin-allow on this node\n";
        return (StatusCode::FORBIDDEN, text).into_response();
    }
    let Json(change) = match change {
        Ok(change) => change,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{}\n", e.body_text())).into_response(),
    };
    let change =
        Metadata { title: change.title, description: change.description, tags: change.tags };
    let Some(catalog) = sync.catalog() else { return not_open() };
    match catalog.describe(&id, change).await {
        Ok(item) => Json(item).into_response(),
        Err(e) => error(e),
    }
}
