//! What every Sluice node that touches media shares: the stream hub, the RTMP, HTTP-FLV and
//! HLS delivery drivers, the node's side of the cluster (registry, placement, forwarding, relay
//! peers), metrics, configuration and process set-up. The origin and edge binaries are thin
//! wrappers around [`server::Node`].

pub mod backoff;
pub mod cluster;
pub mod config;
pub mod forward;
pub mod hls;
pub mod http;
pub mod hub;
pub mod log_limit;
pub mod metrics;
pub mod out_queue;
pub mod peers;
pub mod placement;
pub mod relay;
pub mod rtmp;
pub mod runtime;
pub mod server;
pub mod trace_context;
pub mod upstream;
