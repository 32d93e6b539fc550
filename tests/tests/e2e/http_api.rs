//! The HTTP side: health endpoints, /api/streams schema, /metrics, HTTP-FLV headers and 404s.

use std::io::Read;
use std::time::Instant;

use sluice_tests::http;
use sluice_tests::process::wait_for;
use sluice_tests::wait::{wait_players_subscribed, LOG_PLAYS};
use sluice_tests::{h264_aac, secs, Origin, Publisher};

#[test]
fn health_api_metrics_and_flv_headers() {
    let origin = Origin::start(&["--play-wait-timeout", "1s"]);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(origin.get(path).status, 200, "{path}");
    }
    let empty = origin.streams();
    assert_eq!(empty["streams"].as_array().map(Vec::len), Some(0), "{empty}");

    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "api"), &h264_aac().path);
    let info =
        wait_for(secs(10), || origin.stream_info("live", "api").filter(|s| !s["audio"].is_null()))
            .unwrap_or_else(|| panic!("live/api not listed: {}", origin.streams()));
    for key in ["bitrate_kbps", "viewers", "uptime_s"] {
        assert!(info[key].is_number(), "{key} missing or not a number: {info}");
    }
    assert!(info["video"]["profile"].is_string(), "video.profile: {info}");
    assert_eq!(info["video"]["profile"], "High", "{info}");
    assert_eq!(info["viewers"], 0, "{info}");

    // HTTP-FLV: 200, FLV content type, CORS, and the body is an FLV stream.
    let mut flv = http::open(origin.http, "GET", "/live/api.flv", secs(10)).unwrap();
    assert_eq!(flv.status, 200);
    assert_eq!(flv.header("access-control-allow-origin"), Some("*"), "headers: {:?}", flv.headers);
    assert_eq!(flv.header("content-type"), Some("video/x-flv"), "headers: {:?}", flv.headers);
    let mut head = [0u8; 13];
    flv.read_exact(&mut head).unwrap();
    assert_eq!(&head[..3], b"FLV", "body starts with {head:?}");
    let mut more = vec![0u8; 200_000];
    flv.read_exact(&mut more).expect("media keeps flowing");
    let viewers =
        wait_for(secs(5), || origin.stream_info("live", "api").filter(|s| s["viewers"] == 1));
    assert!(viewers.is_some(), "viewer not counted: {}", origin.streams());
    let flv_viewers = origin.metrics().value("sluice_viewers", &[("protocol", "flv")]);
    assert_eq!(flv_viewers, 1.0, "sluice_viewers{{protocol=flv}}");
    drop(flv);

    // /metrics parses and has every documented family.
    let resp = origin.get("/metrics");
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain") || t.contains("openmetrics")),
        "{:?}",
        resp.headers
    );
    let m = origin.metrics();
    for name in [
        "sluice_connections",
        "sluice_streams",
        "sluice_viewers",
        "sluice_bytes_in_total",
        "sluice_bytes_out_total",
        "sluice_skipped_frames_total",
    ] {
        assert!(m.has(name), "/metrics lacks {name}:\n{}", resp.text());
    }
    assert_eq!(m.value("sluice_streams", &[]), 1.0);
    assert!(m.value("sluice_bytes_in_total", &[]) > 100_000.0);
    assert!(m.value("sluice_bytes_out_total", &[("protocol", "flv")]) >= 200_000.0);
    assert!(m.types.get("sluice_connections").is_some_and(|t| t == "gauge"), "{:?}", m.types);

    // Unknown stream: 404 once the play wait (1 s) passes (not before: a publisher starting
    // meanwhile would have been missed), and no longer than a few seconds after it.
    let start = Instant::now();
    let missing = http::get(origin.http, "/live/nobody.flv", secs(10)).unwrap();
    let waited = start.elapsed();
    assert_eq!(missing.status, 404, "body: {}", missing.text());
    assert!(waited >= secs(1), "404 after {waited:?}, before the 1 s play wait");
    assert!(waited < secs(5), "404 took {waited:?}");
    assert_eq!(origin.get("/no/such/route").status, 404);
    let bad = http::get(origin.http, "/live/bad*name.flv", secs(10)).unwrap();
    assert!(bad.status == 400 || bad.status == 404, "invalid stream name: {}", bad.status);
}

#[test]
fn flv_player_waiting_for_a_stream_starts_when_it_is_published() {
    let origin = Origin::start(&[&["--play-wait-timeout", "10s"][..], &LOG_PLAYS].concat());
    let addr = origin.http;
    let waiter = std::thread::spawn(move || {
        let mut s = http::open(addr, "GET", "/live/later.flv", secs(15)).unwrap();
        let status = s.status;
        let mut buf = vec![0u8; 100_000];
        let read = s.read_exact(&mut buf).map(|_| buf.len());
        (status, read.map_err(|e| e.to_string()))
    });
    // The viewer must be waiting before the stream is published.
    wait_players_subscribed(&origin, "live/later", 0, 1, secs(10));
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "later"), &h264_aac().path);
    let (status, read) = waiter.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(read, Ok(100_000), "waiting FLV viewer got no media");
}

/// Every documented series is exposed from the start (at 0), so dashboards and `rate()` see
/// zeros rather than missing data.
#[test]
fn metrics_expose_every_documented_series_on_a_fresh_server() {
    let origin = Origin::start(&[]);
    let m = origin.metrics();
    let mut missing = Vec::new();
    let mut check = |name: &'static str, labels: &[(&'static str, &'static str)]| {
        if m.get(name, labels).is_none() {
            missing.push(format!("{name}{labels:?}"));
        }
    };
    check("sluice_connections", &[]);
    check("sluice_streams", &[]);
    check("sluice_bytes_in_total", &[]);
    check("sluice_skipped_frames_total", &[]);
    for protocol in ["rtmp", "flv"] {
        check("sluice_viewers", &[("protocol", protocol)]);
        check("sluice_bytes_out_total", &[("protocol", protocol)]);
    }
    for kind in ["handshake", "chunk", "amf", "protocol", "timeout", "limit"] {
        check("sluice_connection_errors_total", &[("kind", kind)]);
    }
    assert!(missing.is_empty(), "series missing from a fresh server's /metrics: {missing:?}");
}

/// SIGTERM drains: the origin exits by itself, successfully, within its drain timeout, even
/// with a publisher and a player connected.
#[test]
fn sigterm_drains_and_exits() {
    let mut origin = Origin::start(&["--drain-timeout", "2s"]);
    let url = origin.rtmp_url("live", "drain");
    let _publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(10), || origin.stream_info("live", "drain")).expect("stream is live");
    let mut player = sluice_tests::Player::start(&url);
    assert!(player.wait_frames(10, secs(15)) >= 10, "player started");
    let start = Instant::now();
    let status = origin.terminate();
    let took = start.elapsed();
    let status = status.unwrap_or_else(|| panic!("origin still running {took:?} after SIGTERM"));
    assert!(status.success(), "origin exit status after SIGTERM: {status:?}");
    assert!(took < secs(5), "drain took {took:?} with --drain-timeout 2s");
    assert!(std::net::TcpStream::connect(origin.rtmp).is_err(), "RTMP port still accepting");
}

/// `/api/*` and `/metrics` behind `--token-file` (loopback is not in `--admin-allow` here):
/// refused without the token or with a wrong one, answered with it; health and the page stay
/// open. From an allowed range they answer without it.
#[test]
fn admin_endpoints_need_the_token_or_an_allowed_address() {
    let dir = sluice_tests::origin::TestDir::new("admin-token");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "an-admin-token\n").unwrap();
    let token = token_file.to_str().unwrap();
    let guarded = Origin::start(&["--token-file", token, "--admin-allow", "10.0.0.0/8"]);
    let base = format!("http://{}", guarded.http);
    let status = |path: &str, args: &[&str]| http::curl_status(&format!("{base}{path}"), args);
    for path in ["/metrics", "/api/streams"] {
        assert_eq!(status(path, &[]), "401", "{path} without the token");
        assert_eq!(status(path, &["-H", "Authorization: Bearer wrong"]), "401", "{path}");
        assert_eq!(status(path, &["-H", "Authorization: Bearer an-admin-token"]), "200", "{path}");
    }
    assert_eq!(status("/healthz", &[]), "200");
    assert_eq!(status("/readyz", &[]), "200");
    assert_eq!(status("/", &[]), "200");
    // The token never shows in the log.
    assert!(!guarded.log().contains("an-admin-token"));
    // Loopback allowed: no token needed.
    let allowed = Origin::start(&["--token-file", token, "--admin-allow", "127.0.0.0/8,::1/128"]);
    let url = format!("http://{}/metrics", allowed.http);
    assert_eq!(http::curl_status(&url, &[]), "200");
    // A missing token file stops the node with one clear line.
    let out = std::process::Command::new(sluice_tests::paths::binary("sluice-origin"))
        .args(["--token-file", "/nonexistent/token"])
        .args(["--rtmp-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run sluice-origin");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("reading --token-file /nonexistent/token"), "{stderr}");
}
