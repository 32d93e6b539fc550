//! Where a node gets streams nobody publishes on it.
//!
//! An origin has no upstream: its streams come from publishers. An edge's upstream pulls a
//! stream over the relay from the origin that holds it (see the `sluice-edge` crate) and
//! publishes it into the local hub, so every viewer protocol reads the same log as on an
//! origin. The hub asks the upstream when a viewer wants a stream that is not live locally.

use sluice_media::stream_name::StreamKey;

/// What the hub asks of an upstream.
pub trait Upstream: Send + Sync + 'static {
    /// A viewer wants `key`, which has no publisher on this node. Start pulling it (or keep
    /// the pull that runs) and return `true`; return `false` when the cluster does not know
    /// the stream, so the viewer is told "not found" at once.
    ///
    /// Called with no hub lock held; must not block.
    fn pull(&self, key: &StreamKey) -> bool;
}
