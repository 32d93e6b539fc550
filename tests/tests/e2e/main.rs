//! The end-to-end tests, one module per area, in ONE test binary: each binary of this crate links
//! the whole dependency tree, and on two cores eighteen of them cost more link time than the
//! tests take to compile. nextest still runs every test in a process of its own.
//!
//! One area: `cargo nextest run -p sluice-tests -E 'test(/^hostile::/)'`.

mod abuse_http;
mod abuse_rtmp;
mod audio_only;
mod browser;
mod browser_abr;
mod browser_recordings;
mod catalog;
mod chaos;
mod cluster_origins;
mod cluster_page;
mod control_plane;
mod control_plane_admin;
mod control_plane_replicas;
mod dash;
mod deploy_local;
mod edge_hls;
mod edge_kill;
mod edges;
mod etcd_outage;
mod etcd_tls;
mod figures;
mod flood;
mod flv_wire;
mod forged_forward;
mod helm_chart;
mod hevc;
mod hls;
mod hls_ts;
mod home_kill;
mod hostile;
mod http_api;
mod https;
mod layers;
mod limits;
mod link_cuts;
mod media_changes;
mod orders;
mod otlp;
mod playout;
mod rtmps;
mod secrets;

mod placement;
mod play_auth;
mod play_webhook;
mod publish_auth;
mod publish_play;
mod quotas;
mod recording;
mod recording_api;
mod recording_bounds;
mod recording_failover;
mod recording_mp4;
mod recording_s3;
mod rules;
mod slow_viewer;
mod sluicectl;
mod sluicectl_catalog;
mod sluicectl_ladders;
mod sluicectl_recordings;
mod sluicectl_schedule;
mod transcode;
mod transcode_cluster;
mod vod_edge;
mod webhook;
