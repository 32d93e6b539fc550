//! A cluster whose etcd speaks TLS only, requires client certificates (`--client-cert-auth`)
//! and has authentication on: origins, edges and the control plane reach it with
//! `--etcd-ca-file`, `--etcd-cert-file`, `--etcd-key-file`, `--etcd-user` and
//! `--etcd-password-file`, and a stream plays through an edge; a node without a client
//! certificate, one that does not trust etcd's CA, or one with a wrong password does not start
//! and says why (naming the user, never the password).

use sluice_tests::cluster::TestCluster;
use sluice_tests::process::wait_for;
use sluice_tests::viewer::Watcher;
use sluice_tests::{control_plane, h264_aac, http, secs, Origin, Publisher};

/// The node's own last words (its log) when it exited while starting.
fn start_error(err: sluice_launch::LaunchError) -> String {
    match err {
        sluice_launch::LaunchError::Exited { log, .. } => {
            let text = std::fs::read_to_string(&log).expect("the node's log");
            text.lines().filter(|l| l.starts_with("Error: ")).collect::<Vec<_>>().join("\n")
        }
        other => panic!("the node should have exited: {other}"),
    }
}

#[test]
fn a_cluster_on_a_tls_etcd_with_client_certificates_and_a_password_serves_a_stream() {
    const PASSWORD: &str = "pw-Kq3-zz81-vault";
    let nodes = ["origin-t", "edge-t", "cp", "stranger", "etcdctl"];
    let c = TestCluster::with_tls_etcd_and_password("etls", &nodes, "sluice", PASSWORD);
    assert!(c.etcd.endpoint().starts_with("https://"), "{}", c.etcd.endpoint());
    let origin = c.origin("origin-t", &[]);
    let edge = c.edge("edge-t", &[]);
    let cp = control_plane::start(&c, "etls", &[]);

    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "t"), &h264_aac().path);
    wait_for(secs(20), || edge.stream_info("live", "t")).expect("the edge learns the stream");
    let viewer = Watcher::start(edge.rtmp, "live", "t");
    assert!(viewer.wait_video(30, secs(30)) >= 30, "the edge viewer plays");

    // The control plane follows the same etcd: both nodes, the stream.
    let cluster = wait_for(secs(15), || {
        let r = http::get(cp.http, "/api/cluster", secs(5)).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
        let ready = v["nodes"].as_array()?.len() == 2 && v["streams"].as_array()?.len() == 1;
        ready.then_some(v)
    });
    assert!(
        cluster.is_some(),
        "the control plane lists 2 nodes and 1 stream; log:\n{}",
        cp.log_text()
    );

    // No client certificate: refused by etcd, and the node says so instead of starting.
    let endpoint = c.etcd.endpoint();
    let ca = c.certs_dir().join("ca.pem");
    let ca = ca.to_str().expect("utf-8");
    let certs = c.certs_dir().to_str().expect("utf-8");
    let common = ["--etcd", &endpoint, "--etcd-prefix", &c.prefix, "--tls-dir", certs];
    let no_cert = [&common[..], &["--node-id", "stranger", "--etcd-ca-file", ca]].concat();
    let refused = Origin::try_start_bin("sluice-edge", &no_cert);
    let Err(err) = refused else { panic!("an edge without a client certificate must not start") };
    let said = start_error(err);
    assert!(said.contains("Error: registering with etcd at https://"), "names etcd: {said}");
    // Not trusting etcd's CA (its own certificate as the CA): refused too.
    let cert = c.certs_dir().join("stranger.pem");
    let key = c.certs_dir().join("stranger.key");
    let (cert, key) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let wrong_ca = [
        &common[..],
        &["--node-id", "stranger", "--etcd-ca-file", cert, "--etcd-cert-file", cert],
        &["--etcd-key-file", key],
    ]
    .concat();
    let refused = Origin::try_start_bin("sluice-edge", &wrong_ca);
    let Err(err) = refused else { panic!("an edge that does not trust etcd's CA must not start") };
    let said = start_error(err);
    assert!(said.contains("Error: registering with etcd at https://"), "names etcd: {said}");

    // The right certificate with a wrong password: refused, naming etcd and the user.
    let wrong = c.certs_dir().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let mut args = c.args("stranger");
    let at = args.iter().position(|a| a == "--etcd-password-file").expect("the cluster's flags");
    args[at + 1] = wrong.display().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = Origin::try_start_bin("sluice-edge", &args);
    let Err(err) = refused else { panic!("an edge with a wrong etcd password must not start") };
    let said = start_error(err);
    assert!(said.contains("Error: registering with etcd at https://"), "names etcd: {said}");
    assert!(said.contains("etcd authentication: user \"sluice\""), "names the user: {said}");
    assert_eq!(said.lines().count(), 1, "one line: {said}");
    assert!(!said.contains("not-the-password"), "the password stays secret: {said}");

    // The right password outside the user's prefix: etcd's permissions hold.
    let mut args = c.args("stranger");
    let at = args.iter().position(|a| a == "--etcd-prefix").expect("the cluster's flags");
    args[at + 1] = "/elsewhere".to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = Origin::try_start_bin("sluice-edge", &args);
    let Err(err) = refused else { panic!("an edge outside its etcd role's prefix must not start") };
    let said = start_error(err);
    assert!(said.contains("permission denied"), "etcd's refusal: {said}");

    // The password is in no log of the cluster.
    for (name, log) in [("origin", origin.log()), ("edge", edge.log()), ("cp", cp.log_text())] {
        assert!(!log.contains(PASSWORD), "{name}'s log shows the etcd password");
    }
    publisher.stop();
    let _ = std::fs::remove_file(&cp.log);
}
