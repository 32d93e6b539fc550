//! `sluice-control-plane`: tells players which edge to use and reports the cluster's capacity.
//!
//! The control plane is stateless: it learns nodes, streams and loads from etcd through the same
//! watch cache the nodes use, so any number of replicas answer alike.
//!
//! # Modules (each imports only from those listed after it)
//!
//! ```text
//! http       /play/APP/STREAM.flv|.m3u8|.json, /healthz, /readyz, /metrics over the service
//! grpc       sluice.control.v1.ControlPlane over the service (translates only)
//! watch      the Watch event stream: events from successive snapshots
//! admin      drain, undrain, kick: orders written to etcd
//! convert    cluster records as protobuf messages, request fields as cluster types
//! service    the replica's state: watch cache, balance factor, pending assignments
//! counters   the replica's own gauges and counters (watchers, refused calls) for /metrics
//! view       answers from a cache snapshot: eligible edges, URLs, ingest home, totals (sans-IO)
//! simulate   strategies compared on a Zipf audience (benchmark table, tests)
//! lock       the one poison-tolerant mutex lock
//! assign     consistent hashing with bounded loads, weighted by capacity (sans-IO)
//! ```

pub mod admin;
pub mod assign;
pub mod convert;
pub mod counters;
pub mod grpc;
pub mod http;
mod lock;
pub mod service;
pub mod simulate;
pub mod view;
pub mod watch;

pub use assign::{AssignError, Assigner, BalanceFactor, EdgeLoad, DEFAULT_BALANCE_FACTOR};
