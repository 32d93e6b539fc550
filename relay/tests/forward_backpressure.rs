//! A forward whose receiver does not read: the receiving side gives up whole GOPs instead of
//! buffering them, so memory stays bounded while the forwarder goes on sending. Alone in its
//! test binary so that the process's memory figures are this test's.
#![allow(clippy::disallowed_methods)] // test fixtures lock std mutexes directly: a poisoned lock means the test already failed

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use sluice_relay::codec::FLAG_KEYFRAME;
use sluice_relay::tls::RelayTls;
use sluice_relay::{
    certs, ForwardRefusal, ForwardRequest, ForwardSink, Frame, FrameKind, MediaSource, RelayConfig,
    RelayEndpoint, SubscribeRefusal, SubscribeRequest,
};
use tokio::sync::mpsc;

const GOPS: u32 = 120;
const KEYFRAME: usize = 1 << 20;
const SINK_CAPACITY: usize = 8;
const FRAMES_PER_GOP: usize = 10;

/// Hands the one forward's receiver to the test.
struct Sink(Mutex<Option<mpsc::Sender<mpsc::Receiver<Frame>>>>);

impl ForwardSink for Sink {
    fn accept(&self, _: &ForwardRequest) -> Result<mpsc::Sender<Frame>, ForwardRefusal> {
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let handoff = self.0.lock().unwrap().take().ok_or(ForwardRefusal::Refused)?;
        handoff.try_send(rx).map_err(|_| ForwardRefusal::Refused)?;
        Ok(tx)
    }
}

struct NoSource;

impl MediaSource for NoSource {
    fn subscribe(&self, _: &SubscribeRequest) -> Result<mpsc::Receiver<Frame>, SubscribeRefusal> {
        Err(SubscribeRefusal::NotFound)
    }
}

/// GOP `g`: a 1 MiB keyframe (one shared buffer: the sender allocates nothing per GOP),
/// then small inter frames; the timestamp says which GOP a frame belongs to.
fn big_gop(big: &Bytes, g: u32) -> Vec<Frame> {
    let mut out = vec![Frame {
        kind: FrameKind::Video,
        flags: FLAG_KEYFRAME,
        timestamp: g * 1000,
        payload: big.clone(),
    }];
    for i in 1..FRAMES_PER_GOP as u32 {
        out.push(frame(FrameKind::Video, 0, g * 1000 + i * 40, format!("inter {g}/{i}")));
    }
    out
}

/// `VmRSS` or `VmHWM` of this process in KiB.
fn memory_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_reads_costs_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    certs::generate(dir.path(), &["origin-a", "origin-b"]).unwrap();
    let tls = RelayTls::from_dir(dir.path(), "origin-a").unwrap();
    let home = RelayEndpoint::bind(localhost(), RelayConfig::new("origin-a", tls)).unwrap();
    let (handoff, mut receivers) = mpsc::channel(1);
    home.serve_with(Arc::new(NoSource), Some(Arc::new(Sink(Mutex::new(Some(handoff))))));
    let conn = client(dir.path(), "origin-b")
        .connect(home.local_addr().unwrap(), "origin-a")
        .await
        .unwrap();
    let big = Bytes::from(vec![0x5a; KEYFRAME]);
    let baseline = memory_kib("VmRSS:");

    let (tx, frames) = mpsc::channel(64);
    let mut handle = conn.forward("live", "big", 0, 0, frames).await.unwrap();
    let mut rx = receivers.recv().await.unwrap();
    // A live source: all of it is taken although nobody reads at the other end.
    let producer = tokio::spawn({
        let (big, hs) = (big.clone(), headers("big"));
        async move {
            for f in hs {
                tx.send(f).await.unwrap();
            }
            for g in 0..GOPS {
                tokio::time::sleep(Duration::from_millis(20)).await;
                for f in big_gop(&big, g) {
                    tx.send(f).await.unwrap();
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), producer)
        .await
        .expect("the forwarder never stalls")
        .unwrap();
    let grown_mib = (memory_kib("VmHWM:").saturating_sub(baseline)) / 1024;
    let sent_mib = ((GOPS as usize * KEYFRAME) >> 20) as u64;
    println!("sent {sent_mib} MiB, peak memory growth {grown_mib} MiB");
    assert!(grown_mib < 40, "peak memory grew by {grown_mib} MiB while {sent_mib} MiB went unread");

    // Now read: what was queued (the start of the first GOP), then later GOPs, each from
    // its headers, the last one complete, then the end.
    let mut got = Vec::new();
    while let Some(f) = tokio::time::timeout(TIMEOUT, rx.recv()).await.unwrap() {
        got.push(f);
    }
    let hs = headers("big");
    assert_eq!(got[..3], hs[..]);
    let last = big_gop(&big, GOPS - 1);
    let tail = &got[got.len() - last.len() - hs.len()..];
    assert_eq!(tail[..3], hs[..], "the last GOP starts with the headers");
    assert_eq!(tail[3..], last[..], "the last GOP arrives complete");
    let keyframes: Vec<u32> =
        got.iter().filter(|f| f.payload.len() == KEYFRAME).map(|f| f.timestamp / 1000).collect();
    assert!(keyframes.windows(2).all(|w| w[0] < w[1]), "GOPs in order");
    assert!(
        keyframes.len() < GOPS as usize / 4,
        "whole GOPs were given up ({} of {GOPS} arrived)",
        keyframes.len()
    );
    assert_eq!(handle.finished().await.unwrap(), u64::from(GOPS));
}
