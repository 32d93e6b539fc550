//! Play authorisation with real ffmpeg players: the streams of a private app play only from a
//! signed URL (`sluice-origin play-token`), over RTMP, HTTP-FLV and LL-HLS, on an origin and
//! on an edge; a missing, forged, expired or other stream's token is refused and the player is
//! told why; an HLS session opened on a public stream never opens a private one; public apps
//! play as before; refusals are counted per protocol.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use sluice_cluster::signed_token::{sign, Purpose};
use sluice_media::stream_name::StreamKey;
use sluice_tests::cluster::TestCluster;
use sluice_tests::origin::TestDir;
use sluice_tests::paths::binary;
use sluice_tests::process::wait_for;
use sluice_tests::{control_plane, h264_small, http, secs, Origin, Player, Publisher};

const SECRET: &str = "a-play-secret-long-enough";

/// The play URLs `sluice-origin play-token` prints for `stream`, with `host` put in.
fn signed_urls(
    secret_file: &std::path::Path,
    stream: &str,
    host_rtmp: &str,
    host_http: &str,
) -> Vec<String> {
    let out = Command::new(binary("sluice-origin"))
        .args([
            "play-token",
            stream,
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--ttl",
            "10m",
        ])
        .output()
        .expect("run sluice-origin play-token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let urls: Vec<String> = text
        .lines()
        .map(|l| l.replacen("rtmp://HOST", &format!("rtmp://{host_rtmp}"), 1))
        .map(|l| l.replacen("http://HOST", &format!("http://{host_http}"), 1))
        .collect();
    assert_eq!(urls.len(), 3, "RTMP, HTTP-FLV and HLS URLs: {text}");
    urls
}

/// A token signed with `secret` for `stream`, expiring `from_now_s` seconds from now.
fn token(secret: &str, stream: &str, from_now_s: i64) -> String {
    let (app, name) = stream.split_once('/').unwrap();
    let key = StreamKey::parse(app, name).unwrap().0;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    sign(secret.as_bytes(), Purpose::Play, &key, (now + from_now_s) as u64)
}

fn plays(url: &str) {
    let mut p = Player::start(url);
    let frames = p.wait_frames(30, secs(30));
    assert!(frames >= 30, "{url} decoded {frames} frames: {:?}", p.errors());
    let result = p.stop();
    assert!(result.errors.is_empty(), "{url}: {:?}", result.errors);
}

/// ffmpeg cannot play `url`: it ends with an error that contains `why`.
fn refused(url: &str, why: &str) {
    let result = Player::start(url).finish(secs(20), secs(20));
    assert_eq!(result.frames, 0, "{url} played");
    let said = result.errors.join("\n");
    assert!(said.contains(why), "{url}: ffmpeg did not say '{why}':\n{said}");
}

fn setup_files(dir: &TestDir) -> std::path::PathBuf {
    let secret_file = dir.path().join("play-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    secret_file
}

fn flags(secret_file: &std::path::Path) -> Vec<String> {
    ["--play-token-secret-file", secret_file.to_str().unwrap(), "--play-private-apps", "vip"]
        .map(String::from)
        .into()
}

#[test]
fn private_streams_play_only_from_signed_urls_over_rtmp_http_flv_and_hls() {
    let dir = TestDir::new("play-auth");
    let secret_file = setup_files(&dir);
    let args = flags(&secret_file);
    let origin = Origin::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut vip = Publisher::start_looped(&origin.rtmp_url("vip", "show"), &h264_small().path);
    let mut open = Publisher::start_looped(&origin.rtmp_url("live", "open"), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("vip", "show")).expect("vip/show is live");
    wait_for(secs(20), || origin.stream_info("live", "open")).expect("live/open is live");
    let (rtmp, http_addr) = (origin.rtmp.to_string(), origin.http.to_string());

    // Signed URLs from the helper play over every protocol.
    for url in signed_urls(&secret_file, "vip/show", &rtmp, &http_addr) {
        plays(&url);
    }
    // A public app needs nothing.
    plays(&origin.rtmp_url("live", "open"));
    plays(&format!("http://{http_addr}/live/open.m3u8"));

    // Refused, and told why: RTMP says it, HTTP answers 403 with the reason.
    let rtmp_url = |q: &str| format!("rtmp://{rtmp}/vip/show{q}");
    refused(&rtmp_url(""), "is private: play it from a signed URL");
    refused(&rtmp_url(&format!("?token={}", token(SECRET, "vip/show", -60))), "has expired");
    refused(
        &rtmp_url(&format!("?token={}", token("another-secret-16b+", "vip/show", 600))),
        "invalid play token",
    );
    refused(
        &rtmp_url(&format!("?token={}", token(SECRET, "vip/other", 600))),
        "invalid play token",
    );
    let publish = {
        let key = StreamKey::parse("vip", "show").unwrap().0;
        sign(SECRET.as_bytes(), Purpose::Publish, &key, u64::MAX / 2)
    };
    refused(&rtmp_url(&format!("?token={publish}")), "invalid play token");
    for path in ["/vip/show.flv", "/vip/show.m3u8", "/vip/show/index.m3u8", "/vip/show/init.mp4"] {
        let r = http::get(origin.http, path, secs(5)).expect("answer");
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("is private"), "{path}: {}", r.text());
        let expired = format!("{path}?token={}", token(SECRET, "vip/show", -1));
        let r = http::get(origin.http, &expired, secs(5)).expect("answer");
        assert_eq!((r.status, r.text().contains("expired")), (403, true), "{expired}");
    }
    refused(&format!("http://{http_addr}/vip/show.flv"), "403");

    // An HLS session opened on the public stream does not open the private one.
    let multivariant = http::get(origin.http, "/live/open.m3u8", secs(10)).expect("playlist");
    let sid = multivariant
        .text()
        .split("sid=")
        .nth(1)
        .map(|s| s.chars().take_while(char::is_ascii_hexdigit).collect::<String>())
        .expect("a session id in the public playlist");
    let r = http::get(origin.http, &format!("/vip/show/index.m3u8?sid={sid}"), secs(5)).unwrap();
    assert_eq!(r.status, 403, "a public stream's session opened the private one");

    // Counted per protocol.
    let m = origin.metrics();
    for protocol in ["rtmp", "flv", "hls"] {
        let n = m.value("sluice_plays_unauthorized_total", &[("protocol", protocol)]);
        assert!(n >= 1.0, "sluice_plays_unauthorized_total{{protocol={protocol}}} = {n}");
    }
    // No token reaches the log.
    let t = token(SECRET, "vip/show", 600);
    assert!(!origin.log().contains(&t[t.len() - 16..]), "a token in the log");
    let _ = (vip.stop(), open.stop());
}

#[test]
fn an_edge_checks_play_tokens_too_and_a_node_without_the_secret_does_not_start() {
    let dir = TestDir::new("play-auth-edge");
    let secret_file = setup_files(&dir);
    let args = flags(&secret_file);
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = TestCluster::new("pa", &["pa-o", "pa-e"]);
    let origin = c.origin("pa-o", &extra);
    let edge = c.edge("pa-e", &extra);
    let mut vip = Publisher::start_looped(&origin.rtmp_url("vip", "show"), &h264_small().path);
    wait_for(secs(20), || edge.stream_info("vip", "show")).expect("the edge lists vip/show");
    let urls =
        signed_urls(&secret_file, "vip/show", &edge.rtmp.to_string(), &edge.http.to_string());
    plays(&urls[0]);
    plays(&urls[2]);
    refused(&edge.rtmp_url("vip", "show"), "is private");
    let r = http::get(edge.http, "/vip/show.m3u8", secs(5)).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());

    // The control plane, with the same secret, hands out signed URLs for the private app
    // only; a player that follows it plays (the HLS one through the 302).
    let cp = control_plane::start(&c, "pa", &extra);
    let choice = wait_for(secs(20), || {
        let r = http::get(cp.http, "/play/vip/show.json?protocol=rtmp", secs(5)).ok()?;
        serde_json::from_slice::<serde_json::Value>(&r.body).ok()?["url"].as_str().map(String::from)
    })
    .expect("an assignment");
    assert!(choice.contains("?token="), "a signed URL: {choice}");
    plays(&choice);
    plays(&format!("http://{}/play/vip/show.m3u8", cp.http));
    let _open = Publisher::start_looped(&origin.rtmp_url("live", "open"), &h264_small().path);
    let public = wait_for(secs(20), || {
        let r = http::get(cp.http, "/play/live/open.json", secs(5)).ok()?;
        (r.status == 200).then(|| r.text())
    })
    .expect("an assignment of the public stream");
    assert!(!public.contains("token="), "a public stream's URL is not signed: {public}");

    // A rotated secret and SIGHUP to the edge and the control plane: the old URLs stop
    // working, the control plane's new ones play.
    std::fs::write(&secret_file, "a-rotated-secret-0123456789\n").unwrap();
    sluice_launch::kill(edge.pid(), sluice_launch::process::Signal::HUP);
    cp.signal(sluice_launch::process::Signal::HUP);
    let rotated =
        wait_for(secs(10), || edge.log().contains("play token secret reloaded").then_some(()));
    assert!(rotated.is_some(), "the edge rereads the secret on SIGHUP");
    refused(&choice, "invalid play token");
    let fresh = wait_for(secs(20), || {
        let r = http::get(cp.http, "/play/vip/show.json?protocol=rtmp", secs(5)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        v["url"].as_str().filter(|u| *u != choice).map(String::from)
    });
    plays(&fresh.expect("a URL signed with the new secret"));
    let _ = vip.stop();

    // Private apps without a secret: nobody could play them, so the node refuses to start.
    let out = Command::new(binary("sluice-origin"))
        .args([
            "--play-private-apps",
            "vip",
            "--rtmp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run sluice-origin");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--play-private-apps needs --play-token-secret-file"), "{stderr}");
}

#[test]
fn a_token_bound_to_a_viewer_address_plays_from_there_only() {
    let dir = TestDir::new("play-auth-bound");
    let secret_file = setup_files(&dir);
    let args = flags(&secret_file);
    let extra: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = TestCluster::new("pb", &["pb-o", "pb-e"]);
    let origin = c.origin("pb-o", &extra);
    let edge = c.edge("pb-e", &extra);
    let mut vip = Publisher::start_looped(&origin.rtmp_url("vip", "show"), &h264_small().path);
    wait_for(secs(20), || edge.stream_info("vip", "show")).expect("the edge lists vip/show");
    let key = StreamKey::parse("vip", "show").unwrap().0;
    let expiry = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() + 600;
    let bound = |ip: &str| {
        sluice_cluster::signed_token::sign_for(
            SECRET.as_bytes(),
            Purpose::Play,
            &key,
            expiry,
            Some(ip.parse().unwrap()),
        )
    };
    // The players here connect from 127.0.0.1: a token for that address plays on every
    // protocol, one for another address is refused, and so is the first with the binding cut.
    let mine = bound("127.0.0.1");
    plays(&format!("{}?token={mine}", edge.rtmp_url("vip", "show")));
    plays(&format!("http://{}/vip/show.flv?token={mine}", edge.http));
    plays(&format!("http://{}/vip/show.m3u8?token={mine}", edge.http));
    let theirs = bound("127.0.0.2");
    refused(&format!("{}?token={theirs}", edge.rtmp_url("vip", "show")), "invalid play token");
    let r = http::get(edge.http, &format!("/vip/show.flv?token={theirs}"), secs(5)).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    let cut = mine.replacen(".ip.", ".", 1);
    refused(&format!("{}?token={cut}", edge.rtmp_url("vip", "show")), "invalid play token");

    // A control plane that binds: /play/ binds to the requester, AssignViewer to client_ip
    // (required).
    let cp_args = [&extra[..], &["--play-token-bind-client"]].concat();
    let cp = control_plane::start(&c, "pb", &cp_args);
    let url = wait_for(secs(20), || {
        let r = http::get(cp.http, "/play/vip/show.json?protocol=rtmp", secs(5)).ok()?;
        serde_json::from_slice::<serde_json::Value>(&r.body).ok()?["url"].as_str().map(String::from)
    })
    .expect("an assignment");
    assert!(url.contains(".ip."), "a bound token: {url}");
    plays(&url);
    let ctl = |extra: &[&str]| {
        Command::new(binary("sluicectl"))
            .env_remove("SLUICE_TOKEN")
            .env("SLUICE_CONFIG", dir.path().join("sluicectl.toml"))
            .args(["--endpoint", &cp.grpc_url(), "assign", "vip/show", "--protocol", "rtmp"])
            .args(extra)
            .output()
            .expect("sluicectl")
    };
    let without = ctl(&[]);
    assert!(!without.status.success());
    let said = String::from_utf8_lossy(&without.stderr);
    assert!(said.contains("client_ip"), "{said}");
    let elsewhere = ctl(&["--client-ip", "127.0.0.2", "-o", "json"]);
    assert!(elsewhere.status.success(), "{}", String::from_utf8_lossy(&elsewhere.stderr));
    let v: serde_json::Value = serde_json::from_slice(&elsewhere.stdout).expect("json");
    let other_url = v["url"].as_str().expect("a url");
    refused(other_url, "invalid play token");
    let _ = vip.stop();
}
