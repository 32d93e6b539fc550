//! `sluice-origin`: accepts RTMP publishers. Without `--etcd` it runs standalone, serving
//! viewers itself over RTMP and HTTP-FLV.

use clap::Parser;
use sluice_node::config::{parse_with_file, NodeArgs};

/// Sluice origin node: RTMP ingest; standalone, also RTMP and HTTP-FLV playback.
///
/// Publish:  rtmp://HOST:1935/APP/STREAM
/// Play:     rtmp://HOST:1935/APP/STREAM  or  http://HOST:8080/APP/STREAM.flv
/// Every flag is also a SLUICE_* environment variable and a key of the --config TOML file
/// (flag beats env beats file).
#[derive(Debug, Parser)]
#[command(name = "sluice-origin", version, verbatim_doc_comment)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> anyhow::Result<()> {
    let cli: Cli = parse_with_file()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if cli.node.worker_threads > 0 {
        builder.worker_threads(cli.node.worker_threads);
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async {
        let _tracing = sluice_node::runtime::init_tracing(
            &cli.node.log,
            &cli.node.log_format,
            cli.node.otlp_endpoint.as_deref(),
            "sluice-origin",
        )?;
        sluice_node::server::run_standalone(cli.node).await
    })
}
