//! The HTTP front end, for players that cannot speak gRPC: `GET /play/APP/STREAM.flv|.m3u8`
//! answers 302 to the chosen edge's absolute URL (so every later request of that player goes
//! to the same edge, whatever a load balancer in front would do), `GET /play/APP/STREAM.json`
//! the choice as JSON (`?protocol=flv|hls|rtmp`, default flv); `/healthz`, `/readyz`,
//! `/metrics`; the cluster page (`/`, `/cluster`, `/assets/*`, [`crate::page`]) and its JSON
//! (`/api/cluster`, [`crate::api`]).

use crate::assign::AssignError;
use crate::service::ControlPlane;
use crate::view::{ChoiceError, PlayProtocol};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sluice_cluster::types::Role;
use sluice_media::stream_name::StreamKey;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared by the handlers.
pub struct HttpState {
    pub control: Arc<ControlPlane>,
    /// Assignments answered over HTTP, for `/metrics`.
    pub assignments: AtomicU64,
}

pub fn router(control: Arc<ControlPlane>) -> Router {
    let state = Arc::new(HttpState { control: control.clone(), assignments: AtomicU64::new(0) });
    Router::new()
        .route("/play/{app}/{file}", get(play))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(crate::page::routes())
        .merge(crate::api::routes(control))
}

/// What a `/play/` request asks for, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Redirect(PlayProtocol),
    Json,
}

fn split_file(file: &str) -> Option<(&str, Want)> {
    if let Some(name) = file.strip_suffix(".flv") {
        Some((name, Want::Redirect(PlayProtocol::Flv)))
    } else if let Some(name) = file.strip_suffix(".m3u8") {
        Some((name, Want::Redirect(PlayProtocol::Hls)))
    } else {
        file.strip_suffix(".json").map(|name| (name, Want::Json))
    }
}

fn error_response(e: ChoiceError) -> Response {
    let status = match e {
        ChoiceError::NoPublisher => StatusCode::NOT_FOUND,
        ChoiceError::Assign(AssignError::NoEdges | AssignError::Full) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ChoiceError::NoAddress => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, format!("{e}\n")).into_response()
}

async fn play(
    State(state): State<Arc<HttpState>>,
    Path((app, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some((name, want)) = split_file(&file) else {
        return (StatusCode::NOT_FOUND, "use .flv, .m3u8 or .json\n").into_response();
    };
    let Ok((key, None)) = StreamKey::parse(&app, name) else {
        return (StatusCode::BAD_REQUEST, "invalid stream name\n").into_response();
    };
    let protocol = match want {
        Want::Redirect(p) => p,
        Want::Json => match query.get("protocol").map(String::as_str) {
            None | Some("flv") => PlayProtocol::Flv,
            Some("hls") => PlayProtocol::Hls,
            Some("rtmp") => PlayProtocol::Rtmp,
            Some(_) => {
                return (StatusCode::BAD_REQUEST, "protocol is flv, hls or rtmp\n").into_response()
            }
        },
    };
    match state.control.assign(&key, protocol) {
        Ok(choice) => {
            state.assignments.fetch_add(1, Ordering::Relaxed);
            match want {
                Want::Redirect(_) => (
                    StatusCode::FOUND,
                    [(header::LOCATION, choice.url), (header::CACHE_CONTROL, "no-store".into())],
                )
                    .into_response(),
                Want::Json => Json(choice).into_response(),
            }
        }
        Err(e) => error_response(e),
    }
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    if state.control.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "cluster cache not loaded yet\n").into_response()
    }
}

/// A minimal Prometheus text exposition: readiness, assignments, and edge totals.
async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    let edges = state.control.totals(Role::Edge);
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
    };
    gauge(
        "sluice_control_plane_ready",
        "1 once the cluster cache is loaded",
        u64::from(state.control.is_ready()),
    );
    gauge("sluice_cluster_edge_viewers", "Viewers on ready, non-draining edges", edges.viewers);
    gauge(
        "sluice_cluster_edge_max_viewers",
        "Configured viewer capacity of those edges",
        edges.max_viewers,
    );
    gauge("sluice_cluster_edge_egress_bps", "Egress of those edges, bit/s", edges.egress_bps);
    gauge(
        "sluice_cluster_edge_viewer_headroom",
        "Viewers those edges can still take",
        edges.viewer_headroom,
    );
    if let Some(n) = state.control.recommended_edges() {
        gauge(
            "sluice_cluster_recommended_edges",
            "Edges the load needs at the target utilisation",
            n,
        );
    }
    let assigned = state.assignments.load(Ordering::Relaxed);
    let _ = write!(
        out,
        "# HELP sluice_control_plane_http_assignments_total Viewers assigned over HTTP\n\
         # TYPE sluice_control_plane_http_assignments_total counter\n\
         sluice_control_plane_http_assignments_total {assigned}\n"
    );
    state.control.counters().render(&mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_choose_the_answer() {
        assert_eq!(split_file("x.flv"), Some(("x", Want::Redirect(PlayProtocol::Flv))));
        assert_eq!(split_file("x.m3u8"), Some(("x", Want::Redirect(PlayProtocol::Hls))));
        assert_eq!(split_file("a.b.json"), Some(("a.b", Want::Json)));
        assert_eq!(split_file("x.mp4"), None);
    }
}
