//! A real cluster for tests: an etcd of its own, a development certificate set written by
//! `sluice-origin gen-certs`, and origins and edges started with the flags they share.

use std::path::{Path, PathBuf};

use sluice_cluster::types::NodeId;
use sluice_cluster::{Ring, DEFAULT_VNODES};
use sluice_media::stream_name::StreamKey;

use crate::etcd::Etcd;
use crate::origin::{Origin, TestDir};
use crate::paths;

/// Lease TTL of test clusters: short, so expiry-driven behaviour is quick.
pub const TEST_LEASE_TTL: &str = "2s";

/// Writes a development CA and certificates for `nodes` into `dir` with `sluice-origin gen-certs`
/// (nothing without nodes: a cluster of etcd and a control plane needs no relay certificates).
pub fn gen_certs(dir: &Path, nodes: &[&str]) {
    if nodes.is_empty() {
        return;
    }
    sluice_launch::certs::gen_certs(&paths::binary("sluice-origin"), dir, nodes)
        .unwrap_or_else(|e| panic!("{e}"));
}

/// An etcd, a key prefix and certificates for the named nodes.
pub struct TestCluster {
    pub etcd: Etcd,
    pub prefix: String,
    certs: TestDir,
    /// etcd speaks TLS only and wants client certificates (each node presents its own).
    etcd_tls: bool,
    /// etcd has authentication on: nodes log in as this user, password in this file.
    etcd_auth: Option<(String, PathBuf)>,
}

impl TestCluster {
    /// `tag` makes the key prefix unique to the test; `nodes` get certificates.
    pub fn new(tag: &str, nodes: &[&str]) -> TestCluster {
        let etcd = Etcd::start();
        let prefix = format!("/{tag}{}", std::process::id());
        let certs = TestDir::new("certs");
        gen_certs(certs.path(), nodes);
        TestCluster { etcd, prefix, certs, etcd_tls: false, etcd_auth: None }
    }

    /// [`TestCluster::new`] with etcd in the namespace of `host` (a [`crate::netns::Net`]
    /// host); start its nodes on hosts of the same network ([`TestCluster::origin_on`]).
    pub fn with_etcd_on(tag: &str, nodes: &[&str], host: &crate::netns::Host) -> TestCluster {
        let etcd = Etcd::start_on(host);
        let prefix = format!("/{tag}{}", std::process::id());
        let certs = TestDir::new("certs");
        gen_certs(certs.path(), nodes);
        TestCluster { etcd, prefix, certs, etcd_tls: false, etcd_auth: None }
    }

    /// [`TestCluster::new`] with an etcd that serves TLS only and requires client
    /// certificates signed by the cluster's CA (`etcd` gets a certificate too).
    pub fn with_tls_etcd(tag: &str, nodes: &[&str]) -> TestCluster {
        let prefix = format!("/{tag}{}", std::process::id());
        let certs = TestDir::new("certs");
        let mut all = nodes.to_vec();
        all.push("etcd");
        gen_certs(certs.path(), &all);
        let etcd = Etcd::start_tls(certs.path());
        TestCluster { etcd, prefix, certs, etcd_tls: true, etcd_auth: None }
    }

    /// [`TestCluster::with_tls_etcd`] with etcd's authentication on as well: a user `user`
    /// whose role may read and write only under the cluster's prefix, with `password` (in a
    /// file the nodes are given), and the `root` user etcd needs for that. `nodes` must include
    /// `etcdctl`, the certificate the set-up runs `etcdctl` with.
    pub fn with_tls_etcd_and_password(
        tag: &str,
        nodes: &[&str],
        user: &str,
        password: &str,
    ) -> TestCluster {
        let mut c = TestCluster::with_tls_etcd(tag, nodes);
        let root_password = format!("root-{}", std::process::id());
        let prefix = c.prefix.clone();
        let steps: Vec<Vec<String>> = [
            vec!["user", "add", &format!("root:{root_password}")],
            vec!["user", "grant-role", "root", "root"],
            vec!["role", "add", user],
            vec!["role", "grant-permission", user, "readwrite", &prefix, "--prefix=true"],
            vec!["user", "add", &format!("{user}:{password}")],
            vec!["user", "grant-role", user, user],
            vec!["auth", "enable"],
        ]
        .into_iter()
        .map(|step| step.into_iter().map(str::to_string).collect())
        .collect();
        for step in steps {
            let mut args = c.etcdctl_tls_args();
            args.extend(step);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            c.etcd.ctl(&args).unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"));
        }
        let file = c.certs.path().join("etcd-password");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        c.etcd_auth = Some((user.to_string(), file));
        c
    }

    /// `etcdctl`'s TLS flags for this cluster's etcd (the `etcdctl` certificate).
    fn etcdctl_tls_args(&self) -> Vec<String> {
        let file = |name: &str| self.certs.path().join(name).display().to_string();
        vec![
            format!("--cacert={}", file("ca.pem")),
            format!("--cert={}", file("etcdctl.pem")),
            format!("--key={}", file("etcdctl.key")),
        ]
    }

    /// The flags that reach this cluster's etcd as `id` (endpoint, prefix, and with a TLS etcd
    /// the CA and `id`'s certificate).
    pub fn etcd_args(&self, id: &str) -> Vec<String> {
        let mut args = vec![
            "--etcd".to_string(),
            self.etcd.endpoint(),
            "--etcd-prefix".to_string(),
            self.prefix.clone(),
        ];
        if self.etcd_tls {
            let file = |name: String| self.certs.path().join(name).display().to_string();
            args.extend([
                "--etcd-ca-file".to_string(),
                file("ca.pem".into()),
                "--etcd-cert-file".to_string(),
                file(format!("{id}.pem")),
                "--etcd-key-file".to_string(),
                file(format!("{id}.key")),
            ]);
        }
        if let Some((user, file)) = &self.etcd_auth {
            args.extend([
                "--etcd-user".to_string(),
                user.clone(),
                "--etcd-password-file".to_string(),
                file.display().to_string(),
            ]);
        }
        args
    }

    /// The file with the etcd user's password ([`TestCluster::with_tls_etcd_and_password`]).
    pub fn etcd_password_file(&self) -> Option<&Path> {
        self.etcd_auth.as_ref().map(|(_, file)| file.as_path())
    }

    /// Whether etcd speaks TLS only ([`TestCluster::with_tls_etcd`]).
    pub fn etcd_tls(&self) -> bool {
        self.etcd_tls
    }

    pub fn certs_dir(&self) -> &Path {
        self.certs.path()
    }

    /// The flags every node of this cluster shares, for node `id`.
    pub fn args(&self, id: &str) -> Vec<String> {
        let tls = self.certs.path().to_str().expect("utf-8 path");
        let mut args = self.etcd_args(id);
        args.extend(
            ["--lease-ttl", TEST_LEASE_TTL, "--node-id", id, "--tls-dir", tls]
                .iter()
                .map(ToString::to_string),
        );
        args
    }

    /// An origin with a relay listener, plus `extra` flags.
    pub fn origin(&self, id: &str, extra: &[&str]) -> Origin {
        let mut args = self.args(id);
        args.extend(["--relay-listen", "127.0.0.1:0"].iter().chain(extra).map(ToString::to_string));
        let o = Origin::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(o.relay.is_some(), "origin {id} prints its relay address");
        o
    }

    /// An origin in the namespace of `host`, listening (and advertising) on its address.
    pub fn origin_on(&self, host: &crate::netns::Host, id: &str, extra: &[&str]) -> Origin {
        let relay = format!("{}:0", host.addr);
        let mut args = self.args(id);
        args.extend(["--relay-listen", &relay].iter().chain(extra).map(ToString::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = Origin::try_start_on(host, "sluice-origin", &args)
            .unwrap_or_else(|e| panic!("starting sluice-origin {id}: {e}"));
        assert!(o.relay.is_some(), "origin {id} prints its relay address");
        o
    }

    /// An edge in the namespace of `host`, listening on its address.
    pub fn edge_on(&self, host: &crate::netns::Host, id: &str, extra: &[&str]) -> Origin {
        let mut args = self.args(id);
        args.extend(extra.iter().map(ToString::to_string));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Origin::try_start_on(host, "sluice-edge", &args)
            .unwrap_or_else(|e| panic!("starting sluice-edge {id}: {e}"))
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

/// The home and then the standbys of `live/{name}` among `origins` (`n` of them at most).
pub fn owners(origins: &[&str], name: &str, n: usize) -> Vec<String> {
    let ring = Ring::new(origins.iter().map(|o| NodeId::new(o).expect("node id")), DEFAULT_VNODES);
    let key = StreamKey::parse("live", name).expect("stream name").0;
    ring.owners(&key, n).iter().map(ToString::to_string).collect()
}

/// The first name `{stem}{i}` for which `pick(i-th name)` holds.
pub fn find_name(stem: &str, pick: impl Fn(&str) -> bool) -> String {
    (0..10_000)
        .map(|i| format!("{stem}{i}"))
        .find(|n| pick(n))
        .expect("a stream name with the wanted placement")
}
