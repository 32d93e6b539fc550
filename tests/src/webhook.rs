//! A real webhook endpoint (Python's http.server, over TLS when given a certificate) that
//! records every call and answers by a fixed rule, for the publish and play webhook tests.
//!
//! The rule: `on_publish` admits names starting with `ok`; `on_play` admits a query with
//! `ticket=good`; either waits 5 s first when the name starts with `slow` or the query has
//! `ticket=slow`; refusals answer 403 with a body (`no such broadcaster`, `no ticket`); notices
//! (`on_unpublish`, `on_play_done`) get 200.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sluice_launch::ChildGuard;

use crate::origin::TestDir;

const HOOK: &str = r#"
import http.server, json, ssl, sys, time
calls = sys.argv[1]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(calls, "a") as f:
            f.write(json.dumps(body) + "\n")
        event, name, query = body["event"], body["name"], body["query"]
        if name.startswith("slow") or "ticket=slow" in query:
            time.sleep(5)
        if event == "on_publish":
            ok, why = name.startswith("ok"), b"no such broadcaster"
        elif event == "on_play":
            ok, why = "ticket=good" in query, b"no ticket"
        else:
            ok, why = True, b""
        self.send_response(200 if ok else 403)
        self.end_headers()
        self.wfile.write(b"" if ok else why)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
if len(sys.argv) > 3:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(sys.argv[2], sys.argv[3])
    server.socket = tls.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A running webhook endpoint; stopped on drop.
pub struct HookServer {
    /// What to give `--webhook-url`.
    pub url: String,
    calls: PathBuf,
    _dir: TestDir,
    _child: ChildGuard,
}

impl HookServer {
    /// Over plain HTTP.
    pub fn start() -> HookServer {
        Self::launch(None)
    }

    /// Over HTTPS with `cert` and `key` (PEM), at `https://localhost:PORT/hook`.
    pub fn start_tls(cert: &Path, key: &Path) -> HookServer {
        Self::launch(Some((cert, key)))
    }

    fn launch(tls: Option<(&Path, &Path)>) -> HookServer {
        let dir = TestDir::new("webhook");
        let calls = dir.path().join("calls.jsonl");
        let mut cmd = Command::new("python3");
        cmd.args(["-c", HOOK]).arg(&calls);
        if let Some((cert, key)) = tls {
            cmd.arg(cert).arg(key);
        }
        let mut child =
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("python3");
        let mut port = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut port)
            .expect("the hook's port");
        let (scheme, host) =
            if tls.is_some() { ("https", "localhost") } else { ("http", "127.0.0.1") };
        HookServer {
            url: format!("{scheme}://{host}:{}/hook", port.trim()),
            calls,
            _dir: dir,
            _child: ChildGuard::new("webhook server", child),
        }
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.calls)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON call"))
            .collect()
    }

    /// The calls of `event` for stream `name`.
    pub fn calls_of(&self, event: &str, name: &str) -> Vec<serde_json::Value> {
        self.calls().into_iter().filter(|c| c["event"] == event && c["name"] == name).collect()
    }
}
