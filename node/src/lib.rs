//! What every Sluice node that touches media shares: the stream hub, the RTMP, HTTP-FLV and
//! HLS delivery drivers, the node's side of the cluster (registry, placement, forwarding, relay
//! peers), metrics, configuration and process set-up. The origin and edge binaries are thin
//! wrappers around [`server::Node`].
//!
//! # Layers
//!
//! The modules form layers; a module imports only from its own layer or the ones below it,
//! and there is no circle between modules (`tests/tests/e2e/layers.rs` checks both by
//! reading the sources, and that nothing outside `config` names clap):
//!
//! | layer | modules | what |
//! |-------|---------|------|
//! | 0 | `units`, `lock`, `driver`, `admission`, `log_limit`, `out_queue`, `metrics`, `trace_context`, `upstream`, `drain`, `publish_auth`, `play_auth`, `webhook`, `quota` | units and small helpers, hooks, the drain state drivers read, who may publish (stream keys, signed tokens, the webhook) and play (signed URLs of private streams, the webhook), admission quotas per app |
//! | 1 | `settings` | plain setting values with their defaults (no clap) |
//! | 2 | `hub` | streams, publishers, viewers, the media log |
//! | 3 | `hls`, `playout`, `recording`, `transcode` | per-stream HLS state, HLS sessions and routes; recordings of the segmenter's output; renditions of a ladder (an ffmpeg per stream, fed from the hub, publishing back into it); files played out as live streams on a schedule |
//! | 4 | `catalog`, `rtmp`, `http`, `registry`, `placement`, `peers`, `relay_feed`, `relayed_publish`, `forward`, `rendition_claims`, `playout_cluster`, `relay_source`, `relay_tls`, `tls`, `load_report`, `orders` | delivery drivers and cluster glue (`orders`: carrying out drain and kick orders; `tls`: the HTTPS and RTMPS certificate; `catalog`: this node's items in the content catalog) |
//! | 5 | `config` | flags, `SLUICE_*` variables and the TOML file, into settings |
//! | 6 | `server`, `runtime` | wiring a node together; process set-up |
//!
//! The hub sits below HLS: it does not call the HLS code, it calls a hook
//! ([`hub::hls_hook::HlsHook`]) that the server installs with [`hls::HlsStreams`], the same
//! way an edge installs its [`upstream::Upstream`]. The publisher feeds each message through
//! that hook and gets back the segment stamp to store on it. (Moving the segmenter state
//! into a leaf module under the hub was the alternative; the hook keeps all HLS code in one
//! module above the hub, and the hub testable without it.)
//!
//! Where new code goes: a parser or unit type in layer 0; a new setting in `settings` (its
//! value and default), `config::args` (its flag) and the example files; a new protocol driver
//! or cluster adapter in layer 4; only `server` wires modules together.

// Layer 0: units and small helpers.
pub mod admission;
pub mod drain;
pub mod driver;
pub mod lock;
pub mod log_limit;
pub mod metrics;
pub mod out_queue;
pub mod play_auth;
pub mod publish_auth;
pub mod quota;
pub mod trace_context;
pub mod units;
pub mod upstream;
pub mod webhook;
// Layer 1: settings values.
pub mod settings;
// Layer 2: the hub.
pub mod hub;
// Layer 3: HLS state, recordings and transcoding.
pub mod hls;
pub mod playout;
pub mod recording;
pub mod transcode;
// Layer 4: delivery drivers and cluster glue.
pub mod catalog;
pub mod forward;
pub mod http;
pub mod load_report;
pub mod orders;
pub mod peers;
pub mod placement;
pub mod playout_cluster;
pub mod registry;
pub mod relay_feed;
pub mod relay_source;
pub mod relay_tls;
pub mod relayed_publish;
pub mod rendition_claims;
pub mod rtmp;
pub mod tls;
// Layer 5: configuration sources.
pub mod config;
// Layer 6: wiring and process set-up.
pub mod runtime;
pub mod server;
