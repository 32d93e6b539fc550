//! Hub limits: held streams count against `max_streams` until released, and relay feeds are
//! never refused because of the per-stream viewer cap.

use std::time::Duration;

use sluice_media::stream_name::StreamKey;

use super::{Hub, HubConfig, PublishError, SubscribeError};
use crate::metrics::{Metrics, Protocol};

fn hub(max_streams: usize, max_viewers_per_stream: usize) -> Hub {
    Hub::new(
        HubConfig {
            max_streams,
            max_viewers_per_stream,
            stream_buffer: 1 << 20,
            viewer_max_lag: 1 << 20,
            publish_takeover: false,
            quotas: Default::default(),
        },
        Metrics::new(),
    )
}

fn key(name: &str) -> StreamKey {
    StreamKey::parse("live", name).unwrap().0
}

#[tokio::test]
async fn ended_streams_count_until_released_even_while_watched() {
    let hub = hub(2, 100);
    let linger = Duration::from_secs(30);
    // `a` ends while a viewer (an HLS poller, say) keeps watching it.
    let _viewer = hub.subscribe(&key("a"), Protocol::Hls).unwrap();
    drop(hub.publish(&key("a")).unwrap());
    let _b = hub.publish(&key("b")).unwrap();
    assert!(matches!(hub.publish(&key("c")), Err(PublishError::TooManyStreams(2))));
    // Before the linger nothing is released; after it `a` no longer counts (time is passed in).
    let now = tokio::time::Instant::now();
    assert_eq!(hub.release_ended(now, linger), 2);
    assert_eq!(hub.release_ended(now + linger, linger), 1);
    assert_eq!(hub.metrics().streams_held.get(), 1);
    let _c = hub.publish(&key("c")).unwrap();
    // The same name published again starts afresh and is live.
    drop(_c);
    assert!(hub.publish(&key("a")).is_ok());
}

#[tokio::test]
async fn relay_feeds_are_exempt_from_the_viewer_cap() {
    let hub = hub(10, 1);
    let _p = hub.publish(&key("s")).unwrap();
    let _v = hub.subscribe(&key("s"), Protocol::Flv).unwrap();
    assert!(matches!(
        hub.subscribe(&key("s"), Protocol::Hls),
        Err(SubscribeError::TooManyViewers(_, 1))
    ));
    let _edge = hub.subscribe(&key("s"), Protocol::Relay).expect("an edge always subscribes");
}
