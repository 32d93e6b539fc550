//! The node's HTTP side: HTTP-FLV playback, the JSON API, Prometheus metrics, health checks,
//! and the web page (`/`, `/assets/...`).

pub mod admin;
mod catalog;
mod flv;
mod flv_direct;
mod recordings;
mod schedule;
pub mod serve;
mod vod;
mod vod_proxy;
pub use vod_proxy::VodUpstream;
pub mod web;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::{Json, Router};
use prometheus_client::registry::Registry;
use tokio::sync::Semaphore;
use tower_http::cors::CorsLayer;

use crate::hls::http::HlsService;
use crate::hls::HlsServing;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::settings::Limits;

/// What HTTP handlers share.
pub struct HttpContext {
    pub hub: Hub,
    pub metrics: Metrics,
    pub registry: Registry,
    pub limits: Limits,
    /// HLS as this node serves it.
    pub hls: HlsServing,
    pub connection_slots: Arc<Semaphore>,
    /// Slots of `connection_slots` HTTP-FLV viewers leave to RTMP (`--publisher-reserve`).
    pub publisher_reserve: usize,
    /// False while starting and once draining: `/readyz` answers 503.
    pub ready: AtomicBool,
    /// `--web-dir`: the web page and its player libraries.
    pub web_dir: std::path::PathBuf,
    /// Edges: the registry cache, so `/api/streams` lists every stream of the cluster, not only
    /// those this edge pulls now.
    pub cluster: Option<tokio::sync::watch::Receiver<sluice_cluster::types::Snapshot>>,
    /// Set while a drain order is in force: `/readyz` answers 503, new viewers are redirected
    /// or refused.
    pub drain: Arc<crate::drain::DrainGate>,
    /// Who may read `/api/*` and `/metrics`.
    pub admin: Arc<admin::AdminGuard>,
    /// Which streams play only from a signed URL, or with the webhook's consent.
    pub play_auth: Arc<crate::play_auth::PlayAuth>,
    /// The webhook (`on_play`, `on_play_done`), when there is one.
    pub webhook: Option<Arc<crate::webhook::Webhook>>,
    /// Origins that record: where the recordings `/vod/...` plays are.
    pub recordings: Option<Arc<crate::recording::Recordings>>,
    /// Origins that keep a content catalog: `/api/catalog` searches and edits it.
    pub catalog: Option<Arc<crate::catalog::CatalogSync>>,
    /// Edges: the origins' recordings, `/vod/...` passed to them and cached.
    pub vod_upstream: Option<Arc<VodUpstream>>,
    /// Origins that play files out on a schedule (`--playout-dir`): `/api/schedule`.
    pub playout: Option<Arc<crate::playout::Playout>>,
    /// Origins that transcode: the renditions the multivariant playlists list.
    pub transcoders: Option<Arc<crate::transcode::Transcoders>>,
    /// In a cluster: the registry cache, where renditions made elsewhere are found.
    pub renditions: Option<Arc<dyn crate::hls::renditions::ClusterRenditions>>,
}

pub fn router(ctx: Arc<HttpContext>) -> Router {
    let hls = HlsService::new(
        ctx.hub.clone(),
        ctx.hls.clone(),
        &ctx.metrics,
        ctx.limits.play_wait_timeout,
        ctx.play_auth.clone(),
        ctx.webhook.clone(),
        crate::hls::renditions::RenditionSources {
            own: ctx.transcoders.clone(),
            cluster: ctx.renditions.clone(),
        },
    );
    let web = Arc::new(web::WebFiles::new(&ctx.web_dir));
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/api/streams", get(streams))
        .route("/api/recordings", get(recordings::list))
        .route(
            "/api/recordings/{app}/{stream}/{id}",
            get(recordings::one).delete(recordings::delete),
        )
        .route("/api/schedule", get(schedule::list).post(schedule::add))
        .route("/api/schedule/{id}", axum::routing::delete(schedule::remove))
        .route("/api/catalog", get(catalog::search))
        .route("/api/catalog/items/{*id}", get(catalog::item).patch(catalog::describe))
        .route_layer(axum::middleware::from_fn_with_state(ctx.admin.clone(), admin::guard));
    Router::new()
        .merge(web::routes(web))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .merge(guarded)
        .route("/vod/{app}/{stream}/{id}/{file}", get(vod::file))
        .route("/vod/{app}/{stream}/{file}", get(vod::stream_file))
        .route("/{app}/{file}", get(media))
        .route("/{app}/{stream}/{file}", get(hls_file))
        .layer(Extension(hls))
        .layer(cors())
        .with_state(ctx)
}

/// Any site's page may read what the node serves (players, the API's listings), but only read:
/// a browser on another site is never let send a change (`DELETE`, `PATCH`, a JSON `POST`
/// needs a preflight, which names only `GET` and `HEAD`), so an operator's browser on an
/// `--admin-allow` network cannot be made to change anything by a page it visits.
fn cors() -> CorsLayer {
    use tower_http::cors::Any;
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([axum::http::Method::GET, axum::http::Method::HEAD])
        .allow_headers(Any)
        .expose_headers(Any)
}

async fn readyz(State(ctx): State<Arc<HttpContext>>) -> Response {
    if ctx.ready.load(Ordering::Relaxed) && !ctx.drain.is_draining() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining or starting\n").into_response()
    }
}

async fn metrics(State(ctx): State<Arc<HttpContext>>) -> Response {
    let body = crate::metrics::render(&ctx.registry);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
        .into_response()
}

async fn streams(State(ctx): State<Arc<HttpContext>>) -> Response {
    let mut streams = ctx.hub.snapshot();
    if let Some(cluster) = &ctx.cluster {
        // An edge: streams of the cluster it does not pull now, with what the registry says.
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let snap = cluster.borrow();
        for record in snap.streams.values() {
            let (app, name) = (record.stream.app(), record.stream.name());
            if streams.iter().any(|s| s.app == app && s.name == name) {
                continue;
            }
            streams.push(crate::hub::StreamSnapshot {
                app: app.to_string(),
                name: name.to_string(),
                video: None,
                audio: None,
                bitrate_kbps: 0.0,
                viewers: 0,
                uptime_s: now_ms.saturating_sub(record.info.started_at_ms) as f64 / 1000.0,
                started_at: record.info.started_at_ms as f64 / 1000.0,
            });
        }
        streams.sort_by(|a, b| (&a.app, &a.name).cmp(&(&b.app, &b.name)));
    }
    Json(serde_json::json!({ "streams": streams })).into_response()
}

async fn media(
    State(ctx): State<Arc<HttpContext>>,
    Extension(hls): Extension<Arc<HlsService>>,
    Path((app, file)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    client: Option<Extension<serve::ClientIp>>,
) -> Response {
    let is_flv = file.ends_with(".flv");
    let path = format!("/{app}/{file}{}", token_query(query.as_deref()));
    let is_manifest = file.ends_with(".m3u8") || file.ends_with(".mpd");
    if let Some(resp) = drained(&ctx, &path, is_flv || is_manifest) {
        return resp;
    }
    let client = client.map(|c| c.0 .0);
    if let Some(stream) = file.strip_suffix(".flv") {
        return flv::play(ctx, &app, stream, query.as_deref(), client).await;
    }
    if let Some(stream) = file.strip_suffix(".mpd") {
        if let Err(resp) = hls.authorize(&app, stream, query.as_deref(), client).await {
            return resp;
        }
        let _pull = match pull_for_hls(&ctx, &app, stream).await {
            Ok(pull) => pull,
            Err(resp) => return resp,
        };
        return crate::hls::dash::mpd(hls, &app, stream, query.as_deref(), client).await;
    }
    if let Some(stream) = file.strip_suffix(".m3u8") {
        // Before an edge starts pulling the stream for this request.
        if let Err(resp) = hls.authorize(&app, stream, query.as_deref(), client).await {
            return resp;
        }
        let _pull = match pull_for_hls(&ctx, &app, stream).await {
            Ok(pull) => pull,
            Err(resp) => return resp,
        };
        return crate::hls::http::multivariant(hls, &app, stream, query.as_deref(), client).await;
    }
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn hls_file(
    State(ctx): State<Arc<HttpContext>>,
    Extension(hls): Extension<Arc<HlsService>>,
    Path((app, stream, file)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    client: Option<Extension<serve::ClientIp>>,
) -> Response {
    let path = format!("/{app}/{stream}/{file}{}", token_query(query.as_deref()));
    if let Some(resp) = drained(&ctx, &path, file.ends_with(".m3u8")) {
        return resp;
    }
    let client = client.map(|c| c.0 .0);
    if let Err(resp) = hls.authorize(&app, &stream, query.as_deref(), client).await {
        return resp;
    }
    let _pull = match pull_for_hls(&ctx, &app, &stream).await {
        Ok(pull) => pull,
        Err(resp) => return resp,
    };
    crate::hls::http::stream_file(hls, &app, &stream, &file, query.as_deref(), client).await
}

/// `?token=…` when the request carries a play token (kept on a drain redirect: the other
/// edge checks it too), else nothing.
fn token_query(query: Option<&str>) -> String {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).find(|(k, _)| k == "token").map_or(
        String::new(),
        |(_, v)| {
            let encoded: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("?token={encoded}")
        },
    )
}

/// A media request on a node with a drain order in force: players of new sessions (HTTP-FLV,
/// and every HLS playlist reload, `entry`) are sent to another ready edge when one is known
/// (302 to the same path there, without the query but a play token: the other edge starts
/// its own HLS session); past the deadline everything else is refused. `None`: serve.
fn drained(ctx: &HttpContext, path: &str, entry: bool) -> Option<Response> {
    let view = ctx.drain.view();
    if !view.draining {
        return None;
    }
    if entry {
        if let Some(url) = ctx.drain.redirect_url(path) {
            return Some(
                (StatusCode::FOUND, [(header::LOCATION, url)], "this node is draining\n")
                    .into_response(),
            );
        }
    }
    // New HTTP-FLV viewers are not taken while draining; HLS sessions go on until the deadline.
    let refuse = view.closed || (entry && path.ends_with(".flv"));
    refuse.then(|| (StatusCode::SERVICE_UNAVAILABLE, "this node is draining\n").into_response())
}

/// On a node with an upstream (an edge), an HLS request for a stream that is not live here
/// starts pulling it and waits (up to `--play-wait-timeout`) until it is; a stream the
/// cluster does not know is 404 at once. The returned subscription keeps the stream pulled
/// while the request is answered (the HLS session then holds its own).
async fn pull_for_hls(
    ctx: &HttpContext,
    app: &str,
    stream: &str,
) -> Result<Option<crate::hub::Subscription>, Response> {
    if !ctx.hub.has_upstream() {
        return Ok(None);
    }
    let Ok((key, _)) = sluice_media::stream_name::StreamKey::parse(app, stream) else {
        return Ok(None); // the HLS handler answers the bad name
    };
    if ctx.hub.is_live(&key) {
        return Ok(None);
    }
    match ctx.hub.subscribe(&key, crate::metrics::Protocol::Hls) {
        Ok(mut sub) => {
            sub.wait_live(ctx.limits.play_wait_timeout).await;
            Ok(Some(sub))
        }
        Err(e @ crate::hub::SubscribeError::NotFound(_)) => {
            Err((StatusCode::NOT_FOUND, format!("{e}\n")).into_response())
        }
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()),
    }
}
