//! `sluice-control-plane`. For now it only prints the assignment simulation table (the gRPC and
//! HTTP service come next): `sluice-control-plane simulate --balance-factor 1.25`.

use clap::{Parser, Subcommand};
use sluice_cluster::NodeId;
use sluice_control_plane::simulate::{compare, table, zipf_audience};
use sluice_control_plane::{BalanceFactor, EdgeLoad};

#[derive(Debug, Parser)]
#[command(name = "sluice-control-plane", version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Compare bounded-load hashing, plain consistent hashing and least-loaded assignment on a
    /// Zipf-distributed audience; prints a Markdown table.
    Simulate {
        /// How far above its capacity-weighted share an edge may go.
        #[arg(long, env = "SLUICE_BALANCE_FACTOR", default_value = "1.25")]
        balance_factor: BalanceFactor,
        #[arg(long, default_value_t = 20)]
        edges: u32,
        /// Viewers each edge is configured for.
        #[arg(long, default_value_t = 20_000)]
        edge_capacity: u64,
        #[arg(long, default_value_t = 500)]
        streams: u32,
        #[arg(long, default_value_t = 100_000)]
        viewers: usize,
        /// Zipf exponent of stream popularity.
        #[arg(long, default_value_t = 1.0)]
        zipf: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

fn main() -> Result<(), sluice_cluster::types::InvalidNodeId> {
    let Args { command } = Args::parse();
    match command {
        Command::Simulate {
            balance_factor,
            edges,
            edge_capacity,
            streams,
            viewers,
            zipf,
            seed,
        } => {
            let edges = (0..edges)
                .map(|i| {
                    Ok(EdgeLoad {
                        id: NodeId::new(&format!("edge-{i}"))?,
                        capacity: edge_capacity,
                        load: 0,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let audience = zipf_audience(streams, viewers, zipf, seed);
            print!("{}", table(&compare(&edges, &audience, balance_factor)));
        }
    }
    Ok(())
}
