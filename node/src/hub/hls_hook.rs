//! The hook through which a layer above the hub (HLS) keeps per-stream state that the
//! publisher feeds, without the hub knowing that layer (like [`crate::upstream::Upstream`]).
//!
//! The hub asks the [`HlsHook`] for one [`StreamHlsHook`] per stream entry and calls it from
//! the publisher's task with every message (timestamps already rebased); on the ingest node
//! it answers with the stamp of the segment the message opened, which the hub stores on the
//! message for the relay to carry.

use sluice_media::frame::MediaMessage;
use sluice_media::hls::{HlsSnapshot, SegmentStamp};
use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;

/// Makes the per-stream state (once per stream entry).
pub trait HlsHook: Send + Sync + 'static {
    fn open(&self, key: &StreamKey) -> Box<dyn StreamHlsHook>;
}

/// One stream's state, fed by its publisher.
pub trait StreamHlsHook: std::fmt::Debug + Send + Sync + 'static {
    /// A message from the publisher on this node (the node decides the segments). Returns the
    /// stamp of the segment it opened, if it opened one.
    fn push(&self, key: &StreamKey, msg: &MediaMessage) -> Option<SegmentStamp>;

    /// A message relayed from another node, with the ingest's stamp if it opened a segment
    /// there (segments follow the stamps).
    fn follow(
        &self,
        key: &StreamKey,
        msg: &MediaMessage,
        header: bool,
        stamp: Option<&SegmentStamp>,
    );

    /// The publisher left.
    fn end_of_stream(&self);

    /// The stream ended a while ago: drop its segments and state (a later publisher starts
    /// afresh), so pollers of its playlists no longer hold its memory.
    fn release(&self);

    /// A receiver of the latest snapshot (`None` until there is one).
    fn subscribe(&self) -> watch::Receiver<Option<HlsSnapshot>>;
}
