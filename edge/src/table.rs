//! The edge's table of running pulls: one entry per stream, shared by the
//! [`crate::upstream::RelayUpstream`] (which starts pulls and marks streams wanted) and the
//! [`crate::pull`] tasks (each removes its own entry when it stops). It is a module of its own so
//! that both import it and neither imports the other back. It is locked with
//! [`sluice_node::lock::lock`], like every mutex of the node side.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_media::stream_name::StreamKey;
use tokio::time::Instant;

/// A running pull, as the table sees it.
pub(crate) struct PullEntry {
    /// Last time a viewer asked for the stream: the task does not stop within the linger
    /// time of this, even before the viewer is counted in the hub.
    pub(crate) wanted: Instant,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

/// The table of pulls, shared with the pull tasks (each removes itself when it stops).
pub(crate) type PullTable = Arc<Mutex<HashMap<StreamKey, PullEntry>>>;
