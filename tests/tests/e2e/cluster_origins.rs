//! Origins sharing a real etcd: each registers its node key under a lease; a publish claims
//! the stream name cluster-wide, so a second publisher on another origin is refused; a crashed
//! origin's claim expires with its lease and an encoder that reconnects elsewhere gets the name.

use std::time::{Duration, Instant};

use sluice_media::rtmp::client::ClientMode;
use sluice_tests::etcd::Etcd;
use sluice_tests::process::wait_for;
use sluice_tests::rtmp::RtmpClient;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

fn origin(etcd: &Etcd, prefix: &str, id: &str) -> Origin {
    Origin::start(&[
        "--etcd",
        &etcd.endpoint(),
        "--etcd-prefix",
        prefix,
        "--lease-ttl",
        "2s",
        "--node-id",
        id,
    ])
}

#[test]
fn a_stream_name_has_one_publisher_cluster_wide() {
    let etcd = Etcd::start();
    let prefix = format!("/t{}", std::process::id());
    let a = origin(&etcd, &prefix, "origin-a");
    let b = origin(&etcd, &prefix, "origin-b");
    let nodes = etcd.keys(&format!("{prefix}/nodes/"));
    assert_eq!(
        nodes,
        vec![format!("{prefix}/nodes/origin/origin-a"), format!("{prefix}/nodes/origin/origin-b")],
        "node keys"
    );

    let mut publisher = Publisher::start_looped(&a.rtmp_url("live", "one"), &h264_aac().path);
    let stream_key = format!("{prefix}/streams/live/one");
    wait_for(secs(15), || etcd.keys(&stream_key).contains(&stream_key).then_some(()))
        .unwrap_or_else(|| panic!("no claim {stream_key} in etcd: {:?}", etcd.keys(&prefix)));
    let value = etcd.ctl(&["get", &stream_key, "--print-value-only"]).unwrap();
    assert!(value.contains("\"origin\":\"origin-a\""), "claim value: {value}");
    // Once media flows, the claim says what it carries.
    let value = wait_for(secs(10), || {
        etcd.ctl(&["get", &stream_key, "--print-value-only"])
            .ok()
            .filter(|v| v.contains("\"codecs\":[\"h264\",\"aac\"]"))
    });
    assert!(
        value.is_some(),
        "claim codecs: {:?}",
        etcd.ctl(&["get", &stream_key, "--print-value-only"])
    );

    // Another origin refuses the live name once the claim hold (TTL + margin) has passed.
    let started = Instant::now();
    let mut second = RtmpClient::connect(b.rtmp, "live", "one", ClientMode::Publish).unwrap();
    let (level, _) =
        second.expect_status("NetStream.Publish.BadName", secs(15)).expect("BadName from origin B");
    assert_eq!(level, "error");
    assert!(started.elapsed() < secs(10), "refusal took {:?}", started.elapsed());
    assert!(publisher.is_running(), "the first publisher kept publishing");

    // When the publisher stops, the claim is released and origin B may take the name.
    publisher.stop();
    wait_for(secs(10), || (!etcd.keys(&stream_key).contains(&stream_key)).then_some(()))
        .expect("claim released after unpublish");
    let mut on_b = RtmpClient::connect(b.rtmp, "live", "one", ClientMode::Publish).unwrap();
    on_b.expect_status("NetStream.Publish.Start", secs(10))
        .expect("origin B accepts the free name");
    let value = wait_for(secs(15), || {
        etcd.ctl(&["get", &stream_key, "--print-value-only"])
            .ok()
            .filter(|v| v.contains("origin-b"))
    });
    assert!(value.is_some(), "claim now names origin-b: {:?}", etcd.ctl(&["get", &stream_key]));
}

#[test]
fn a_crashed_origins_claim_expires_and_the_encoder_republishes_elsewhere() {
    let etcd = Etcd::start();
    let prefix = format!("/c{}", std::process::id());
    let a = origin(&etcd, &prefix, "crash-a");
    let b = origin(&etcd, &prefix, "crash-b");
    let mut first = RtmpClient::connect(a.rtmp, "live", "cam", ClientMode::Publish).unwrap();
    first.expect_status("NetStream.Publish.Start", secs(10)).expect("origin A accepts");
    let stream_key = format!("{prefix}/streams/live/cam");
    assert!(etcd.keys(&stream_key).contains(&stream_key));

    // SIGKILL: no release, no lease revocation; the lease (2 s) must expire on its own.
    sluice_launch::kill(a.pid(), sluice_launch::Signal::KILL);
    let killed = Instant::now();
    let mut again = RtmpClient::connect(b.rtmp, "live", "cam", ClientMode::Publish).unwrap();
    again
        .expect_status("NetStream.Publish.Start", secs(15))
        .expect("origin B accepts the encoder once the dead claim expires");
    let took = killed.elapsed();
    // TTL 2 s + claim margin 1 s, with generous slack for a loaded machine.
    assert!(took < Duration::from_secs(10), "republish took {took:?}");
    let value = etcd.ctl(&["get", &stream_key, "--print-value-only"]).unwrap();
    assert!(value.contains("crash-b"), "claim value: {value}");
    assert!(
        !etcd.keys(&format!("{prefix}/nodes/")).iter().any(|k| k.ends_with("crash-a")),
        "dead node key gone"
    );
}
