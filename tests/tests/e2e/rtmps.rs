//! RTMPS (`--rtmps-listen`, with the HTTPS certificate): ffmpeg publishes and plays over TLS,
//! verifying the certificate, and the stream is the same one plain RTMP viewers get; a client
//! that does not trust the certificate, or speaks plain RTMP to the RTMPS port, gets nothing;
//! SIGHUP swaps in a renewed certificate while an RTMPS viewer keeps playing. In a cluster the
//! control plane hands out an edge's `rtmps://` URL, which plays.

use std::path::Path;
use std::process::{Command, Stdio};

use sluice_launch::process::Signal;
use sluice_tests::cluster::{gen_certs, TestCluster};
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{control_plane, h264_aac, http, secs, Origin, Player, Publisher};

/// Whether a TLS client that trusts only `ca` accepts the certificate served on `port`.
fn served_under(port: u16, ca: &Path) -> bool {
    Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-verify_return_error", "-CAfile"])
        .arg(ca)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs")
        .success()
}

/// A player that must get nothing: it ends (it does not hang) with no frame decoded.
fn assert_plays_nothing(mut player: Player, why: &str) {
    let ended = wait_for(secs(20), || (!player.is_running()).then_some(()));
    assert!(ended.is_some(), "{why}: the player should fail, not hang");
    assert_eq!(player.frames(), 0, "{why}: no frame may be decoded");
}

#[test]
fn rtmps_publish_and_play_decode_and_a_renewed_certificate_takes_over_on_sighup() {
    let (first, renewed, live) = (TestDir::new("ca1"), TestDir::new("ca2"), TestDir::new("live"));
    gen_certs(first.path(), &["web"]);
    gen_certs(renewed.path(), &["web"]);
    let (cert, key) = (live.path().join("tls.pem"), live.path().join("tls.key"));
    std::fs::copy(first.path().join("web.pem"), &cert).unwrap();
    std::fs::copy(first.path().join("web.key"), &key).unwrap();
    let (ca1, ca2) = (first.path().join("ca.pem"), renewed.path().join("ca.pem"));

    let origin = Origin::start(&[
        "--rtmps-listen",
        "127.0.0.1:0",
        "--https-cert",
        cert.to_str().unwrap(),
        "--https-key",
        key.to_str().unwrap(),
    ]);
    let port = origin.rtmps.expect("the node prints its rtmps address").port();
    assert!(origin.https.is_none(), "RTMPS alone does not open HTTPS");
    let url = format!("rtmps://localhost:{port}/live/s");

    // The encoder verifies the certificate and publishes over TLS.
    let mut publisher = Publisher::start_verified_tls(&url, &h264_aac().path, &ca1);
    let info = wait_for(secs(15), || origin.stream_info("live", "s"));
    assert!(info.is_some(), "published over RTMPS: {:?}", publisher.stderr());

    // Played over RTMPS (verified) and over plain RTMP: the same stream.
    let mut tls_viewer = Player::start_verified_tls(&url, &ca1);
    assert!(tls_viewer.wait_frames(30, secs(30)) >= 30, "RTMPS play: {:?}", tls_viewer.errors());
    let mut plain = Player::start(&origin.rtmp_url("live", "s"));
    assert!(plain.wait_frames(30, secs(30)) >= 30, "RTMP play: {:?}", plain.errors());
    drop(plain);

    // A client that trusts another CA, and a plain RTMP client on the TLS port, get nothing;
    // the node carries on.
    assert_plays_nothing(Player::start_verified_tls(&url, &ca2), "an untrusted certificate");
    let plain_on_tls = format!("rtmp://127.0.0.1:{port}/live/s");
    assert_plays_nothing(Player::start(&plain_on_tls), "plain RTMP on the RTMPS port");
    assert!(publisher.is_running(), "the publisher is untouched");

    // A broken renewal keeps the certificate; the real one takes over for new handshakes
    // while the viewer from before keeps playing.
    std::fs::write(&cert, "not a certificate").unwrap();
    sluice_launch::kill(origin.pid(), Signal::HUP);
    let failed = || origin.metrics().value("sluice_tls_reload_failures_total", &[]);
    wait_for(secs(5), || (failed() >= 1.0).then_some(())).expect("the failed reload is counted");
    assert!(served_under(port, &ca1), "the old certificate stays");
    std::fs::copy(renewed.path().join("web.key"), &key).unwrap();
    std::fs::copy(renewed.path().join("web.pem"), &cert).unwrap();
    sluice_launch::kill(origin.pid(), Signal::HUP);
    let swapped = wait_for(secs(5), || served_under(port, &ca2).then_some(()));
    assert!(swapped.is_some(), "the renewed certificate is served after SIGHUP");
    assert!(!served_under(port, &ca1), "the old one is gone");
    let before = tls_viewer.frames();
    let after = tls_viewer.wait_frames(before + 60, secs(20));
    assert!(after >= before + 60, "the RTMPS viewer kept playing: {before} -> {after}");
    let mut renewed_viewer = Player::start_verified_tls(&url, &ca2);
    assert!(
        renewed_viewer.wait_frames(30, secs(30)) >= 30,
        "a new RTMPS viewer under the renewed certificate: {:?}",
        renewed_viewer.errors()
    );
    assert!(publisher.is_running(), "the RTMPS publisher survived the reload");
    publisher.stop();
}

#[test]
fn rtmps_without_a_certificate_does_not_start_and_says_why() {
    let err = Origin::try_start(&["--rtmps-listen", "127.0.0.1:0"]).unwrap_err();
    let sluice_launch::LaunchError::Exited { log, .. } = err else { panic!("{err}") };
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("--https-cert and --https-key together with"), "{text}");
}

#[test]
fn the_control_plane_hands_out_an_edge_over_rtmps() {
    let c = TestCluster::new("rtmps", &["origin-r", "edge-r", "cp"]);
    let certs = c.certs_dir();
    let (cert, key) = (certs.join("edge-r.pem"), certs.join("edge-r.key"));
    let origin = c.origin("origin-r", &[]);
    let edge = c.edge(
        "edge-r",
        &[
            "--rtmps-listen",
            "127.0.0.1:0",
            "--https-cert",
            cert.to_str().unwrap(),
            "--https-key",
            key.to_str().unwrap(),
            "--public-host",
            "localhost",
        ],
    );
    let rtmps = edge.rtmps.expect("the edge serves rtmps");
    let cp = control_plane::start(&c, "rtmps", &[]);
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "r"), &h264_aac().path);
    wait_for(secs(20), || edge.stream_info("live", "r")).expect("the edge learns the stream");

    let url = wait_for(secs(15), || {
        let r = http::get(cp.http, "/play/live/r.json?protocol=rtmp", secs(5)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        v["url"].as_str().map(str::to_string)
    })
    .expect("the control plane assigns the edge");
    assert_eq!(url, format!("rtmps://localhost:{}/live/r", rtmps.port()));
    let mut player = Player::start_verified_tls(&url, &certs.join("ca.pem"));
    assert!(
        player.wait_frames(30, secs(30)) >= 30,
        "the assigned URL plays: {:?}",
        player.errors()
    );
    publisher.stop();
}
