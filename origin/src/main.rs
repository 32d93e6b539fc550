//! `sluice-origin`: accepts RTMP publishers. Without `--etcd` it runs standalone, serving
//! viewers itself over RTMP, HTTP-FLV and LL-HLS; with `--etcd` it claims its streams in the
//! cluster registry and serves them to edges over the QUIC relay (`--relay-listen`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_node::config::{self, NodeArgs, OriginArgs};
use sluice_node::server::NodeOptions;

/// Sluice origin node: RTMP ingest; standalone, also RTMP, HTTP-FLV and LL-HLS playback.
///
/// Publish:  rtmp://HOST:1935/APP/STREAM
/// Play:     rtmp://HOST:1935/APP/STREAM  or  http://HOST:8080/APP/STREAM.flv
///           or  http://HOST:8080/APP/STREAM.m3u8
/// Cluster:  --etcd http://127.0.0.1:2379 --relay-listen 127.0.0.1:7000 --tls-dir DIR
/// Every flag is also a SLUICE_* environment variable and a key of the --config TOML file
/// (flag beats env beats file beats default; see sluice-origin.example.toml).
#[derive(Debug, Parser)]
#[command(name = "sluice-origin", version, verbatim_doc_comment)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    origin: OriginArgs,

    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a development certificate set for the relay: a cluster CA (ca.pem, ca.key) and
    /// one certificate and key per node (NODE.pem, NODE.key), then exit.
    GenCerts {
        /// Directory to write into (created if missing; existing files are overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Node ids to issue certificates for, comma-separated (origins and edges).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let (cli, matches) =
        config::parse_args::<Cli, _>(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if let Some(Command::GenCerts { out, nodes }) = &cli.command {
        let names: Vec<&str> = nodes.iter().map(String::as_str).collect();
        sluice_relay::certs::generate(out, &names)
            .with_context(|| format!("writing certificates to {}", out.display()))?;
        println!("wrote ca.pem, ca.key and {} node certificates to {}", names.len(), out.display());
        return Ok(());
    }
    let (node, origin) =
        config::origin_settings(&cli.node, &cli.origin, &matches).unwrap_or_else(|e| e.exit());
    let mut options = NodeOptions::origin();
    options.relay_listen = origin.relay_listen;
    sluice_node::runtime::run_main(
        &node.clone(),
        "sluice-origin",
        sluice_node::server::run(node, options),
    )
}
