//! A hub viewer feeding a relay channel: the frames of one stream, for a subscription an
//! origin serves ([`crate::relay_source`]) or a forward it sends ([`crate::forward`]).
//!
//! The feed is one more viewer of the stream's log (protocol `relay`): it reads the same
//! serialised messages as every other viewer and is skipped to the next keyframe the same way
//! when it falls behind, so a slow peer costs this node no memory.

use sluice_media::frame::MediaKind;
use sluice_media::stream_name::StreamKey;
use sluice_relay::codec::{FLAG_HEADER, FLAG_HLS_STAMP, FLAG_KEYFRAME};
use sluice_relay::{Frame, FrameKind};
use tokio::sync::mpsc;
use tracing::{debug, Instrument};

use crate::hub::log::Delivery;
use crate::hub::prepared::Prepared;
use crate::hub::{Hub, Subscription};
use crate::metrics::Protocol;

/// Frames queued from the hub to the relay per subscription.
const SOURCE_QUEUE: usize = 256;
/// Bytes collected from the log per batch.
const COLLECT_BATCH: usize = 128 * 1024;

/// A bounded receiver of `key`'s frames from the hub (headers, then from the latest keyframe),
/// fed by a task that counts as one `relay` viewer, for a subscription or a forward. The
/// receiver ends when the publisher leaves; dropping it stops the task.
pub fn spawn_feed(
    hub: &Hub,
    key: &StreamKey,
) -> Result<mpsc::Receiver<Frame>, crate::hub::SubscribeError> {
    let mut sub = hub.subscribe(key, Protocol::Relay)?;
    sub.start_playing();
    let (tx, rx) = mpsc::channel(SOURCE_QUEUE);
    let gauge = hub.metrics().relay_serving.clone();
    let bytes_out = hub.metrics().bytes_out(Protocol::Relay);
    tokio::spawn(
        async move {
            gauge.inc();
            feed(sub, tx, bytes_out).await;
            gauge.dec();
            debug!("relay feed ended");
        }
        .in_current_span(),
    );
    Ok(rx)
}

/// Copies the stream's log into the relay's queue until the publisher leaves (the relay then
/// tells the subscriber ENDED) or the subscriber goes away.
async fn feed(
    mut sub: Subscription,
    tx: mpsc::Sender<Frame>,
    bytes_out: prometheus_client::metrics::counter::Counter,
) {
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = sub.changed() => {}
            _ = tx.closed() => return,
        }
        loop {
            batch.clear();
            sub.collect(&mut batch, COLLECT_BATCH);
            if batch.is_empty() {
                break;
            }
            for delivery in batch.drain(..) {
                match delivery {
                    Delivery::Media(p) => {
                        bytes_out.inc_by(
                            p.payload.len() as u64 + sluice_relay::codec::FRAME_HEADER_LEN as u64,
                        );
                        if tx.send(to_frame(&p)).await.is_err() {
                            return;
                        }
                        if let Some(stamp) = p.hls_stamp {
                            let frame = Frame {
                                kind: FrameKind::Data,
                                flags: FLAG_HLS_STAMP,
                                timestamp: p.timestamp,
                                payload: stamp.encode(),
                            };
                            if tx.send(frame).await.is_err() {
                                return;
                            }
                        }
                    }
                    Delivery::Unpublished => return,
                    Delivery::Republished => {}
                }
            }
        }
    }
}

/// A hub message as a relay frame (the payload is shared, not copied).
pub fn to_frame(p: &Prepared) -> Frame {
    let kind = match p.kind {
        MediaKind::Audio => FrameKind::Audio,
        MediaKind::Video => FrameKind::Video,
        MediaKind::Data => FrameKind::Data,
    };
    let mut flags = 0;
    if p.sync {
        flags |= FLAG_KEYFRAME;
    }
    if p.header {
        flags |= FLAG_HEADER;
    }
    Frame { kind, flags, timestamp: p.timestamp, payload: p.payload.clone() }
}
