//! Property test of the assignment: random capacities and starting loads, 100 000 viewers over
//! 500 streams with Zipf popularity and 20 edges.
//!
//! 1. No edge exceeds its bound: every viewer lands on an edge whose load before it was below
//!    `min(capacity, ceil(c * (M + 1) * capacity / C))`, so at the end each edge holds at most
//!    the larger of its starting load and its final bound.
//! 2. Concentration: the distinct (stream, edge) pairs stay within
//!    `min(c / (c - 1), 4)` times the minimum any assignment within the same bounds could
//!    reach, `sum over streams of max(1, ceil(viewers_s / B))`, `B` being the largest final
//!    per-edge bound (no edge can hold more of one stream than that).
//!
//! Why `c / (c - 1)`: a viewer leaves its stream's first ring edge only while that edge is at
//! its bound. Edges at their bound hold together at least `c` times their share of the load, so
//! at any moment they are at most `1/c` of the capacity; a walk from a stream's hash meets an
//! open edge after `1 / (1 - 1/c) = c / (c - 1)` edges on average (5 at c = 1.25), and a
//! stream's viewers spread over the edges its walks reach. Why 4 as well: in practice the bound
//! rises with every viewer and only some edges are at it at a time, so cold streams (most of a
//! Zipf audience) stay on one or two edges and only hot ones spill further. Measured here: about
//! 2.0x at c = 1.25 (1.6x on equal edges starting empty, 805 pairs against about 503), up to
//! 2.9x at c = 1.1, 1.0-1.4x above c = 1.5; the random starting loads (up to a third of
//! capacity) are what push a stream's first viewers off its full home and back later. Either
//! limit catches a regression to scattering placement (least-loaded needs about 18x here).
//! `--nocapture` prints each case's ratio.

use proptest::prelude::*;
use sluice_cluster::NodeId;
use sluice_control_plane::simulate::{stream_name, zipf_audience};
use sluice_control_plane::{Assigner, BalanceFactor, EdgeLoad};
use std::collections::HashSet;

const EDGES: usize = 20;
const STREAMS: u32 = 500;
const VIEWERS: usize = 100_000;
const MAX_PAIR_FACTOR: f64 = 4.0;

fn edges_strategy() -> impl Strategy<Value = Vec<(u64, u64)>> {
    // (capacity, starting load): capacities from 6 000 to 30 000 viewers (enough room in
    // total for the audience), starting loads up to a third of the capacity.
    proptest::collection::vec(
        (6_000u64..=30_000).prop_flat_map(|cap| (Just(cap), 0..=cap / 3)),
        EDGES,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn bounded_and_concentrated(
        edges in edges_strategy(),
        seed in any::<u64>(),
        factor in prop_oneof![Just(1.25f64), 1.1f64..2.0],
    ) {
        let factor = BalanceFactor::new(factor).unwrap();
        let edges: Vec<EdgeLoad> = edges
            .iter()
            .enumerate()
            .map(|(i, &(capacity, load))| EdgeLoad {
                id: NodeId::new(&format!("edge-{i}")).unwrap(),
                capacity,
                load,
            })
            .collect();
        let mut assigner = Assigner::new(edges, factor);
        let start: Vec<u64> = assigner.edges().iter().map(|e| e.load).collect();
        let audience = zipf_audience(STREAMS, VIEWERS, 1.0, seed);
        let mut viewers = vec![0u64; STREAMS as usize];
        let mut pairs = HashSet::new();
        for &stream in &audience {
            let index = assigner.assign(&stream_name(stream)).unwrap();
            let edge = assigner.edge(index);
            // The load after placing includes this viewer; the bound was computed for M + 1
            // with M the total before it, which is the total now.
            let total_before = assigner.total_load() - 1;
            let bound = (factor.get() * (total_before + 1) as f64 * edge.capacity as f64
                / assigner.edges().iter().map(|e| e.capacity).sum::<u64>() as f64)
                .ceil() as u64;
            prop_assert!(edge.load <= bound.min(edge.capacity),
                "edge {} at {} over bound {}", edge.id, edge.load, bound);
            viewers[stream as usize] += 1;
            pairs.insert((stream, index));
        }
        let final_limits: Vec<u64> = (0..assigner.edges().len()).map(|i| assigner.limit(i)).collect();
        for (i, e) in assigner.edges().iter().enumerate() {
            prop_assert!(e.load <= start[i].max(final_limits[i]));
        }
        let b = final_limits.iter().copied().max().unwrap();
        let minimum: u64 = viewers.iter().filter(|&&v| v > 0).map(|&v| v.div_ceil(b).max(1)).sum();
        let ratio = pairs.len() as f64 / minimum as f64;
        eprintln!("c = {:.2}: {} pairs, minimum {minimum}, ratio {ratio:.2}", factor.get(), pairs.len());
        let allowed = (factor.get() / (factor.get() - 1.0)).min(MAX_PAIR_FACTOR);
        prop_assert!(ratio <= allowed,
            "{} pairs against a minimum of {minimum}: {ratio:.2} > {allowed:.2}", pairs.len());
    }
}
