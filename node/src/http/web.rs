//! The web page: `GET /` (stream list and player) and `GET /assets/FILE` (its script, its style
//! sheet and the two player libraries, hls.js and mpegts.js).
//!
//! Everything is read from the `--web-dir` directory (default `web`): the page's own files
//! (`index.html`, `app.js`, `style.css`) and the libraries that `npm ci --prefix web` installs
//! into `node_modules/`. Only the fixed set of files in [`FILES`] is ever served, looked up by
//! exact name, so no request path reaches the file system. Files are read at request time (so
//! an `npm ci` while the node runs takes effect at once), refusing any larger than
//! [`MAX_FILE_SIZE`].
//!
//! When the libraries are missing the page still loads and says so (its script checks for
//! them); the node logs a warning when it builds its routes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Path as UrlPath;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tracing::{info, warn};

use crate::log_limit::RateLimitedLog;

/// Largest web file served (hls.min.js is about 0.5 MiB).
pub const MAX_FILE_SIZE: u64 = 8 << 20;

/// What to tell someone whose player libraries are missing.
pub const INSTALL_HINT: &str = "player libraries not installed: run `npm ci --prefix web`";

/// One servable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebFile {
    /// Name under `/assets/` (`index.html` is served at `/`).
    pub name: &'static str,
    /// Path relative to the web directory.
    pub path: &'static str,
    pub content_type: &'static str,
    /// An npm-installed player library (missing until `npm ci`).
    pub library: bool,
}

/// Warnings about web files a request made us read (any client can repeat the request).
static FILE_ERRORS: RateLimitedLog = RateLimitedLog::new(5);

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the node serves from the web directory.
pub const FILES: &[WebFile] = &[
    WebFile {
        name: "index.html",
        path: "index.html",
        content_type: "text/html; charset=utf-8",
        library: false,
    },
    WebFile { name: "app.js", path: "app.js", content_type: JS, library: false },
    WebFile {
        name: "style.css",
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        library: false,
    },
    WebFile {
        name: "hls.min.js",
        path: "node_modules/hls.js/dist/hls.min.js",
        content_type: JS,
        library: true,
    },
    WebFile {
        name: "mpegts.js",
        path: "node_modules/mpegts.js/dist/mpegts.js",
        content_type: JS,
        library: true,
    },
    WebFile {
        name: "dash.all.min.js",
        path: "node_modules/dashjs/dist/modern/umd/dash.all.min.js",
        content_type: JS,
        library: true,
    },
];

/// The web directory and what is served from it.
#[derive(Debug)]
pub struct WebFiles {
    dir: PathBuf,
}

impl WebFiles {
    /// Serve from `dir`; logs which files are missing (a warning for the player libraries).
    pub fn new(dir: &Path) -> WebFiles {
        let web = WebFiles { dir: dir.to_path_buf() };
        let missing: Vec<&str> =
            FILES.iter().filter(|f| !web.full_path(f).is_file()).map(|f| f.path).collect();
        let libraries_missing = FILES.iter().any(|f| f.library && missing.contains(&f.path));
        if libraries_missing {
            warn!(web_dir = %dir.display(), ?missing, "web page: {INSTALL_HINT}");
        } else if !missing.is_empty() {
            warn!(web_dir = %dir.display(), ?missing, "web page files missing (see --web-dir)");
        } else {
            info!(web_dir = %dir.display(), "serving the web page at /");
        }
        web
    }

    /// The file named `name` under `/assets/`, if it is one of [`FILES`].
    pub fn lookup(name: &str) -> Option<&'static WebFile> {
        FILES.iter().find(|f| f.name == name)
    }

    fn full_path(&self, file: &WebFile) -> PathBuf {
        self.dir.join(file.path)
    }

    /// Read and answer `file`.
    pub async fn serve(&self, file: &WebFile) -> Response {
        let path = self.full_path(file);
        match read_bounded(&path).await {
            Ok(body) => (
                [
                    (header::CONTENT_TYPE, HeaderValue::from_static(file.content_type)),
                    (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
                    (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
                ],
                body,
            )
                .into_response(),
            Err(ReadError::Missing) if file.name == "index.html" => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, file.content_type)],
                missing_page(&self.dir),
            )
                .into_response(),
            Err(ReadError::Missing) if file.library => {
                (StatusCode::NOT_FOUND, format!("{INSTALL_HINT}\n")).into_response()
            }
            Err(ReadError::Missing) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
            Err(ReadError::TooLarge) if FILE_ERRORS.allow() => {
                warn!(path = %path.display(), "web file larger than {MAX_FILE_SIZE} bytes: not served");
                (StatusCode::INTERNAL_SERVER_ERROR, "file too large\n").into_response()
            }
            Err(ReadError::Io(e)) if FILE_ERRORS.allow() => {
                warn!(path = %path.display(), error = %e, "reading web file");
                (StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n").into_response()
            }
            Err(ReadError::TooLarge | ReadError::Io(_)) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n").into_response()
            }
        }
    }
}

/// `GET /` and `GET /assets/{file}`, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>(web: Arc<WebFiles>) -> Router<S> {
    let index = web.clone();
    Router::new()
        .route(
            "/",
            get(move || async move {
                match WebFiles::lookup("index.html") {
                    Some(file) => index.serve(file).await,
                    None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
                }
            }),
        )
        .route(
            "/assets/{file}",
            get(move |UrlPath(name): UrlPath<String>| async move {
                match WebFiles::lookup(&name).filter(|f| f.name != "index.html") {
                    Some(file) => web.serve(file).await,
                    None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
                }
            }),
        )
}

#[derive(Debug)]
enum ReadError {
    Missing,
    TooLarge,
    Io(std::io::Error),
}

async fn read_bounded(path: &Path) -> Result<Vec<u8>, ReadError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Io(e),
    };
    let meta = tokio::fs::metadata(path).await.map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::Missing);
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(ReadError::TooLarge);
    }
    let body = tokio::fs::read(path).await.map_err(io)?;
    // The file may have grown between the two calls.
    if body.len() as u64 > MAX_FILE_SIZE {
        return Err(ReadError::TooLarge);
    }
    Ok(body)
}

/// A minimal page for a node whose `--web-dir` has no `index.html`.
fn missing_page(dir: &Path) -> String {
    let dir = html_escape(&dir.display().to_string());
    format!(
        "<!doctype html><meta charset=\"utf-8\"><title>Sluice</title>\
         <h1>Sluice</h1><p>The web page is not installed: no <code>index.html</code> in <code>{dir}</code> \
         (set <code>--web-dir</code> or <code>SLUICE_WEB_DIR</code>). The JSON list of live streams is at \
         <a href=\"/api/streams\">/api/streams</a>.</p>\n"
    )
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn temp_dir(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sluice-web-test-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Serve `router` on a free port; returns its address.
    async fn serve(router: Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    /// A raw HTTP/1.1 GET: status, content type, body.
    async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Option<String>, String) {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        socket.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let ct = head.lines().find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_string)
        });
        (status, ct, body.to_string())
    }

    #[tokio::test]
    async fn serves_fixed_files_with_types_and_nothing_else() {
        let dir = temp_dir("files");
        std::fs::write(dir.join("index.html"), "<p>page</p>").unwrap();
        std::fs::write(dir.join("app.js"), "let a = 1;").unwrap();
        std::fs::write(dir.join("secret.txt"), "secret").unwrap();
        std::fs::create_dir_all(dir.join("node_modules/hls.js/dist")).unwrap();
        std::fs::write(dir.join("node_modules/hls.js/dist/hls.min.js"), "var Hls;").unwrap();
        let router = serve(routes(Arc::new(WebFiles::new(&dir)))).await;

        let (status, ct, body) = get(router, "/").await;
        assert_eq!(
            (status, ct.as_deref(), body.as_str()),
            (200, Some("text/html; charset=utf-8"), "<p>page</p>")
        );
        let (status, ct, body) = get(router, "/assets/app.js").await;
        assert_eq!((status, ct.as_deref(), body.as_str()), (200, Some(JS), "let a = 1;"));
        let (status, _, body) = get(router, "/assets/hls.min.js").await;
        assert_eq!((status, body.as_str()), (200, "var Hls;"));
        // Missing library: 404 with the install hint.
        let (status, _, body) = get(router, "/assets/mpegts.js").await;
        assert_eq!(status, 404);
        assert!(body.contains("npm ci --prefix web"), "{body}");
        // Nothing outside the fixed set, however spelled.
        for path in [
            "/assets/secret.txt",
            "/assets/index.html",
            "/assets/..%2Fsecret.txt",
            "/assets/%2E%2E%2Fsecret.txt",
            "/assets/node_modules%2Fhls.js%2Fdist%2Fhls.min.js",
        ] {
            let (status, _, body) = get(router, path).await;
            assert_eq!(status, 404, "{path}");
            assert!(!body.contains("secret"), "{path}: {body}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn missing_index_still_answers_a_page() {
        let dir = temp_dir("missing");
        let router = serve(routes(Arc::new(WebFiles::new(&dir.join("nope<x>"))))).await;
        let (status, ct, body) = get(router, "/").await;
        assert_eq!(status, 200);
        assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"));
        assert!(body.contains("not installed") && body.contains("nope&lt;x&gt;"), "{body}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn oversized_file_refused() {
        let dir = temp_dir("large");
        let file = std::fs::File::create(dir.join("style.css")).unwrap();
        file.set_len(MAX_FILE_SIZE + 1).unwrap();
        let router = serve(routes(Arc::new(WebFiles::new(&dir)))).await;
        let (status, _, _) = get(router, "/assets/style.css").await;
        assert_eq!(status, 500);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
