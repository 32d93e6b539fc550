//! Test helpers: a real etcd server per test, a cuttable TCP proxy, and a fixture trait so one
//! test body runs against both registries.
#![allow(clippy::disallowed_methods)] // real etcd against real time: the test reads the real clock
#![allow(dead_code)]

use sluice_cluster::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

pub const TTL: Duration = Duration::from_secs(2);

pub fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

pub fn stream(name: &str) -> sluice_media::stream_name::StreamKey {
    sluice_media::stream_name::StreamKey::parse("live", name).unwrap().0
}

pub fn info(origin: &str) -> StreamInfo {
    StreamInfo {
        origin: id(origin),
        codecs: vec!["h264".into(), "aac".into()],
        started_at_ms: 1,
        rendition_of: None,
        playout: false,
    }
}

pub fn config(node: &str, prefix: &str) -> RegistryConfig {
    let mut cfg = RegistryConfig::new(id(node), Role::Origin).with_prefix(prefix).with_ttl(TTL);
    cfg.claim_margin = Duration::from_millis(800);
    cfg.claim_retry = Duration::from_millis(100);
    cfg
}

/// Wait until `pred` holds for the registry's snapshot, or panic after `limit`.
pub async fn wait_snapshot(
    reg: &dyn Registry,
    limit: Duration,
    what: &str,
    pred: impl Fn(&Snapshot) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut rx = reg.snapshot();
    let ok = tokio::time::timeout(limit, rx.wait_for(|s| pred(s))).await.is_ok_and(|r| r.is_ok());
    if !ok {
        panic!("timed out after {limit:?} waiting for: {what}; last: {:?}", *rx.borrow());
    }
    start.elapsed()
}

/// How a test body gets registries: memory (one shared store) or etcd (one server).
pub trait Fixture {
    async fn registry(&self, node: &str, prefix: &str) -> Box<dyn Registry>;
    /// Revoke a lease behind the registry's back (an operator, or etcd losing it).
    async fn revoke(&self, lease: i64);
}

pub struct MemoryFixture {
    pub store: MemoryStore,
}

impl MemoryFixture {
    pub fn new() -> MemoryFixture {
        MemoryFixture { store: MemoryStore::new() }
    }
}

impl Fixture for MemoryFixture {
    async fn registry(&self, node: &str, prefix: &str) -> Box<dyn Registry> {
        let reg =
            MemoryRegistry::start(self.store.clone(), config(node, prefix), NodeInfo::default());
        Box::new(reg.await.unwrap())
    }
    async fn revoke(&self, lease: i64) {
        assert!(self.store.revoke_lease(lease));
    }
}

pub struct EtcdFixture {
    pub etcd: EtcdServer,
}

impl Fixture for EtcdFixture {
    async fn registry(&self, node: &str, prefix: &str) -> Box<dyn Registry> {
        let endpoints = [self.etcd.endpoint()];
        let reg = EtcdRegistry::connect(&endpoints, config(node, prefix), NodeInfo::default());
        Box::new(reg.await.unwrap())
    }
    async fn revoke(&self, lease: i64) {
        let mut c = self.etcd.client().await;
        c.lease_revoke(lease).await.unwrap();
    }
}

/// A real single-member etcd on loopback, data on /dev/shm; stopped and removed on drop. Started
/// by the workspace's one etcd launcher (`sluice-launch`).
pub struct EtcdServer {
    etcd: sluice_launch::Etcd,
}

impl EtcdServer {
    pub async fn start() -> EtcdServer {
        // The launcher blocks while etcd comes up: off the test's runtime thread.
        let etcd = tokio::task::spawn_blocking(sluice_launch::Etcd::start)
            .await
            .expect("etcd launcher task")
            .unwrap_or_else(|e| panic!("{e}"));
        EtcdServer { etcd }
    }

    pub fn endpoint(&self) -> String {
        self.etcd.endpoint()
    }

    pub fn port(&self) -> u16 {
        self.etcd.port()
    }

    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint()], None).await.unwrap()
    }
}

/// A TCP proxy to `target` whose connections can be cut (all closed, new ones refused) and
/// restored, to break a registry's link to etcd without touching etcd.
pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    cut: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target_port: u16) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(Notify::new());
        let (open2, cut2) = (open.clone(), cut.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !open2.load(Ordering::Acquire) {
                    continue; // dropped: refused
                }
                let cut = cut2.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", target_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.notified() => {}
                    }
                });
            }
        });
        Proxy { addr, open, cut, task }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Close every connection and refuse new ones.
    pub fn cut(&self) {
        self.open.store(false, Ordering::Release);
        self.cut.notify_waiters();
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
