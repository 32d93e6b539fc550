//! `sluice-control-plane`: serves the control plane's gRPC API (with KEDA's external scaler,
//! `grpc.health.v1` and server reflection v1 and v1alpha) and its HTTP port, learning the
//! cluster from etcd (see [`sluice_control_plane::serve`]; flags, variables and the TOML file
//! are read by [`sluice_control_plane::config`]). `sluice-control-plane simulate` prints the assignment
//! simulation table instead.

use sluice_cluster::NodeId;
use sluice_control_plane::config::{self, Command};
use sluice_control_plane::simulate::{compare, table, zipf_audience};
use sluice_control_plane::EdgeLoad;

fn main() -> anyhow::Result<()> {
    let args = config::parse(std::env::args_os()).unwrap_or_else(|e| e.exit());
    if let Some(Command::Simulate { edges, edge_capacity, streams, viewers, zipf, seed }) =
        args.command
    {
        let edges = (0..edges)
            .map(|i| {
                Ok(EdgeLoad {
                    id: NodeId::new(&format!("edge-{i}"))?,
                    capacity: edge_capacity,
                    load: 0,
                })
            })
            .collect::<Result<Vec<_>, sluice_cluster::types::InvalidNodeId>>()?;
        let audience = zipf_audience(streams, viewers, zipf, seed);
        print!("{}", table(&compare(&edges, &audience, args.balance_factor)));
        return Ok(());
    }
    tokio::runtime::Runtime::new()?.block_on(async {
        // The nodes' set-up (`--log`, `--log-format`, `--otlp-endpoint`); dropping the guard
        // when the replica stops flushes the spans still buffered.
        let _tracing = sluice_cluster::telemetry::init_tracing(
            &args.log,
            args.log_format,
            args.otlp_endpoint.as_deref(),
            "sluice-control-plane",
        )?;
        sluice_control_plane::serve::serve(args).await
    })
}
