//! `sluice-control-plane`: tells players which edge to use and reports the cluster's capacity.
//!
//! The control plane is stateless: it learns nodes, streams and loads from etcd through the same
//! watch cache the nodes use, so any number of replicas answer alike.
//!
//! # Modules (each imports only from those listed after it)
//!
//! ```text
//! serve      one replica: the etcd cache, both ports, the token layers, TLS, gRPC spans
//! config     the command line: flags and SLUICE_* variables
//! http       /play/APP/STREAM.flv|.m3u8|.json, /healthz, /readyz, /metrics over the service
//! page       the cluster page and its assets, compiled in (uPlot from web/node_modules)
//! api        /api/cluster: nodes, streams, totals as JSON (the gRPC figures, via convert)
//! grpc       sluice.control.v1.ControlPlane over the service (translates only)
//! keda       KEDA's external scaler (externalscaler.ExternalScaler) over the service
//! watch      the Watch event stream: events from successive snapshots
//! admin      drain, undrain, kick: orders written to etcd
//! ladders    set, delete, list transcoding ladders: written to etcd, read from the cache
//! schedule   add, remove, list playout entries: written to etcd, states from load reports
//! catalog    search, show, describe catalog items: the database the origins write (--catalog)
//! recordings list, show, delete recordings: the origins' APIs asked and their answers merged
//! metrics    /metrics: the replica's counters and the cluster's figures (prometheus-client)
//! convert    cluster records as protobuf messages, request fields as cluster types
//! auth       the bearer token: which paths need it, constant-time check, gRPC and HTTP layers
//! tls        certificate and key for both ports, the HTTPS accept loop
//! service    the replica's state: watch cache, balance factor, pending assignments
//! counters   the replica's own gauges and counters (watchers, refused calls) for /metrics
//! view       answers from a cache snapshot: eligible edges, URLs, ingest home, totals (sans-IO)
//! simulate   strategies compared on a Zipf audience (benchmark table, tests)
//! lock       the one poison-tolerant mutex lock
//! grpc_trace a span per gRPC call (method, peer), the gRPC port's outermost layer
//! assign     consistent hashing with bounded loads, weighted by capacity (sans-IO)
//! origin_api the HTTP/1 client of an origin's recordings API: token, deadline, capped body
//! ```

pub mod admin;
pub mod api;
pub mod assign;
pub mod auth;
pub mod catalog;
pub mod config;
pub mod convert;
pub mod counters;
pub mod grpc;
pub mod grpc_trace;
pub mod http;
pub mod keda;
pub mod ladders;
mod lock;
pub mod metrics;
pub mod origin_api;
pub mod page;
pub mod play_sign;
pub mod recordings;
pub mod schedule;
pub mod serve;
pub mod service;
pub mod simulate;
pub mod tls;
pub mod view;
pub mod watch;

pub use assign::{AssignError, Assigner, BalanceFactor, EdgeLoad, DEFAULT_BALANCE_FACTOR};
