//! The publish webhook against a real HTTP server (Python's http.server) and real ffmpeg
//! encoders: a 2xx answer admits the encoder, a refusal reaches it with the webhook's reason,
//! a webhook that does not answer in time refuses (fail-closed) or admits (`--webhook-fail-open`),
//! and the webhook hears `on_unpublish` when the publish ends.

use sluice_tests::process::wait_for;
use sluice_tests::webhook::HookServer;
use sluice_tests::{h264_small, secs, Origin, Publisher};

fn refused(url: &str, why: &str) {
    sluice_tests::ffmpeg::expect_refused(url, &h264_small().path, why);
}

#[test]
fn the_publish_webhook_admits_refuses_and_hears_the_end() {
    let hook = HookServer::start();
    let origin = Origin::start(&["--webhook-url", &hook.url, "--webhook-timeout", "1s"]);
    let url = |path: &str| format!("rtmp://{}/{path}", origin.rtmp);

    let mut ok = Publisher::start(&url("live/ok-cam?token=abc"), &h264_small().path);
    wait_for(secs(20), || origin.stream_info("live", "ok-cam"))
        .unwrap_or_else(|| panic!("the admitted encoder never went live: {:?}", ok.stderr()));
    let first = &hook.calls()[0];
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
    let ended = wait_for(secs(10), || hook.calls_of("on_unpublish", "ok-cam").pop());
    assert!(ended.is_some(), "no on_unpublish: {:?}", hook.calls());
    assert!(first.get("protocol").is_none(), "publish calls name no protocol: {first}");
}

#[test]
fn a_webhook_that_does_not_answer_admits_publishers_when_fail_open() {
    // Nothing listens there, so the call fails at once: a socket bound but not listening
    // holds the port for the test (a port merely found free could be taken by an origin's
    // own listener, which answers 404).
    let dead = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    dead.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let port = dead.local_addr().unwrap().as_socket().unwrap().port();
    let hook_url = format!("http://127.0.0.1:{port}/hook");
    let closed = Origin::start(&["--webhook-url", &hook_url]);
    refused(&format!("rtmp://{}/live/cam", closed.rtmp), "did not answer");
    let open = Origin::start(&["--webhook-url", &hook_url, "--webhook-fail-open"]);
    let mut publisher =
        Publisher::start(&format!("rtmp://{}/live/cam", open.rtmp), &h264_small().path);
    wait_for(secs(20), || open.stream_info("live", "cam"))
        .unwrap_or_else(|| panic!("fail-open did not admit: {:?}", publisher.stderr()));
    let _ = publisher.stop();
}
