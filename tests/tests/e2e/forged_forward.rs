//! A forward is hosted only for the origin the registry says holds the stream's claim. A peer
//! with a valid cluster certificate ("mallory", registered nowhere) forwards to the home of a
//! stream another origin publishes: refused at once, the live stream untouched; forwarding a
//! name nobody claimed: dropped once the claim does not show up, never published.

use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_relay::tls::RelayTls;
use sluice_relay::{Frame, FrameKind, RelayConfig, RelayEndpoint, RelayError};
use sluice_tests::cluster::{find_name, home, TestCluster};
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, secs};
use tokio::sync::mpsc;

/// A keyframe-led little stream: a header and a keyframe, then frames until dropped.
fn frames() -> mpsc::Receiver<Frame> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let header = Frame {
            kind: FrameKind::Video,
            flags: sluice_relay::codec::FLAG_HEADER,
            timestamp: 0,
            payload: Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1f]),
        };
        if tx.send(header).await.is_err() {
            return;
        }
        for i in 0..300u32 {
            let key = i % 30 == 0;
            let frame = Frame {
                kind: FrameKind::Video,
                flags: if key { sluice_relay::codec::FLAG_KEYFRAME } else { 0 },
                timestamp: i * 33,
                payload: Bytes::from(vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 0x5A]),
            };
            if tx.send(frame).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(33)).await;
        }
    });
    rx
}

#[test]
fn forwards_from_a_peer_that_does_not_hold_the_claim_are_refused() {
    let origins = ["fo-a", "fo-b"];
    let c = TestCluster::new("forged", &["fo-a", "fo-b", "fo-edge", "mallory"]);
    let a = c.origin("fo-a", &[]);
    let b = c.origin("fo-b", &[]);
    let edge = c.edge("fo-edge", &[]);
    // A stream published on a whose home is b: a forwards it to b.
    let live = find_name("real", |n| home(&origins, n) == "fo-b");
    let _publisher = Replay::start(a.rtmp, "live", &live, &h264_aac().path);
    wait_for(secs(20), || b.stream_info("live", &live)).expect("b hosts the forwarded stream");
    // The edge's registry cache lists it too (else the edge answers "not published" at once).
    wait_for(secs(20), || edge.stream_info("live", &live)).expect("the edge lists the stream");
    let viewer = Watcher::start(edge.rtmp, "live", &live);
    assert!(viewer.wait_video(30, secs(30)) >= 30, "the edge viewer plays");
    let mark = viewer.mark();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        sluice_relay::tls::install_crypto_provider();
        let tls = RelayTls::from_dir(c.certs_dir(), "mallory").expect("mallory's certificate");
        let endpoint =
            RelayEndpoint::bind("127.0.0.1:0".parse().unwrap(), RelayConfig::new("mallory", tls))
                .unwrap();
        let conn = endpoint.connect(b.relay.unwrap(), "fo-b").await.expect("mTLS to b");

        // The live stream, claimed by a: refused at once.
        match conn.forward("live", &live, 1, 0, frames()).await {
            Err(RelayError::ForwardRefused(_)) => {}
            other => panic!("a forward of a's stream from mallory: {:?}", other.map(|_| ())),
        }

        // A free name whose home is b: accepted for a moment, then dropped.
        let free = find_name("ghost", |n| home(&origins, n) == "fo-b");
        let started = Instant::now();
        match conn.forward("live", &free, 1, 0, frames()).await {
            Err(RelayError::ForwardRefused(_)) => {}
            Ok(mut handle) => {
                let ended = tokio::time::timeout(secs(10), handle.finished()).await;
                assert!(ended.is_ok(), "the unclaimed forward is dropped");
                assert!(started.elapsed() < secs(8), "within the claim wait");
            }
            Err(e) => panic!("forward of a free name: {e}"),
        }
        assert!(b.stream_info("live", &free).is_none(), "the unclaimed name was never published");
        endpoint.close();
    });

    let refused = b.metrics().value("sluice_relay_forwards_refused_total", &[]);
    assert!(refused >= 2.0, "both refusals are counted: {refused}");
    assert!(b.log().contains("forward refused: the stream's claim is another origin's"));
    // The real stream never noticed.
    viewer.wait_video(viewer.video_frames() + 30, secs(10));
    let broken = viewer.snapshot().interruptions(mark, Duration::from_millis(1000), 0);
    assert!(broken.is_empty(), "the live stream was disturbed: {broken:?}");
}
