//! Recordings served by an edge: `/vod/...` passed to the origins (an edge keeps no
//! recordings), the stream's ring home first and then the other ready origins (they share the
//! recordings' store), with the viewer's Range and query. What never changes once written (init
//! segments, segments, thumbnails, and an index once it has `EXT-X-ENDLIST`) and is small
//! enough is kept in a weight-bounded cache (`--vod-cache-size`), so an edge serves a popular
//! recording's viewers from memory and asks the origins once per file. The play policy is the
//! edge's own (checked before this is asked).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use sluice_cluster::types::{Role, Snapshot};
use sluice_cluster::{Ring, DEFAULT_VNODES};
use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;
use tracing::warn;

use crate::metrics::Metrics;

/// Largest file kept in the cache (segments are a few MB at most; MP4 downloads never are).
const MAX_CACHED: u64 = 16 << 20;
/// Origins asked for one request at most.
const MAX_TRIES: usize = 3;
/// One origin's answer (its headers) within this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A cached file: its content type and bytes.
#[derive(Clone)]
struct Cached {
    kind: HeaderValue,
    body: Bytes,
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<String, Cached> for Weight {
    fn weight(&self, key: &String, c: &Cached) -> u64 {
        (key.len() + c.body.len() + 64) as u64
    }
}

/// An edge's way to the origins' recordings.
pub struct VodUpstream {
    client: reqwest::Client,
    snapshot: watch::Receiver<Snapshot>,
    cache: quick_cache::sync::Cache<String, Cached, Weight>,
    metrics: Metrics,
    failures: crate::log_limit::RateLimitedLog,
}

impl VodUpstream {
    /// `cache_bytes`: the cache's bound (0: nothing is cached).
    pub fn new(snapshot: watch::Receiver<Snapshot>, cache_bytes: u64, metrics: Metrics) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        VodUpstream {
            client,
            snapshot,
            cache: quick_cache::sync::Cache::with_weighter(1024, cache_bytes, Weight),
            metrics,
            failures: crate::log_limit::RateLimitedLog::new(2),
        }
    }

    /// The origins to ask for `key`'s recordings: ring order from its home, at most
    /// [`MAX_TRIES`], with their API address.
    fn origins(&self, key: &StreamKey) -> Vec<String> {
        let snap = self.snapshot.borrow();
        let ring = Ring::new(snap.ready_origins(), DEFAULT_VNODES);
        ring.owners(key, MAX_TRIES)
            .iter()
            .filter_map(|id| snap.node(Role::Origin, id)?.info.addresses.get("api").cloned())
            .collect()
    }

    /// Answer `GET {path}?{query}` (a `/vod/...` path of `key`) from the cache or an origin.
    pub async fn get(
        &self,
        key: &StreamKey,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        cacheable: bool,
    ) -> Response {
        // `bytes=0-` (what ffmpeg asks for) is the whole file: answered as such (RFC 9110 lets
        // a server ignore a Range), so it may be kept and served from the cache.
        let range = headers.get(header::RANGE).filter(|r| r.as_bytes() != b"bytes=0-").cloned();
        // A playlist carries the viewer's token into the URLs it lists: kept per query.
        let cache_key = match path.ends_with(".m3u8") {
            true => format!("{path}?{}", query.unwrap_or_default()),
            false => path.to_string(),
        };
        if let Some(hit) = self.cache.get(&cache_key) {
            self.metrics.vod_cache_hits.inc();
            if range.is_none() {
                return cached(hit);
            }
        }
        self.metrics.vod_fetches.inc();
        for api in self.origins(key) {
            let url = match query {
                Some(q) => format!("http://{api}{path}?{q}"),
                None => format!("http://{api}{path}"),
            };
            let mut request = self.client.get(&url);
            if let Some(range) = &range {
                request = request.header(header::RANGE, range);
            }
            let answer = tokio::time::timeout(FETCH_TIMEOUT, request.send()).await;
            let response = match answer {
                Ok(Ok(r)) if r.status().as_u16() != 404 => r,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => {
                    self.failed(path, &api, &e.to_string());
                    continue;
                }
                Err(_) => {
                    self.failed(path, &api, "no answer in time");
                    continue;
                }
            };
            return self.relay(&cache_key, response, cacheable && range.is_none()).await;
        }
        self.metrics.vod_fetch_errors.inc();
        (StatusCode::NOT_FOUND, "no such recording file (no origin has it)\n").into_response()
    }

    fn failed(&self, path: &str, api: &str, error: &str) {
        if self.failures.allow() {
            warn!(path, origin = api, error, "vod: an origin did not answer for a recording");
        }
    }

    /// The origin's answer, passed on (and kept when it may be).
    async fn relay(&self, key: &str, response: reqwest::Response, cacheable: bool) -> Response {
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut out = HeaderMap::new();
        for name in [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::CACHE_CONTROL,
        ] {
            if let Some(v) = response.headers().get(name.as_str()) {
                if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                    out.insert(name, v);
                }
            }
        }
        let small = response.content_length().is_some_and(|n| n <= MAX_CACHED);
        if status == StatusCode::OK && cacheable && small {
            let kind = out
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            return match response.bytes().await {
                Ok(body) => {
                    // A playlist only once finished: until then it grows.
                    if !key.contains(".m3u8?") || ended(&body) {
                        let entry = Cached { kind: kind.clone(), body: body.clone() };
                        self.cache.insert(key.to_string(), entry);
                    }
                    (status, out, body).into_response()
                }
                Err(e) => {
                    self.failed(key, "-", &e.to_string());
                    (StatusCode::BAD_GATEWAY, "the origin's answer broke off\n").into_response()
                }
            };
        }
        // Streamed through, a chunk at a time.
        let body = futures_util::stream::unfold(response, |mut r| async move {
            match r.chunk().await {
                Ok(Some(chunk)) => Some((Ok::<_, std::io::Error>(chunk), r)),
                Ok(None) => None,
                Err(e) => Some((Err(std::io::Error::other(e)), r)),
            }
        });
        (status, out, Body::from_stream(body)).into_response()
    }
}

/// Whether an index is finished (it no longer changes).
fn ended(index: &[u8]) -> bool {
    std::str::from_utf8(index).is_ok_and(|t| t.contains("#EXT-X-ENDLIST"))
}

fn cached(hit: Cached) -> Response {
    let headers = [
        (header::CONTENT_TYPE, hit.kind),
        (header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400, immutable")),
    ];
    (headers, hit.body).into_response()
}
