//! A simulation of viewer assignment strategies on a Zipf-distributed audience, for the
//! benchmark table and the tests: bounded-load consistent hashing against plain consistent
//! hashing (every viewer on the stream's first ring edge) and least-loaded assignment (every
//! viewer on the edge with the lowest load against capacity).
//!
//! The two figures that matter for a live cluster: the most loaded edge (what capacity must be
//! provisioned for) and the number of relay streams, i.e. distinct (stream, edge) pairs, each
//! one upstream subscription an origin serves and a copy of the stream crossing the network.
//!
//! Deterministic: the audience comes from a seed (a small SplitMix64 generator, no I/O).

use crate::assign::{Assigner, BalanceFactor, EdgeLoad};
use std::collections::HashSet;
use std::fmt::Write as _;

/// SplitMix64 (Steele, Lea, Flood): tiny, fast, good enough to draw an audience.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The name the simulation gives stream number `index`.
pub fn stream_name(index: u32) -> String {
    format!("live/s{index}")
}

/// `viewers` arrivals over `streams` streams, stream of rank `r` (1-based) drawn with
/// probability proportional to `1 / r^exponent`. Returns each arrival's stream index, in
/// arrival order (popular streams' viewers interleave with everyone else's, as in life).
pub fn zipf_audience(streams: u32, viewers: usize, exponent: f64, seed: u64) -> Vec<u32> {
    if streams == 0 {
        return Vec::new();
    }
    let mut cumulative = Vec::with_capacity(streams as usize);
    let mut sum = 0.0;
    for rank in 1..=streams {
        sum += 1.0 / f64::from(rank).powf(exponent);
        cumulative.push(sum);
    }
    let mut rng = SplitMix64::new(seed);
    (0..viewers)
        .map(|_| {
            let x = rng.next_f64() * sum;
            let index = cumulative.partition_point(|&c| c <= x).min(cumulative.len() - 1);
            // Fits: index < streams, a u32.
            u32::try_from(index).unwrap_or(u32::MAX)
        })
        .collect()
}

/// How viewers are placed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Consistent hashing with bounded loads (what the control plane does).
    BoundedLoad(BalanceFactor),
    /// Plain consistent hashing: the stream's first edge on the ring, whatever its load.
    PlainHash,
    /// The edge with the lowest load against its capacity.
    LeastLoaded,
}

impl Strategy {
    pub fn name(&self) -> String {
        match self {
            Strategy::BoundedLoad(c) => format!("bounded-load (c = {})", c.get()),
            Strategy::PlainHash => "plain consistent hashing".to_string(),
            Strategy::LeastLoaded => "least-loaded".to_string(),
        }
    }
}

/// What one strategy did with one audience.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub strategy: Strategy,
    /// Viewers on the most loaded edge at the end (starting loads included).
    pub max_load: u64,
    /// The most any edge holds against its capacity-weighted share of the total load
    /// (1.0 = exactly its share).
    pub max_over_share: f64,
    /// Distinct (stream, edge) pairs: the upstream subscriptions origins serve.
    pub relay_streams: usize,
    /// Viewers no edge could take (every edge at capacity).
    pub unplaced: usize,
}

/// Places `audience` (stream indices, see [`zipf_audience`]) on `edges` with `strategy`.
pub fn simulate(edges: &[EdgeLoad], audience: &[u32], strategy: Strategy) -> Outcome {
    let factor = match strategy {
        Strategy::BoundedLoad(c) => c,
        Strategy::PlainHash | Strategy::LeastLoaded => BalanceFactor::default(),
    };
    let mut assigner = Assigner::new(edges.iter().cloned(), factor);
    let mut loads: Vec<u64> = assigner.edges().iter().map(|e| e.load).collect();
    let capacities: Vec<u64> = assigner.edges().iter().map(|e| e.capacity).collect();
    let mut pairs = HashSet::new();
    let mut unplaced = 0;
    for &stream in audience {
        let name = stream_name(stream);
        let chosen = match strategy {
            Strategy::BoundedLoad(_) => assigner.assign(&name).ok(),
            Strategy::PlainHash => assigner.home(&name),
            Strategy::LeastLoaded => least_loaded(&loads, &capacities),
        };
        match chosen {
            Some(index) => {
                if !matches!(strategy, Strategy::BoundedLoad(_)) {
                    loads[index] += 1;
                }
                pairs.insert((stream, index));
            }
            None => unplaced += 1,
        }
    }
    if matches!(strategy, Strategy::BoundedLoad(_)) {
        loads = assigner.edges().iter().map(|e| e.load).collect();
    }
    let total_load: u64 = loads.iter().sum();
    let total_capacity: u64 = capacities.iter().sum();
    let max_over_share = loads
        .iter()
        .zip(&capacities)
        .map(|(&l, &c)| l as f64 / (total_load as f64 * c as f64 / total_capacity as f64))
        .fold(0.0, f64::max);
    Outcome {
        strategy,
        max_load: loads.iter().copied().max().unwrap_or(0),
        max_over_share,
        relay_streams: pairs.len(),
        unplaced,
    }
}

/// The edge with the lowest `(load + 1) / capacity` among those below capacity.
fn least_loaded(loads: &[u64], capacities: &[u64]) -> Option<usize> {
    (0..loads.len()).filter(|&i| loads[i] < capacities[i]).min_by(|&a, &b| {
        let ra = (loads[a] + 1) as f64 / capacities[a] as f64;
        let rb = (loads[b] + 1) as f64 / capacities[b] as f64;
        ra.total_cmp(&rb)
    })
}

/// The three strategies on the same edges and audience.
pub fn compare(edges: &[EdgeLoad], audience: &[u32], factor: BalanceFactor) -> Vec<Outcome> {
    [Strategy::BoundedLoad(factor), Strategy::PlainHash, Strategy::LeastLoaded]
        .into_iter()
        .map(|s| simulate(edges, audience, s))
        .collect()
}

/// A Markdown table of outcomes, for `BENCHMARKS.md`.
pub fn table(outcomes: &[Outcome]) -> String {
    let mut out = String::from(
        "| strategy | max edge load | max load / share | relay streams | unplaced |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {} | {} |",
            o.strategy.name(),
            o.max_load,
            o.max_over_share,
            o.relay_streams,
            o.unplaced
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_cluster::NodeId;

    fn equal_edges(n: usize, capacity: u64) -> Vec<EdgeLoad> {
        (0..n)
            .map(|i| EdgeLoad { id: NodeId::new(&format!("edge-{i}")).unwrap(), capacity, load: 0 })
            .collect()
    }

    #[test]
    fn zipf_favours_low_ranks_and_is_deterministic() {
        let a = zipf_audience(500, 20_000, 1.0, 7);
        assert_eq!(a, zipf_audience(500, 20_000, 1.0, 7));
        let count = |s: u32| a.iter().filter(|&&x| x == s).count();
        // Rank 1 gets about 1/H(500) ≈ 15 % of viewers; rank 100 about 0.15 %.
        assert!(count(0) > 2_000, "{}", count(0));
        assert!(count(0) > 10 * count(99));
        assert!(a.iter().all(|&s| s < 500));
        assert!(zipf_audience(0, 10, 1.0, 1).is_empty());
    }

    #[test]
    fn bounded_load_beats_plain_hashing_on_load_and_least_loaded_on_relays() {
        let edges = equal_edges(20, 20_000);
        let audience = zipf_audience(500, 100_000, 1.0, 42);
        let outcomes = compare(&edges, &audience, BalanceFactor::default());
        let (bounded, plain, least) = (&outcomes[0], &outcomes[1], &outcomes[2]);
        eprintln!("{}", table(&outcomes));
        assert_eq!(bounded.unplaced + plain.unplaced + least.unplaced, 0);
        // Bounded: within ceil(1.25 * 100 000 / 20) = 6 250 viewers.
        assert!(bounded.max_load <= 6_250, "{}", bounded.max_load);
        assert!(bounded.max_load < plain.max_load);
        assert!(bounded.relay_streams < least.relay_streams);
        // Plain hashing relays each stream once; least-loaded nearly everywhere.
        assert_eq!(plain.relay_streams, 500);
    }
}
