//! The HTTP front end, for players that cannot speak gRPC: `GET /play/APP/STREAM.flv|.m3u8`
//! answers 302 to the chosen edge's absolute URL (so every later request of that player goes
//! to the same edge, whatever a load balancer in front would do), `GET /play/APP/STREAM.json`
//! the choice as JSON (`?protocol=flv|hls|rtmp`, default flv); both take `?avoid=EDGE,...`,
//! the edges the player just failed on (see [`crate::view::parse_avoid`]); `/healthz`, `/readyz`,
//! `/metrics`; the cluster page (`/`, `/cluster`, `/assets/*`, [`crate::page`]) and its JSON
//! (`/api/cluster`, [`crate::api`]).

use crate::assign::AssignError;
use crate::metrics::Metrics;
use crate::service::ControlPlane;
use crate::view::{parse_avoid, ChoiceError, PlayProtocol};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use sluice_media::stream_name::StreamKey;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Shared by the handlers.
pub struct HttpState {
    pub control: Arc<ControlPlane>,
    pub metrics: Metrics,
}

pub fn router(control: Arc<ControlPlane>) -> Router {
    let metrics = Metrics::new(control.clone());
    let state = Arc::new(HttpState { control: control.clone(), metrics });
    Router::new()
        .route("/play/{app}/{file}", get(play))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(serve_metrics))
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
        ChoiceError::NoClientAddress => StatusCode::BAD_REQUEST,
    };
    (status, format!("{e}\n")).into_response()
}

async fn play(
    State(state): State<Arc<HttpState>>,
    Path((app, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
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
    // `?avoid=edge-a,edge-b`: edges this player just failed on.
    let avoid = parse_avoid(query.get("avoid").map_or("", String::as_str).split(','));
    let avoid = match avoid {
        Ok(avoid) => avoid,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("avoid: {e}\n")).into_response(),
    };
    // The requester: a player that follows the redirect plays from this address.
    let client = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    match state.control.assign(&key, protocol, &avoid, client) {
        Ok(choice) => {
            state.control.counters().http_assignment();
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
        let why = if state.control.subscribe().borrow().revision == 0 {
            "cluster cache not loaded yet\n"
        } else {
            "etcd out of reach: the cluster cache may be stale\n"
        };
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

/// The replica's counters and the cluster's figures (see [`crate::metrics`]).
async fn serve_metrics(State(state): State<Arc<HttpState>>) -> Response {
    let body = state.metrics.encode();
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
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
