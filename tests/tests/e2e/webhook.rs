//! The publish webhook against a real HTTP server (Python's http.server) and real ffmpeg
//! encoders: a 2xx answer admits the encoder, a refusal reaches it with the webhook's reason,
//! a webhook that does not answer in time refuses (fail-closed) or admits (`--webhook-fail-open`),
//! and the webhook hears `on_unpublish` when the publish ends.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use sluice_launch::ChildGuard;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_small, secs, Origin, Publisher};

/// Admits names starting with `ok`, answers `slow` names after 5 s, refuses the rest with a
/// reason; appends every call's JSON to the file named by argv[1]; prints its port.
const HOOK: &str = r#"
import http.server, json, sys, time
calls = sys.argv[1]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open(calls, "a") as f:
            f.write(json.dumps(body) + "\n")
        if body["name"].startswith("slow"):
            time.sleep(5)
        ok = body["name"].startswith("ok") or body["event"] != "on_publish"
        self.send_response(200 if ok else 403)
        self.end_headers()
        self.wfile.write(b"" if ok else b"no such broadcaster")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

fn refused(url: &str, why: &str) {
    sluice_tests::ffmpeg::expect_refused(url, &h264_small().path, why);
}

fn calls(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON call"))
        .collect()
}

#[test]
fn the_publish_webhook_admits_refuses_and_hears_the_end() {
    let dir = TestDir::new("webhook");
    let log = dir.path().join("calls.jsonl");
    let mut child = Command::new("python3")
        .args(["-c", HOOK, log.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).expect("the hook's port");
    let _hook = ChildGuard::new("webhook server", child);
    let hook_url = format!("http://127.0.0.1:{}/hook", port.trim());
    let origin = Origin::start(&["--webhook-url", &hook_url, "--webhook-timeout", "1s"]);
    let url = |path: &str| format!("rtmp://{}/{path}", origin.rtmp);

    let mut ok = Publisher::start(&url("live/ok-cam?token=abc"), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("live", "ok-cam"))
        .unwrap_or_else(|| panic!("the admitted encoder never went live: {:?}", ok.stderr()));
    let first = &calls(&log)[0];
    assert_eq!(first["event"], "on_publish", "{first}");
    assert_eq!((first["app"].as_str(), first["name"].as_str()), (Some("live"), Some("ok-cam")));
    assert_eq!(first["query"], "token=abc", "the webhook sees the encoder's query");
    assert_eq!(first["client_ip"], "127.0.0.1");

    refused(&url("live/bad-cam"), "no such broadcaster");
    refused(&url("live/slow-cam"), "did not answer");
    assert!(origin.stream_info("live", "bad-cam").is_none());
    assert!(origin.stream_info("live", "slow-cam").is_none());
    assert_eq!(origin.metrics().value("sluice_publishes_unauthorized_total", &[]), 2.0);

    let _ = ok.stop();
    let ended = wait_for(secs(10), || {
        calls(&log).into_iter().find(|c| c["event"] == "on_unpublish" && c["name"] == "ok-cam")
    });
    assert!(ended.is_some(), "no on_unpublish: {:?}", calls(&log));
}

#[test]
fn a_webhook_that_does_not_answer_admits_publishers_when_fail_open() {
    // Nothing listens there: the call fails at once.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let closed = Origin::start(&["--webhook-url", &hook_url]);
    refused(&format!("rtmp://{}/live/cam", closed.rtmp), "did not answer");
    let open = Origin::start(&["--webhook-url", &hook_url, "--webhook-fail-open"]);
    let mut publisher =
        Publisher::start(&format!("rtmp://{}/live/cam", open.rtmp), &h264_small().path);
    wait_for(secs(20), || open.stream_info("live", "cam"))
        .unwrap_or_else(|| panic!("fail-open did not admit: {:?}", publisher.stderr()));
    let _ = publisher.stop();
}
