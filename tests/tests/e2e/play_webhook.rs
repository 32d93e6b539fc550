//! The play webhook (`--play-webhook-apps`) against a real HTTPS endpoint (Python's
//! http.server over TLS, trusted through `--webhook-ca-file`) and real ffmpeg players: a
//! viewer of a webhook app plays over RTMP, HTTP-FLV and LL-HLS only when the webhook says
//! yes (it sees the viewer's query, address and protocol), is refused with the webhook's
//! reason otherwise (or when it does not answer: fail-closed), an HLS viewer is asked once
//! per session, not per request, and the webhook hears `on_play_done` when each viewer
//! leaves. Streams of other apps never reach the webhook.

use sluice_tests::cluster::gen_certs;
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::webhook::HookServer;
use sluice_tests::{h264_aac, http, secs, Origin, Player, Publisher};

fn plays(url: &str) -> Player {
    let mut p = Player::start(url);
    let frames = p.wait_frames(30, secs(30));
    assert!(frames >= 30, "{url} decoded {frames} frames: {:?}", p.errors());
    p
}

/// ffmpeg cannot play `url`: it ends with an error that contains `why`.
fn refused(url: &str, why: &str) {
    let result = Player::start(url).finish(secs(20), secs(20));
    assert_eq!(result.frames, 0, "{url} played");
    let said = result.errors.join("\n");
    assert!(said.contains(why), "{url}: ffmpeg did not say '{why}':\n{said}");
}

#[test]
fn viewers_of_webhook_apps_play_only_with_the_webhooks_consent_and_it_hears_them_leave() {
    let certs = TestDir::new("hook-certs");
    gen_certs(certs.path(), &["hook"]);
    let hook =
        HookServer::start_tls(&certs.path().join("hook.pem"), &certs.path().join("hook.key"));
    assert!(hook.url.starts_with("https://"), "{}", hook.url);
    let ca = certs.path().join("ca.pem");
    let origin = Origin::start(&[
        "--webhook-url",
        &hook.url,
        "--webhook-ca-file",
        ca.to_str().unwrap(),
        "--webhook-timeout",
        "1s",
        "--play-webhook-apps",
        "club",
    ]);
    // Publishes reach the (HTTPS) webhook as well: `ok` names are admitted.
    let mut club = Publisher::start_looped(&origin.rtmp_url("club", "ok-show"), &h264_aac().path);
    let mut public = Publisher::start_looped(&origin.rtmp_url("live", "ok-free"), &h264_aac().path);
    wait_for(secs(20), || origin.stream_info("club", "ok-show"))
        .unwrap_or_else(|| panic!("club/ok-show not live: {:?}", club.stderr()));
    wait_for(secs(20), || origin.stream_info("live", "ok-free"))
        .unwrap_or_else(|| panic!("live/ok-free not live: {:?}", public.stderr()));
    let http = |path: &str| format!("http://{}{path}", origin.http);

    // RTMP: consent plays, and the webhook saw who asked for what.
    let rtmp = plays(&origin.rtmp_url("club", "ok-show?ticket=good"));
    let asked = hook.calls_of("on_play", "ok-show");
    assert_eq!(asked.len(), 1, "{asked:?}");
    let call = &asked[0];
    assert_eq!((call["app"].as_str(), call["protocol"].as_str()), (Some("club"), Some("rtmp")));
    assert_eq!(call["query"], "ticket=good", "{call}");
    assert_eq!(call["client_ip"], "127.0.0.1", "{call}");
    refused(&origin.rtmp_url("club", "ok-show?ticket=bad"), "no ticket");
    refused(&origin.rtmp_url("club", "ok-show?ticket=slow"), "did not answer");
    let unauthorized =
        |p: &str| origin.metrics().value("sluice_plays_unauthorized_total", &[("protocol", p)]);
    assert_eq!(unauthorized("rtmp"), 2.0);

    // HTTP-FLV: the same, refusals as 403 with the webhook's reason.
    let flv = plays(&http("/club/ok-show.flv?ticket=good"));
    let r = http::get(origin.http, "/club/ok-show.flv?ticket=bad", secs(10)).unwrap();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("no ticket"), "{}", r.text());
    assert_eq!(unauthorized("flv"), 1.0);

    // LL-HLS: one question per session, however many playlists and segments it fetches.
    let before = hook.calls_of("on_play", "ok-show").len();
    let mut hls = plays(&http("/club/ok-show.m3u8?ticket=good"));
    let more = hls.wait_frames(hls.frames() + 60, secs(30));
    assert!(more > 60, "HLS keeps playing");
    let hls_calls: Vec<_> = hook.calls_of("on_play", "ok-show").split_off(before);
    assert_eq!(hls_calls.len(), 1, "asked once for the session: {hls_calls:?}");
    assert_eq!(hls_calls[0]["protocol"], "hls");
    let r = http::get(origin.http, "/club/ok-show.m3u8?ticket=bad", secs(10)).unwrap();
    assert_eq!(r.status, 403);
    assert!(r.text().contains("no ticket"), "{}", r.text());

    // Another app is never asked about.
    let free = plays(&origin.rtmp_url("live", "ok-free"));
    drop(free);
    assert!(hook.calls_of("on_play", "ok-free").is_empty(), "{:?}", hook.calls());

    // Each viewer that leaves is told, with its protocol (HLS when its session expires).
    assert!(hook.calls_of("on_play_done", "ok-show").is_empty(), "nobody left yet");
    drop((rtmp, flv, hls));
    let done = wait_for(secs(30), || {
        let mut protocols: Vec<String> = hook
            .calls_of("on_play_done", "ok-show")
            .iter()
            .filter_map(|c| c["protocol"].as_str().map(str::to_string))
            .collect();
        protocols.sort();
        (protocols == ["flv", "hls", "rtmp"]).then_some(protocols)
    });
    assert!(done.is_some(), "on_play_done for each viewer: {:?}", hook.calls());
    club.stop();
    public.stop();
}

#[test]
fn webhook_apps_without_a_webhook_stop_the_node_and_an_untrusted_https_webhook_refuses() {
    let err = Origin::try_start(&["--play-webhook-apps", "club"]).unwrap_err();
    let sluice_launch::LaunchError::Exited { log, .. } = err else { panic!("{err}") };
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("--play-webhook-apps needs --webhook-url"), "{text}");

    // An HTTPS webhook whose certificate the node does not trust: no answer, so refused.
    let certs = TestDir::new("hook-certs");
    gen_certs(certs.path(), &["hook"]);
    let hook =
        HookServer::start_tls(&certs.path().join("hook.pem"), &certs.path().join("hook.key"));
    let origin = Origin::start(&["--webhook-url", &hook.url, "--play-webhook-apps", "club"]);
    let mut club = Publisher::start_looped(&origin.rtmp_url("live", "ok-x"), &h264_aac().path);
    let refused_publish = wait_for(secs(15), || (!club.is_running()).then_some(()));
    assert!(refused_publish.is_some(), "an untrusted webhook admits no publisher");
    assert!(hook.calls().is_empty(), "the TLS handshake failed before any call");
}
