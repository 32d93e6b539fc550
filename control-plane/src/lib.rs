//! `sluice-control-plane`: tells players which edge to use and reports the cluster's capacity.
//!
//! The control plane is stateless: it learns nodes, streams and loads from etcd through the same
//! watch cache the nodes use, so any number of replicas answer alike.
//!
//! # Modules (each imports only from those listed after it)
//!
//! ```text
//! view       answers from a cache snapshot: eligible edges, URLs, ingest home, totals (sans-IO)
//! simulate   strategies compared on a Zipf audience (benchmark table, tests)
//! assign     consistent hashing with bounded loads, weighted by capacity (sans-IO)
//! ```

pub mod assign;
pub mod simulate;
pub mod view;

pub use assign::{AssignError, Assigner, BalanceFactor, EdgeLoad, DEFAULT_BALANCE_FACTOR};
