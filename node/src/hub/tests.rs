//! The hub's limits without sockets: the stream cap, the viewer cap per stream, the stream
//! buffer bound, and a slow viewer skipping to the next keyframe with the headers re-sent.

use bytes::Bytes;
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::stream_name::StreamKey;

use super::log::Delivery;
use super::*;

fn config() -> HubConfig {
    HubConfig {
        max_streams: 100,
        max_viewers_per_stream: 100,
        stream_buffer: 1 << 20,
        viewer_max_lag: 1 << 20,
        publish_takeover: false,
        quotas: Default::default(),
    }
}

fn hub(config: HubConfig) -> Hub {
    Hub::new(config, Metrics::new())
}

fn key(name: &str) -> StreamKey {
    StreamKey::parse("live", name).unwrap().0
}

fn msg(kind: MediaKind, timestamp: u32, payload: Vec<u8>) -> MediaMessage {
    MediaMessage { kind, timestamp, payload: Bytes::from(payload) }
}

fn video_header() -> MediaMessage {
    msg(MediaKind::Video, 0, vec![0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1f])
}

fn audio_header() -> MediaMessage {
    msg(MediaKind::Audio, 0, vec![0xAF, 0, 0x12, 0x10])
}

/// A video frame of `len` bytes (payload included) at `ts`.
fn frame(ts: u32, key: bool, len: usize) -> MediaMessage {
    let mut p = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    p.resize(len.max(5), 0x5A);
    msg(MediaKind::Video, ts, p)
}

/// What a subscription collects now: (timestamp, keyframe, header) per media delivery.
fn collect(sub: &mut Subscription) -> Vec<(u32, bool, bool)> {
    let mut out = Vec::new();
    sub.collect(&mut out, usize::MAX);
    out.iter()
        .filter_map(|d| match d {
            Delivery::Media(p) => Some((p.timestamp, p.sync, p.header)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_stream_cap_refuses_one_more_publisher_and_counts_it() {
    let hub = hub(HubConfig { max_streams: 2, ..config() });
    let a = hub.publish(&key("a")).unwrap();
    let _b = hub.publish(&key("b")).unwrap();
    assert_eq!(hub.publish(&key("c")).err(), Some(PublishError::TooManyStreams(2)));
    assert_eq!(hub.metrics().publishes_rejected.get(), 1);
    assert_eq!(hub.metrics().streams.get(), 2);
    assert_eq!(hub.live_stream_count(), 2);
    // A live name is refused for its own reason, and not as a third stream.
    assert_eq!(
        hub.publish(&key("a")).err(),
        Some(PublishError::AlreadyPublishing("live/a".into()))
    );
    // The refused name left nothing behind; a freed slot is usable at once.
    assert!(hub.snapshot().iter().all(|s| s.name != "c"));
    drop(a);
    assert_eq!(hub.metrics().streams.get(), 1);
    assert!(hub.publish(&key("c")).is_ok());
}

#[test]
fn viewers_waiting_for_a_stream_do_not_count_against_the_stream_cap() {
    let hub = hub(HubConfig { max_streams: 1, ..config() });
    let _waiting = hub.subscribe(&key("later"), Protocol::Rtmp).unwrap();
    let _p = hub.publish(&key("now")).unwrap();
    assert_eq!(hub.publish(&key("later")).err(), Some(PublishError::TooManyStreams(1)));
}

#[test]
fn the_viewer_cap_is_per_stream() {
    let hub = hub(HubConfig { max_viewers_per_stream: 2, ..config() });
    let _p = hub.publish(&key("a")).unwrap();
    let v1 = hub.subscribe(&key("a"), Protocol::Rtmp).unwrap();
    let _v2 = hub.subscribe(&key("a"), Protocol::Flv).unwrap();
    assert_eq!(
        hub.subscribe(&key("a"), Protocol::Hls).err(),
        Some(SubscribeError::TooManyViewers("live/a".into(), 2))
    );
    assert_eq!(hub.viewer_count(&key("a")), 2);
    assert_eq!(hub.metrics().viewers_rejected.get(), 1, "the refusal is counted");
    // Another stream has its own allowance.
    let _other = hub.subscribe(&key("b"), Protocol::Rtmp).unwrap();
    let _other2 = hub.subscribe(&key("b"), Protocol::Rtmp).unwrap();
    // A viewer leaving frees its place.
    drop(v1);
    assert_eq!(hub.viewer_count(&key("a")), 1);
    assert!(hub.subscribe(&key("a"), Protocol::Rtmp).is_ok());
}

#[test]
fn a_gop_larger_than_the_stream_buffer_is_not_cached() {
    let buffer = 20_000;
    let hub = hub(HubConfig { stream_buffer: buffer, ..config() });
    let mut p = hub.publish(&key("big")).unwrap();
    p.push(video_header()).unwrap();
    p.push(frame(0, true, 5_000)).unwrap();
    // 30 inter frames of 1000 bytes: the GOP (35 kB) is larger than the buffer (20 kB).
    for i in 1..=30 {
        p.push(frame(i * 33, false, 1_000)).unwrap();
    }
    let entry = lock(&hub.inner.streams).get(&key("big")).cloned().unwrap();
    let retained = entry.log().retained_bytes();
    assert!(retained <= buffer, "log holds {retained} bytes, buffer is {buffer}");
    // A new viewer gets the headers only, no frame of the evicted GOP, and starts at the
    // next keyframe.
    let mut late = hub.subscribe(&key("big"), Protocol::Rtmp).unwrap();
    assert_eq!(collect(&mut late), vec![(0, false, true)]);
    p.push(frame(1_000, false, 1_000)).unwrap();
    assert_eq!(collect(&mut late), vec![]);
    p.push(frame(1_033, true, 5_000)).unwrap();
    p.push(frame(1_066, false, 1_000)).unwrap();
    assert_eq!(collect(&mut late), vec![(1_033, true, false), (1_066, false, false)]);
    // A GOP that fits is cached: a viewer arriving now starts at its keyframe.
    let mut next = hub.subscribe(&key("big"), Protocol::Rtmp).unwrap();
    assert_eq!(collect(&mut next)[1..], [(1_033, true, false), (1_066, false, false)]);
}

#[test]
fn a_viewer_past_the_max_lag_skips_to_the_next_keyframe_with_headers_again() {
    let hub = hub(HubConfig { viewer_max_lag: 5_000, ..config() });
    let mut p = hub.publish(&key("lag")).unwrap();
    p.push(msg(MediaKind::Data, 0, onmetadata())).unwrap();
    p.push(video_header()).unwrap();
    p.push(audio_header()).unwrap();
    p.push(frame(0, true, 2_000)).unwrap();
    let mut slow = hub.subscribe(&key("lag"), Protocol::Rtmp).unwrap();
    let first = collect(&mut slow);
    assert_eq!(first.len(), 4, "headers then the keyframe: {first:?}");
    // The viewer stops reading while 10 frames of 1000 bytes arrive: 10 kB behind > 5 kB.
    for i in 1..=10 {
        p.push(frame(i * 33, false, 1_000)).unwrap();
    }
    p.push(frame(363, true, 2_000)).unwrap();
    p.push(frame(396, false, 1_000)).unwrap();
    let mut out = Vec::new();
    slow.collect(&mut out, usize::MAX);
    let got: Vec<(u32, bool, bool)> = out
        .iter()
        .filter_map(|d| match d {
            Delivery::Media(p) => Some((p.timestamp, p.sync, p.header)),
            _ => None,
        })
        .collect();
    // Metadata, video and audio headers re-sent, then the newest keyframe and what follows;
    // none of the 10 frames it fell behind on.
    assert_eq!(
        got,
        vec![
            (0, false, true),
            (0, false, true),
            (0, false, true),
            (363, true, false),
            (396, false, false)
        ]
    );
    assert_eq!(hub.metrics().skipped_frames.get(), 10, "skipped frames counted");
    // A viewer within the lag is not skipped.
    for i in 0..3 {
        p.push(frame(429 + i * 33, false, 1_000)).unwrap();
    }
    assert_eq!(collect(&mut slow).len(), 3);
    assert_eq!(hub.metrics().skipped_frames.get(), 10);
}

/// `onMetaData` with an empty ECMA array, as AMF0.
fn onmetadata() -> Vec<u8> {
    let mut v = vec![0x02, 0, 10];
    v.extend_from_slice(b"onMetaData");
    v.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 9]);
    v
}

#[test]
fn figures_count_viewers_but_not_relay_feeds() {
    let hub = hub(config());
    let mut p = hub.publish(&key("a")).unwrap();
    p.push(video_header()).unwrap();
    p.push(frame(0, true, 1_000)).unwrap();
    let flv = hub.subscribe(&key("a"), Protocol::Flv).unwrap();
    let _rtmp = hub.subscribe(&key("a"), Protocol::Rtmp).unwrap();
    let relay = hub.subscribe(&key("a"), Protocol::Relay).unwrap();
    // A viewer waiting for a stream that has no publisher yet is listed; a stream with neither
    // is not.
    let _waiting = hub.subscribe(&key("later"), Protocol::Hls).unwrap();
    let figures = |hub: &Hub| {
        let mut f = hub.figures(Instant::now());
        f.sort_by(|a, b| a.key.cmp(&b.key));
        f.into_iter().map(|f| (f.key.name().to_string(), f.viewers)).collect::<Vec<_>>()
    };
    assert_eq!(figures(&hub), [("a".to_string(), 2), ("later".to_string(), 1)]);
    assert_eq!(hub.viewer_count(&key("a")), 3, "the hub's own count still has the relay");
    drop(relay);
    drop(flv);
    assert_eq!(figures(&hub), [("a".to_string(), 1), ("later".to_string(), 1)]);
    // Nothing measured yet within the first window.
    let a = hub.figures(Instant::now()).into_iter().find(|f| f.key == key("a")).unwrap();
    assert_eq!((a.fps, a.bitrate_bps), (0.0, 0.0));
}

#[tokio::test]
async fn close_viewers_ends_those_watching_now_but_not_relays_or_later_viewers() {
    let hub = hub(config());
    let mut flv = hub.subscribe(&key("a"), Protocol::Flv).unwrap();
    let relay = hub.subscribe(&key("a"), Protocol::Relay).unwrap();
    assert!(!flv.is_closed());
    hub.close_viewers();
    // A waiting viewer wakes up and sees it is closed.
    tokio::time::timeout(std::time::Duration::from_secs(1), flv.changed()).await.unwrap();
    assert!(flv.is_closed());
    assert!(!relay.is_closed());
    let later = hub.subscribe(&key("a"), Protocol::Rtmp).unwrap();
    assert!(!later.is_closed());
}

/// A video frame at `ts` shown `cts` ms later (a B-frame stream's composition offset).
fn frame_cts(ts: u32, key: bool, cts: u32) -> MediaMessage {
    let c = cts.to_be_bytes();
    msg(MediaKind::Video, ts, vec![if key { 0x17 } else { 0x27 }, 1, c[1], c[2], c[3], 0x5A])
}

#[test]
fn a_new_session_starts_after_the_last_frame_shown_not_only_the_last_decoded() {
    let hub = hub(config());
    let mut p = hub.publish(&key("bframes")).unwrap();
    let mut viewer = hub.subscribe(&key("bframes"), Protocol::Rtmp).unwrap();
    p.push(video_header()).unwrap();
    // Decode order 0, 33, 66 with presentation 66, 166 (a reordered P), 100: shown up to 166.
    p.push(frame_cts(0, true, 66)).unwrap();
    p.push(frame_cts(33, false, 133)).unwrap();
    p.push(frame_cts(66, false, 34)).unwrap();
    // The source moves (an edge's upstream failover): its own clock starts at 5000.
    p.new_session();
    p.push(MediaMessage { timestamp: 5_000, ..video_header() }).unwrap();
    p.push(frame_cts(5_000, true, 66)).unwrap();
    let got = collect(&mut viewer);
    let first_new = got.iter().rev().find(|&&(_, key, header)| key && !header).unwrap().0;
    assert!(first_new > 166, "decode time {first_new} must come after the last shown, 166");
    assert!(first_new + 66 > 166 + 33, "and so is its own presentation");
    assert_eq!(first_new, 166 + 40, "the usual gap after it");
}

/// The driver contract (`changed`, then `has_pending`, then `collect`) loses no message: a
/// change `changed` saw, a collection cut short by its byte budget, and a stream that went
/// live while a viewer waited each leave `has_pending` true until collected.
#[tokio::test]
async fn has_pending_keeps_what_changed_saw_until_it_is_collected() {
    let hub = hub(config());
    let mut waiting = hub.subscribe(&key("a"), Protocol::Rtmp).unwrap();
    let mut p = hub.publish(&key("a")).unwrap();
    p.push(video_header()).unwrap();
    p.push(frame(0, true, 1_000)).unwrap();
    assert!(waiting.wait_live(std::time::Duration::from_secs(1)).await);
    assert!(waiting.has_pending(), "went live while waiting: the GOP is to be collected");
    assert_eq!(collect(&mut waiting), vec![(0, false, true), (0, true, false)]);
    assert!(!waiting.has_pending(), "all collected");

    p.push(frame(33, false, 1_000)).unwrap();
    waiting.changed().await;
    assert!(waiting.has_pending(), "the change `changed` marked seen is still pending");
    assert_eq!(collect(&mut waiting), vec![(33, false, false)]);
    assert!(!waiting.has_pending());

    // A budget of one message leaves the second behind: pending without another wake-up.
    p.push(frame(66, false, 1_000)).unwrap();
    p.push(frame(100, false, 1_000)).unwrap();
    let mut out = Vec::new();
    waiting.collect(&mut out, 1);
    assert_eq!(out.len(), 1);
    assert!(waiting.has_pending(), "the budget left a message behind");
    assert_eq!(collect(&mut waiting), vec![(100, false, false)]);
    assert!(!waiting.has_pending());
    // Nothing rang since: a wait now would sleep.
    let woke = tokio::time::timeout(std::time::Duration::from_millis(50), waiting.changed());
    assert!(woke.await.is_err(), "no change, no wake-up");
}
