//! Recordings served by an edge: `/vod/...` passed to the origins (an edge keeps no
//! recordings), the stream's ring home first and then the next ready origins (they share the
//! recordings' store; a 404, an error or no answer moves on), with the viewer's Range. What
//! never changes once written (init segments, segments, thumbnails, and an index once it has
//! `EXT-X-ENDLIST`) and is small enough is kept in a weight-bounded cache
//! (`--vod-cache-size`), so once a file is kept its viewers are served from memory, Range
//! requests too; viewers asking at once for a file not kept yet wait for one fetch. The play
//! policy is the edge's own (checked before this is asked): a private stream's origin is shown
//! a short-lived token of the edge's, and a playlist's URLs carry the viewer's token again.

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

/// How long a kept file is served before an origin is asked again: a recording deleted at the
/// origins stops playing from the edges within this.
const KEPT_FOR: Duration = Duration::from_secs(600);
/// Longest wait for another asker's fetch of the same file before fetching it oneself.
const SHARED_FETCH_WAIT: Duration = Duration::from_secs(3);
/// Longest wait for the next piece of a body streamed through from an origin.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);

/// A cached file: its content type and bytes, and when it was fetched.
#[derive(Clone)]
struct Cached {
    kind: HeaderValue,
    body: Bytes,
    at: tokio::time::Instant,
}

impl Cached {
    fn new(kind: HeaderValue, body: Bytes) -> Cached {
        Cached { kind, body, at: tokio::time::Instant::now() }
    }

    fn fresh(&self) -> bool {
        self.at.elapsed() < KEPT_FOR
    }
}

#[derive(Clone)]
struct Weight;

impl quick_cache::Weighter<String, Cached> for Weight {
    fn weight(&self, key: &String, c: &Cached) -> u64 {
        (key.len() + c.body.len() + 64) as u64
    }
}

/// One request for the origins.
pub struct Request<'a> {
    pub key: &'a StreamKey,
    /// `/vod/...`.
    pub path: &'a str,
    /// The query shown to the origin (a token of the edge's), if any.
    pub upstream_query: Option<String>,
    /// `?token=…` of the viewer's, put on every URL a playlist names (or empty).
    pub viewer_token: String,
    pub headers: &'a HeaderMap,
    /// What the path names never changes once written.
    pub cacheable: bool,
}

type Guard<'a> = quick_cache::sync::PlaceholderGuard<
    'a,
    String,
    Cached,
    Weight,
    quick_cache::DefaultHashBuilder,
    quick_cache::sync::DefaultLifecycle<String, Cached>,
>;

/// Where a fetched file is kept: the cache, or the place concurrent askers of it wait on
/// (dropped unfilled when the file is not kept: the next of them fetches it).
enum Keeper<'a> {
    Cache,
    Guard(Guard<'a>),
}

impl Keeper<'_> {
    fn keep(self, cache: &quick_cache::sync::Cache<String, Cached, Weight>, key: &str, c: Cached) {
        match self {
            Keeper::Cache => cache.insert(key.to_string(), c),
            Keeper::Guard(guard) => {
                let _ = guard.insert(c);
            }
        }
    }
}

/// Largest playlist read (a 6 h recording's index is some 200 KB).
const MAX_PLAYLIST: usize = 4 << 20;

/// An edge's way to the origins' recordings.
pub struct VodUpstream {
    client: reqwest::Client,
    snapshot: watch::Receiver<Snapshot>,
    cache: quick_cache::sync::Cache<String, Cached, Weight>,
    /// The cache holds anything (`--vod-cache-size` above 0).
    keeps: bool,
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
            keeps: cache_bytes > 0,
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

    /// Answer `request` from the cache or an origin.
    pub async fn get(&self, request: Request<'_>) -> Response {
        let path = request.path;
        // `bytes=0-` (what ffmpeg asks for) is the whole file: answered as such (RFC 9110 lets
        // a server ignore a Range), so it may be kept and served from the cache.
        let range =
            request.headers.get(header::RANGE).filter(|r| r.as_bytes() != b"bytes=0-").cloned();
        let playlist = path.ends_with(".m3u8");
        // A playlist carries the viewer's token in its URLs: kept per token.
        let cache_key = match playlist {
            true => format!("{path}{}", request.viewer_token),
            false => path.to_string(),
        };
        // A file that never changes, asked whole: concurrent askers wait for one fetch.
        let coalesce = self.keeps && request.cacheable && !playlist && range.is_none();
        let mut keeper = Keeper::Cache;
        // Past its time a kept file is fetched again (and replaced, or gone with a 404).
        if self.cache.get(&cache_key).is_some_and(|hit| !hit.fresh()) {
            self.cache.remove(&cache_key);
        }
        if coalesce {
            // Waited for a while at most: a fetch that fails or is not kept is not waited on
            // by every asker in turn.
            let shared = self.cache.get_value_or_guard_async(&cache_key);
            match tokio::time::timeout(SHARED_FETCH_WAIT, shared).await {
                Ok(Ok(hit)) => {
                    self.metrics.vod_cache_hits.inc();
                    return cached(hit, playlist);
                }
                Ok(Err(guard)) => keeper = Keeper::Guard(guard),
                Err(_) => {}
            }
        } else if let Some(hit) = self.cache.get(&cache_key) {
            self.metrics.vod_cache_hits.inc();
            return match &range {
                Some(range) if !playlist => cached_range(hit, range),
                _ => cached(hit, playlist),
            };
        }
        self.metrics.vod_fetches.inc();
        for api in self.origins(request.key) {
            let url = match &request.upstream_query {
                Some(q) => format!("http://{api}{path}?{q}"),
                None => format!("http://{api}{path}"),
            };
            let mut call = self.client.get(&url);
            if let Some(range) = &range {
                call = call.header(header::RANGE, range);
            }
            let response = match tokio::time::timeout(FETCH_TIMEOUT, call.send()).await {
                Ok(Ok(r)) if r.status().as_u16() == 404 => continue,
                Ok(Ok(r)) if r.status().is_server_error() => {
                    self.failed(path, &api, &format!("status {}", r.status()));
                    continue;
                }
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    self.failed(path, &api, &e.to_string());
                    continue;
                }
                Err(_) => {
                    self.failed(path, &api, "no answer in time");
                    continue;
                }
            };
            let keep = (request.cacheable && range.is_none()).then_some(keeper);
            return self
                .relay(&cache_key, response, keep, playlist.then_some(&request.viewer_token))
                .await;
        }
        self.metrics.vod_fetch_errors.inc();
        (StatusCode::NOT_FOUND, "no such recording file (no origin has it)\n").into_response()
    }

    fn failed(&self, path: &str, api: &str, error: &str) {
        if self.failures.allow() {
            warn!(path, origin = api, error, "vod: an origin did not answer for a recording");
        }
    }

    /// The origin's answer, passed on (and kept when it may be). A playlist (`viewer_token`)
    /// is read whole and its URLs given the viewer's token instead of the edge's.
    async fn relay(
        &self,
        key: &str,
        response: reqwest::Response,
        keep: Option<Keeper<'_>>,
        viewer_token: Option<&String>,
    ) -> Response {
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
        let kind = out
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        if let (Some(token), true) = (viewer_token, status == StatusCode::OK) {
            let Some(body) = read_capped(response, MAX_PLAYLIST).await else {
                return (
                    StatusCode::BAD_GATEWAY,
                    "the origin's playlist broke off or is too large\n",
                )
                    .into_response();
            };
            let text =
                super::vod::carry_token(&strip_queries(&String::from_utf8_lossy(&body)), token);
            let body = Bytes::from(text);
            // Kept only once finished: until then it grows.
            if let (Some(keeper), true) = (keep, ended(&body)) {
                keeper.keep(&self.cache, key, Cached::new(kind.clone(), body.clone()));
            }
            out.remove(header::CONTENT_LENGTH);
            return (status, out, body).into_response();
        }
        let small = response.content_length().is_some_and(|n| n <= MAX_CACHED);
        if let (Some(keeper), StatusCode::OK, true) = (keep, status, small) {
            return match read_capped(response, MAX_CACHED as usize).await {
                Some(body) => {
                    keeper.keep(&self.cache, key, Cached::new(kind, body.clone()));
                    (status, out, body).into_response()
                }
                None => {
                    (StatusCode::BAD_GATEWAY, "the origin's answer broke off\n").into_response()
                }
            };
        }
        // Streamed through, a chunk at a time; an origin that stalls ends the body.
        let body = futures_util::stream::unfold(Some(response), |r| async move {
            let mut r = r?;
            match tokio::time::timeout(CHUNK_TIMEOUT, r.chunk()).await {
                Ok(Ok(Some(chunk))) => Some((Ok::<_, std::io::Error>(chunk), Some(r))),
                Ok(Ok(None)) => None,
                Ok(Err(e)) => Some((Err(std::io::Error::other(e)), None)),
                Err(_) => {
                    let stalled =
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "origin stalled");
                    Some((Err(stalled), None))
                }
            }
        });
        (status, out, Body::from_stream(body)).into_response()
    }
}

/// The body of `response`, if it ends within `max` bytes and in time.
async fn read_capped(mut response: reqwest::Response, max: usize) -> Option<Bytes> {
    let mut body = Vec::new();
    let read = async {
        while let Some(chunk) = response.chunk().await.ok()? {
            if body.len() + chunk.len() > max {
                return None;
            }
            body.extend_from_slice(&chunk);
        }
        Some(())
    };
    tokio::time::timeout(FETCH_TIMEOUT, read).await.ok()??;
    Some(Bytes::from(body))
}

/// A playlist without the query of each URL it names (the origin put the edge's token there).
fn strip_queries(playlist: &str) -> String {
    let mut out = String::with_capacity(playlist.len());
    for line in playlist.lines() {
        if let Some(uri) = line.strip_prefix("#EXT-X-MAP:URI=\"").and_then(|u| u.strip_suffix('"'))
        {
            let uri = uri.split('?').next().unwrap_or(uri);
            out.push_str(&format!("#EXT-X-MAP:URI=\"{uri}\""));
        } else if !line.is_empty() && !line.starts_with('#') {
            out.push_str(line.split('?').next().unwrap_or(line));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// Whether an index is finished (it no longer changes).
fn ended(index: &[u8]) -> bool {
    std::str::from_utf8(index).is_ok_and(|t| t.contains("#EXT-X-ENDLIST"))
}

/// A kept file. A playlist names the viewer's token in its URLs: not to be kept by others.
fn cached(hit: Cached, playlist: bool) -> Response {
    let control = match playlist {
        true => "private, no-cache",
        false => "max-age=86400, immutable",
    };
    let headers = [
        (header::CONTENT_TYPE, hit.kind),
        (header::CACHE_CONTROL, HeaderValue::from_static(control)),
    ];
    (headers, hit.body).into_response()
}

/// Part of a kept file, for a viewer's `Range` (one range: 206; several, or one that does not
/// parse: the whole file, as RFC 9110 allows; one past the end: 416).
fn cached_range(hit: Cached, range: &HeaderValue) -> Response {
    let len = hit.body.len() as u64;
    let parsed = http_range_header::parse_range_header(range.to_str().unwrap_or_default())
        .map(|r| r.validate(len));
    let one = match parsed {
        Ok(Ok(ranges)) if ranges.len() == 1 => ranges[0].clone(),
        Ok(Err(_)) => {
            let headers = [(header::CONTENT_RANGE, format!("bytes */{len}"))];
            return (StatusCode::RANGE_NOT_SATISFIABLE, headers).into_response();
        }
        _ => return cached(hit, false),
    };
    let (start, end) = (*one.start(), *one.end());
    let headers = [
        (header::CONTENT_TYPE, hit.kind),
        (header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400, immutable")),
        (
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
                .unwrap_or(HeaderValue::from_static("bytes */0")),
        ),
    ];
    let body = hit.body.slice(start as usize..end as usize + 1);
    (StatusCode::PARTIAL_CONTENT, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_playlist_loses_the_origins_tokens_and_gets_the_viewers() {
        let origin = "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4?token=EDGE\"\n#EXTINF:2,\nseg-1.m4s?token=EDGE\n#EXT-X-ENDLIST\n";
        let text = super::super::vod::carry_token(&strip_queries(origin), "?token=VIEWER");
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-MAP:URI=\"init-1.mp4?token=VIEWER\"\n#EXTINF:2,\nseg-1.m4s?token=VIEWER\n#EXT-X-ENDLIST\n"
        );
        assert!(ended(text.as_bytes()));
        assert_eq!(strip_queries("#EXTM3U\nseg-2.m4s\n"), "#EXTM3U\nseg-2.m4s\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_file_goes_stale_after_its_time() {
        let kept = Cached::new(HeaderValue::from_static("video/mp4"), Bytes::new());
        tokio::time::advance(KEPT_FOR - Duration::from_secs(1)).await;
        assert!(kept.fresh());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!kept.fresh(), "asked of an origin again");
    }

    #[tokio::test]
    async fn a_kept_file_answers_a_range_from_memory() {
        let hit =
            Cached::new(HeaderValue::from_static("video/mp4"), Bytes::from_static(b"0123456789"));
        let range = |r: &'static str| cached_range(hit.clone(), &HeaderValue::from_static(r));
        let body = |r: Response| async { axum::body::to_bytes(r.into_body(), 100).await.unwrap() };
        let part = range("bytes=2-5");
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.headers()[header::CONTENT_RANGE], "bytes 2-5/10");
        assert_eq!(body(part).await, &b"2345"[..]);
        assert_eq!(body(range("bytes=-3")).await, &b"789"[..]);
        assert_eq!(body(range("bytes=7-")).await, &b"789"[..]);
        let several = range("bytes=0-1,4-5");
        assert_eq!(several.status(), StatusCode::OK);
        assert_eq!(body(several).await, &b"0123456789"[..]);
        assert_eq!(range("bytes=20-30").status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(range("items=1-2").status(), StatusCode::OK, "another unit: the whole");
    }
}
