//! The Sluice edge: serves viewers with the same delivery code as an origin (the node crate's
//! hub, RTMP, HTTP-FLV and HLS drivers) and gets its streams from origins over the QUIC relay.
//!
//! - [`upstream::RelayUpstream`] is the hub's [`sluice_node::upstream::Upstream`]: the first
//!   viewer of a stream starts one [`pull`] task for it, whatever the number of viewers that
//!   follow (*one upstream per stream per edge*).
//! - [`pull`] finds the origin holding the stream's claim in the registry cache (no etcd
//!   request per viewer), subscribes over the relay, and publishes the frames into the local
//!   hub. When the upstream breaks it resubscribes (to the new holder if the claim moved)
//!   while viewers stay connected; after the last viewer leaves it lingers, then stops. Those
//!   decisions are [`pull::policy::PullPolicy`], a sans-IO state machine (events and time in,
//!   actions out); the task only drives it.
//! - `table` holds the running pulls; the upstream and the pull tasks both use it, and
//!   the imports go one way: upstream -> pull -> table.
//! - `sluice_node::peers` keeps one relay connection per origin, shared by all of its streams.

pub mod args;
pub mod pull;
mod table;
pub mod upstream;
