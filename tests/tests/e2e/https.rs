//! HTTPS delivery (`--https-listen`, `--https-cert`, `--https-key`): ffmpeg plays HTTP-FLV and
//! LL-HLS over TLS, verifying the certificate; plain text on the TLS port is refused and
//! counted; SIGHUP swaps in a renewed certificate without dropping a playing viewer, and a bad
//! renewal keeps the old one. In a cluster, an edge that serves HTTPS behind a public name is
//! handed out by the control plane as an `https://` URL that plays.

use std::path::Path;

use sluice_launch::process::Signal;
use sluice_tests::cluster::{gen_certs, TestCluster};
use sluice_tests::origin::TestDir;
use sluice_tests::process::wait_for;
use sluice_tests::{control_plane, h264_aac, http, secs, Origin, Player, Publisher};

/// `curl --cacert CA https://localhost:PORT/PATH`'s status (`000`: no TLS session).
fn curl_tls(port: u16, path: &str, ca: &Path) -> String {
    let url = format!("https://localhost:{port}{path}");
    let resolve = format!("localhost:{port}:127.0.0.1");
    http::curl_status(&url, &["--cacert", ca.to_str().unwrap(), "--resolve", &resolve])
}

fn signal(node: &Origin, signal: Signal) {
    sluice_launch::kill(node.pid(), signal);
}

#[test]
fn https_plays_flv_and_hls_and_a_renewed_certificate_takes_over_on_sighup() {
    // Two certificate sets for "localhost", under different CAs: the first and the renewal.
    let (first, renewed, live) = (TestDir::new("ca1"), TestDir::new("ca2"), TestDir::new("live"));
    gen_certs(first.path(), &["web"]);
    gen_certs(renewed.path(), &["web"]);
    let (cert, key) = (live.path().join("tls.pem"), live.path().join("tls.key"));
    std::fs::copy(first.path().join("web.pem"), &cert).unwrap();
    std::fs::copy(first.path().join("web.key"), &key).unwrap();
    let (ca1, ca2) = (first.path().join("ca.pem"), renewed.path().join("ca.pem"));

    let origin = Origin::start(&[
        "--https-listen",
        "127.0.0.1:0",
        "--https-cert",
        cert.to_str().unwrap(),
        "--https-key",
        key.to_str().unwrap(),
    ]);
    let port = origin.https.expect("the node prints its https address").port();
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "s"), &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", "s")).expect("the stream is published");

    assert_eq!(curl_tls(port, "/api/streams", &ca1), "200");
    assert_eq!(curl_tls(port, "/api/streams", &ca2), "000", "a CA that did not sign it");
    // Plain HTTP on the TLS port: no answer, and a count of it.
    let plain = http::curl_status(&format!("http://127.0.0.1:{port}/api/streams"), &[]);
    assert_ne!(plain, "200", "plain text on the HTTPS port must not be served");
    let failures = || origin.metrics().value("sluice_tls_handshake_failures_total", &[]);
    wait_for(secs(5), || (failures() >= 1.0).then_some(())).expect("the failure is counted");

    // HTTP-FLV and LL-HLS over TLS, certificate verified by ffmpeg.
    let flv_url = format!("https://localhost:{port}/live/s.flv");
    let mut flv = Player::start_verified_tls(&flv_url, &ca1);
    assert!(flv.wait_frames(30, secs(30)) >= 30, "HTTP-FLV over TLS: {:?}", flv.errors());
    let hls_url = format!("https://localhost:{port}/live/s.m3u8");
    let mut hls = Player::start_verified_tls(&hls_url, &ca1);
    assert!(hls.wait_frames(30, secs(40)) >= 30, "HLS over TLS: {:?}", hls.errors());
    drop(hls);

    // A broken renewal (garbage certificate): SIGHUP keeps the current one and counts it.
    std::fs::write(&cert, "not a certificate").unwrap();
    signal(&origin, Signal::HUP);
    let failed = || origin.metrics().value("sluice_tls_reload_failures_total", &[]);
    wait_for(secs(5), || (failed() >= 1.0).then_some(())).expect("the failed reload is counted");
    assert_eq!(curl_tls(port, "/api/streams", &ca1), "200", "the old certificate stays");
    assert!(origin.log().contains("NOT reloaded"), "the log says why");

    // The real renewal: new handshakes get it, the viewer that is playing keeps playing.
    std::fs::copy(renewed.path().join("web.key"), &key).unwrap();
    std::fs::copy(renewed.path().join("web.pem"), &cert).unwrap();
    signal(&origin, Signal::HUP);
    let swapped =
        wait_for(secs(5), || (curl_tls(port, "/api/streams", &ca2) == "200").then_some(()));
    assert!(swapped.is_some(), "the renewed certificate is served after SIGHUP");
    assert_eq!(curl_tls(port, "/api/streams", &ca1), "000", "the old one is gone");
    assert_eq!(origin.metrics().value("sluice_tls_reloads_total", &[]), 1.0);
    let before = flv.frames();
    let after = flv.wait_frames(before + 60, secs(20));
    assert!(
        after >= before + 60,
        "the viewer from before the reload kept playing: {before} -> {after}"
    );
    assert!(flv.is_running());
    publisher.stop();
}

#[test]
fn a_node_with_half_of_the_https_settings_does_not_start_and_says_why() {
    let dir = TestDir::new("half");
    gen_certs(dir.path(), &["web"]);
    let cert = dir.path().join("web.pem");
    let err = Origin::try_start(&["--https-cert", cert.to_str().unwrap()]).unwrap_err();
    let sluice_launch::LaunchError::Exited { log, .. } = err else { panic!("{err}") };
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("--https-cert and --https-key together with --https-listen"), "{text}");
    // A key that is not the certificate's: refused at start, naming both files.
    let other = dir.path().join("ca.key");
    let args = [
        "--https-listen",
        "127.0.0.1:0",
        "--https-cert",
        cert.to_str().unwrap(),
        "--https-key",
        other.to_str().unwrap(),
    ];
    let err = Origin::try_start(&args).unwrap_err();
    let sluice_launch::LaunchError::Exited { log, .. } = err else { panic!("{err}") };
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("web.pem") && text.contains("ca.key"), "{text}");
}

#[test]
fn the_control_plane_hands_out_an_edge_over_https_at_its_public_name() {
    let c = TestCluster::new("https", &["origin-h", "edge-h", "cp"]);
    let certs = c.certs_dir();
    let (cert, key) = (certs.join("edge-h.pem"), certs.join("edge-h.key"));
    let origin = c.origin("origin-h", &[]);
    // The certificate names edge-h and localhost; players are told "localhost".
    let edge = c.edge(
        "edge-h",
        &[
            "--https-listen",
            "127.0.0.1:0",
            "--https-cert",
            cert.to_str().unwrap(),
            "--https-key",
            key.to_str().unwrap(),
            "--public-host",
            "localhost",
        ],
    );
    let https = edge.https.expect("the edge serves https");
    let cp = control_plane::start(&c, "https", &[]);
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "h"), &h264_aac().path);
    wait_for(secs(20), || edge.stream_info("live", "h")).expect("the edge learns the stream");

    let url = wait_for(secs(15), || {
        let r = http::get(cp.http, "/play/live/h.json", secs(5)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        v["url"].as_str().map(str::to_string)
    })
    .expect("the control plane assigns the edge");
    assert_eq!(url, format!("https://localhost:{}/live/h.flv", https.port()));
    let mut player = Player::start_verified_tls(&url, &certs.join("ca.pem"));
    assert!(
        player.wait_frames(30, secs(30)) >= 30,
        "the assigned URL plays: {:?}",
        player.errors()
    );
    publisher.stop();
}
