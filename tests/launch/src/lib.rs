//! One way to start each process of a local Sluice cluster, shared by the end-to-end tests
//! (`sluice-tests`), the registry tests of `sluice-cluster`, the benchmark scripts and
//! `deploy/local/cluster.sh` (through the `sluice-launch` binary):
//!
//! - [`etcd::Etcd`]: a single-member etcd on loopback, data on /dev/shm, healthy before it is
//!   returned;
//! - [`certs::gen_certs`]: a development CA and node certificates, written by
//!   `sluice-origin gen-certs` (running the binary keeps this crate free of Sluice crates, so
//!   `sluice-cluster` can dev-depend on it without a cycle);
//! - [`node::Node`]: a `sluice-origin` or `sluice-edge` with the given flags, returned once it
//!   printed its `listening` line (and, when asked, once its `/readyz` answers 200);
//! - [`postgres::Postgres`]: a PostgreSQL server on loopback for one test (the catalog's
//!   database in a cluster);
//! - [`service::Service`]: a process with no `listening` line (`sluice-control-plane`),
//!   returned once `/readyz` answers 200 on the HTTP address its flags give.
//!
//! Every process is held by a [`process::ChildGuard`]: dropping the handle stops it (SIGTERM,
//! then SIGKILL after a grace period). The binary detaches them instead (`detach`), leaving
//! the bookkeeping (pid files, `down`) to the script that called it.

pub mod certs;
pub mod error;
pub mod etcd;
pub mod http;
pub mod node;
pub mod postgres;
pub mod process;
pub mod s3;
pub mod service;

pub use error::LaunchError;
pub use etcd::{Etcd, EtcdServerTls, EtcdSpec};
pub use node::{Node, NodeSpec};
pub use postgres::Postgres;
pub use process::{kill, ChildGuard, Signal};
pub use s3::S3Server;
pub use service::{Service, ServiceSpec};
