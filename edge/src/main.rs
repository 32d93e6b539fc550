//! `sluice-edge`: serves viewers (RTMP, HTTP-FLV, LL-HLS) with streams pulled from the
//! cluster's origins over the QUIC relay, one upstream per stream however many viewers watch.

use std::sync::Arc;

use clap::Parser;
use sluice_cluster::types::Role;
use sluice_edge::args::PullSettings;
use sluice_edge::upstream::RelayUpstream;
use sluice_node::config::{self, EdgeArgs, NodeArgs};
use sluice_node::server::NodeOptions;
use sluice_node::upstream::Upstream;

/// Sluice edge node: plays the cluster's streams to viewers.
///
/// Play:     rtmp://HOST:1935/APP/STREAM  or  http://HOST:8080/APP/STREAM.flv
///           or  http://HOST:8080/APP/STREAM.m3u8
/// Needs:    --etcd http://127.0.0.1:2379 (to find origins) and --tls-dir DIR (relay
///           certificates, see `sluice-origin gen-certs`) or --insecure-dev.
/// Every flag is also a SLUICE_* environment variable and a key of the --config TOML file
/// (flag beats env beats file beats default; see sluice-edge.example.toml).
#[derive(Debug, Parser)]
#[command(name = "sluice-edge", version, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    edge: EdgeArgs,

    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> anyhow::Result<()> {
    let (cli, matches) =
        config::parse_args::<Cli, _>(std::env::args_os()).unwrap_or_else(|e| e.exit());
    let (node, edge) =
        config::edge_settings(&cli.node, &cli.edge, &matches).unwrap_or_else(|e| e.exit());
    if !node.cluster.is_clustered() {
        anyhow::bail!("sluice-edge needs --etcd (the cluster registry where it finds origins); for a single server run sluice-origin");
    }
    let settings = PullSettings::from(&edge);
    let options = NodeOptions {
        role: Role::Edge,
        relay_listen: None,
        upstream: Some(Box::new(move |ctx| RelayUpstream::new(ctx, settings) as Arc<dyn Upstream>)),
        // Edges take no publishers, and record nothing (the home origin does).
        publish_auth: None,
        record: None,
        transcode: None,
        catalog: None,
        playout_dir: None,
        vod_cache_size: Some(edge.vod_cache_size),
    };
    sluice_node::runtime::run_main(
        &node.clone(),
        "sluice-edge",
        sluice_node::server::run(node, options),
    )
}
