//! The cluster page: `GET /` and `GET /cluster` (the page), `GET /assets/FILE` (its script and
//! style sheet, and the chart library uPlot with its style sheet).
//!
//! Everything is compiled into the binary: the page's own files from `web/cluster.*`, and uPlot
//! (pinned in `web/package.json`, installed by `npm ci --prefix web`) copied by `build.rs`. The
//! control plane reads no file and loads nothing from elsewhere at run time. Only the fixed set
//! in [`ASSETS`] is served, by exact name.
//!
//! The page draws stream names and node ids that come from etcd: it builds DOM nodes with
//! `textContent` only, and the Content-Security-Policy below allows no inline script, so even a
//! value that slipped through as markup could not run.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Name under `/assets/`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The page itself.
pub const PAGE: &[u8] = include_bytes!("../../web/cluster.html");

/// Every file served under `/assets/`.
pub const ASSETS: &[Asset] = &[
    Asset { name: "cluster.js", content_type: JS, body: include_bytes!("../../web/cluster.js") },
    Asset { name: "cluster.css", content_type: CSS, body: include_bytes!("../../web/cluster.css") },
    Asset {
        name: "uplot.js",
        content_type: JS,
        body: include_bytes!(concat!(env!("OUT_DIR"), "/uplot.js")),
    },
    Asset {
        name: "uplot.css",
        content_type: CSS,
        body: include_bytes!(concat!(env!("OUT_DIR"), "/uplot.css")),
    },
];

/// Scripts and styles from this origin only; fetches to this origin only; no framing.
/// (uPlot sizes its elements through `element.style`, which a CSP does not restrict.)
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The asset named `name`, if it is one of [`ASSETS`].
pub fn lookup(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        PAGE,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match lookup(&name) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static(a.content_type)),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// `GET /`, `GET /cluster` and `GET /assets/{file}`, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { page() }))
        .route("/cluster", get(|| async { page() }))
        .route("/assets/{file}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_a_fixed_set() {
        for name in ["cluster.js", "cluster.css", "uplot.js", "uplot.css"] {
            let a = lookup(name).unwrap_or_else(|| panic!("{name}"));
            assert!(!a.body.is_empty() || name == "uplot.css", "{name} is empty");
        }
        for name in ["../cluster.html", "cluster.html", "", "uPlot.iife.min.js"] {
            assert!(lookup(name).is_none(), "{name}");
        }
    }

    #[test]
    fn the_page_loads_its_script_and_the_chart_library_from_this_origin() {
        let page = std::str::from_utf8(PAGE).unwrap();
        for src in ["/assets/uplot.js", "/assets/cluster.js", "/assets/uplot.css"] {
            assert!(page.contains(src), "{src}");
        }
        // No inline script: the CSP would refuse it.
        assert!(!page.contains("<script>"), "inline script in the page");
        assert!(!page.contains("http://") && !page.contains("https://"), "off-site URL");
    }

    #[test]
    fn the_script_never_writes_markup() {
        let script = std::str::from_utf8(lookup("cluster.js").unwrap().body).unwrap();
        for sink in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            assert!(!script.contains(sink), "cluster.js uses {sink}");
        }
    }
}
