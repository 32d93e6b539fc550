//! A real cluster for tests: an etcd of its own, a development certificate set written by
//! `sluice-origin gen-certs`, and origins and edges started with the flags they share.

use std::path::Path;

use sluice_cluster::types::NodeId;
use sluice_cluster::{Ring, DEFAULT_VNODES};
use sluice_media::stream_name::StreamKey;

use crate::etcd::Etcd;
use crate::origin::{Origin, TestDir};
use crate::paths;

/// Lease TTL of test clusters: short, so expiry-driven behaviour is quick.
pub const TEST_LEASE_TTL: &str = "2s";

/// Writes a development CA and certificates for `nodes` into `dir` with `sluice-origin gen-certs`.
pub fn gen_certs(dir: &Path, nodes: &[&str]) {
    sluice_launch::certs::gen_certs(&paths::binary("sluice-origin"), dir, nodes)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// An etcd, a key prefix and certificates for the named nodes.
pub struct TestCluster {
    pub etcd: Etcd,
    pub prefix: String,
    certs: TestDir,
}

impl TestCluster {
    /// `tag` makes the key prefix unique to the test; `nodes` get certificates.
    pub fn new(tag: &str, nodes: &[&str]) -> TestCluster {
        let etcd = Etcd::start();
        let prefix = format!("/{tag}{}", std::process::id());
        let certs = TestDir::new("certs");
        gen_certs(certs.path(), nodes);
        TestCluster { etcd, prefix, certs }
    }

    pub fn certs_dir(&self) -> &Path {
        self.certs.path()
    }

    /// The flags every node of this cluster shares, for node `id`.
    pub fn args(&self, id: &str) -> Vec<String> {
        let tls = self.certs.path().to_str().expect("utf-8 path");
        [
            "--etcd",
            &self.etcd.endpoint(),
            "--etcd-prefix",
            &self.prefix,
            "--lease-ttl",
            TEST_LEASE_TTL,
            "--node-id",
            id,
            "--tls-dir",
            tls,
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    /// An origin with a relay listener, plus `extra` flags.
    pub fn origin(&self, id: &str, extra: &[&str]) -> Origin {
        let mut args = self.args(id);
        args.extend(["--relay-listen", "127.0.0.1:0"].iter().chain(extra).map(ToString::to_string));
        let o = Origin::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.relay.is_some(), "origin {id} prints its relay address");
        o
    }

    /// An edge, plus `extra` flags.
    pub fn edge(&self, id: &str, extra: &[&str]) -> Origin {
        let mut args = self.args(id);
        args.extend(extra.iter().map(ToString::to_string));
        Origin::start_edge(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// The home of `live/name` on the ring over `origins` (as every node computes it).
pub fn home(origins: &[&str], name: &str) -> String {
    let ring = Ring::new(origins.iter().map(|o| NodeId::new(o).expect("node id")), DEFAULT_VNODES);
    let key = StreamKey::parse("live", name).expect("stream name").0;
    ring.owner(&key).expect("non-empty ring").to_string()
}

/// The first name `{stem}{i}` for which `pick(i-th name)` holds.
pub fn find_name(stem: &str, pick: impl Fn(&str) -> bool) -> String {
    (0..10_000)
        .map(|i| format!("{stem}{i}"))
        .find(|n| pick(n))
        .expect("a stream name with the wanted placement")
}
