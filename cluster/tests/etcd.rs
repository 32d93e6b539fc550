//! etcd-only behaviour: the raw key layout, compaction, and losing the link to etcd.
#![allow(clippy::disallowed_methods)] // real etcd against real time: the test reads the real clock

mod support;

use sluice_cluster::*;
use std::time::Duration;
use support::*;

const SOON: Duration = Duration::from_secs(3);

async fn connect(endpoint: String, node: &str, prefix: &str) -> EtcdRegistry {
    EtcdRegistry::connect(&[endpoint], config(node, prefix), NodeInfo::default()).await.unwrap()
}

async fn current_revision(c: &mut etcd_client::Client) -> i64 {
    c.get("/", None).await.unwrap().header().unwrap().revision()
}

#[tokio::test]
async fn keys_values_and_leases_are_as_documented() {
    let etcd = EtcdServer::start().await;
    let a = connect(etcd.endpoint(), "a", "/k").await;
    let claim = a.claim(stream("x"), info("a")).await.unwrap();
    let mut c = etcd.client().await;

    let node = c.get("/k/nodes/origin/a", None).await.unwrap();
    let kv = &node.kvs()[0];
    assert_eq!(kv.lease(), a.lease());
    let v: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
    assert_eq!(v["state"], "ready");

    let s = c.get("/k/streams/live/x", None).await.unwrap();
    let kv = &s.kvs()[0];
    assert_eq!(kv.lease(), a.lease());
    assert_eq!(kv.create_revision(), claim.revision());
    let v: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
    assert_eq!(v["origin"], "a");
    assert_eq!(v["codecs"], serde_json::json!(["h264", "aac"]));

    // TTL as configured.
    let ttl = c.lease_time_to_live(a.lease(), None).await.unwrap();
    assert_eq!(ttl.granted_ttl(), 2);
}

#[tokio::test]
async fn cache_catches_up_after_compaction() {
    let etcd = EtcdServer::start().await;
    let watcher = connect(etcd.endpoint(), "watcher", "/t").await;
    let a = connect(etcd.endpoint(), "a", "/t").await;
    let mut c = etcd.client().await;
    let x = a.claim(stream("x"), info("a")).await.unwrap();
    let rev = current_revision(&mut c).await;
    c.compact(rev, None).await.unwrap();
    a.release(x).await.unwrap();
    a.claim(stream("y"), info("a")).await.unwrap();
    wait_snapshot(&watcher, SOON, "y and not x", |s| {
        s.stream(&stream("y")).is_some() && s.stream(&stream("x")).is_none()
    })
    .await;
}

/// The watcher loses its connection; meanwhile keys change and history is compacted. On
/// reconnection its watch (resumed from its old revision) is refused as compacted, and the
/// cache re-lists and converges.
#[tokio::test]
async fn cache_relists_when_its_history_was_compacted_during_an_outage() {
    // RUST_LOG=sluice_cluster=debug shows the resume → compacted → re-list sequence.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let etcd = EtcdServer::start().await;
    let proxy = Proxy::start(etcd.port()).await;
    let watcher = connect(proxy.endpoint(), "watcher", "/t").await;
    let a = connect(etcd.endpoint(), "a", "/t").await;
    let gone = a.claim(stream("gone"), info("a")).await.unwrap();
    wait_snapshot(&watcher, SOON, "gone claimed", |s| s.stream(&stream("gone")).is_some()).await;

    proxy.cut();
    a.claim(stream("new"), info("a")).await.unwrap();
    a.release(gone).await.unwrap();
    let mut c = etcd.client().await;
    let rev = current_revision(&mut c).await;
    c.compact(rev, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();

    wait_snapshot(&watcher, Duration::from_secs(8), "converged", |s| {
        s.stream(&stream("new")).is_some() && s.stream(&stream("gone")).is_none()
    })
    .await;
    // Still registered: the outage was shorter than the TTL.
    assert!(watcher.snapshot().borrow().node(Role::Origin, &id("watcher")).is_some());
}

/// Cut off from etcd for longer than its TTL, a node's keys expire; when the link comes back
/// it grants a new lease and writes its node key and claims again.
#[tokio::test]
async fn reregisters_after_a_partition_longer_than_the_ttl() {
    let etcd = EtcdServer::start().await;
    let proxy = Proxy::start(etcd.port()).await;
    let a = connect(proxy.endpoint(), "a", "/t").await;
    let claim = a.claim(stream("x"), info("a")).await.unwrap();
    let mut events = a.events();
    let observer = connect(etcd.endpoint(), "observer", "/t").await;
    let old = a.lease();

    proxy.cut();
    wait_snapshot(&observer, TTL + Duration::from_secs(2), "a expired", |s| {
        s.node(Role::Origin, &id("a")).is_none() && s.streams.is_empty()
    })
    .await;
    proxy.restore();

    wait_snapshot(&observer, Duration::from_secs(8), "a and x are back", |s| {
        s.node(Role::Origin, &id("a")).is_some()
            && s.stream(&stream("x")).is_some_and(|r| r.revision() > claim.revision())
    })
    .await;
    // The events follow the writes: fenced while cut off, then the renewal, then unfenced.
    let mut renewed = None;
    let mut claim_renewed = false;
    let mut fenced = false;
    let mut unfenced = false;
    while renewed.is_none() || !claim_renewed || !unfenced {
        match tokio::time::timeout(SOON, events.recv()).await {
            Ok(Ok(RegistryEvent::Fenced)) => fenced = true,
            Ok(Ok(RegistryEvent::LeaseRenewed { old: o, new })) => {
                assert!(fenced, "fenced before the lease is renewed");
                renewed = Some((o, new));
            }
            Ok(Ok(RegistryEvent::ClaimRenewed { claim })) => {
                claim_renewed |= claim.stream == stream("x");
            }
            Ok(Ok(RegistryEvent::Unfenced)) => {
                assert!(renewed.is_some(), "unfenced once the new lease holds the claims");
                unfenced = true;
            }
            other => panic!("expected renewal events, got {other:?}"),
        }
    }
    assert_eq!(renewed, Some((old, a.lease())));
    assert_ne!(a.lease(), old);
}

/// A load report lands at `{prefix}/load/{role}/{id}` under the node's lease, other nodes'
/// caches see it and its updates, and it goes with the lease.
#[tokio::test]
async fn load_reports_are_written_under_the_lease_and_seen_by_others() {
    let etcd = EtcdServer::start().await;
    let watcher = connect(etcd.endpoint(), "watcher", "/l").await;
    let a = connect(etcd.endpoint(), "a", "/l").await;
    let id = NodeId::new("a").unwrap();
    let mut report = LoadReport { streams: 1, ..LoadReport::default() };
    report.viewers.insert("flv".into(), 7);
    a.report_load(report.clone()).await.unwrap();

    let mut c = etcd.client().await;
    let got = c.get("/l/load/origin/a", None).await.unwrap();
    let kv = &got.kvs()[0];
    assert_eq!(kv.lease(), a.lease());
    let v: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
    assert_eq!(v["viewers"]["flv"], 7);

    wait_snapshot(&watcher, SOON, "first report", |s| {
        s.load(Role::Origin, &id).is_some_and(|l| l.report.total_viewers() == 7)
    })
    .await;
    report.viewers.insert("flv".into(), 9);
    a.report_load(report).await.unwrap();
    wait_snapshot(&watcher, SOON, "updated report", |s| {
        s.load(Role::Origin, &id).is_some_and(|l| l.report.total_viewers() == 9)
    })
    .await;
    // Garbage written by someone else is not shown; the lease's end removes the report.
    c.put("/l/load/edge/x", "{\"streams\":-1}", None).await.unwrap();
    a.shutdown().await;
    wait_snapshot(&watcher, SOON, "report gone with the lease", |s| s.loads.is_empty()).await;
}

/// A release whose delete cannot reach etcd is not forgotten: once etcd answers again (the
/// lease lived through the outage) the claim goes, and another node can publish the name.
/// Before, the key stayed under the live lease until the node restarted.
#[tokio::test]
async fn a_release_that_failed_is_retried_until_it_reaches_etcd() {
    let etcd = EtcdServer::start().await;
    let proxy = Proxy::start(etcd.port()).await;
    let a = connect(proxy.endpoint(), "a", "/t").await;
    let b = connect(etcd.endpoint(), "b", "/t").await;
    let claim = a.claim(stream("x"), info("a")).await.unwrap();
    wait_snapshot(&b, SOON, "x claimed", |s| s.stream(&stream("x")).is_some()).await;
    let lease = a.lease();

    proxy.cut();
    assert!(a.release(claim).await.is_err(), "etcd is out of reach");
    proxy.restore();

    wait_snapshot(&b, Duration::from_secs(6), "the release reached etcd", |s| {
        s.stream(&stream("x")).is_none()
    })
    .await;
    assert_eq!(a.lease(), lease, "a short outage keeps the lease");
    let taken = b.claim(stream("x"), info("b")).await.expect("the name is free again");
    assert_eq!(taken.info.origin, id("b"));
}

/// An outage shorter than the lease neither fences for long nor churns: afterwards the node
/// has the same lease, its claim the same revision, and no renewal was announced.
#[tokio::test]
async fn an_outage_shorter_than_the_lease_keeps_the_lease_and_every_claim() {
    let etcd = EtcdServer::start().await;
    let proxy = Proxy::start(etcd.port()).await;
    let a = connect(proxy.endpoint(), "a", "/t").await;
    let observer = connect(etcd.endpoint(), "observer", "/t").await;
    let claim = a.claim(stream("x"), info("a")).await.unwrap();
    let mut events = a.events();
    let lease = a.lease();

    proxy.cut();
    tokio::time::sleep(TTL / 3).await;
    proxy.restore();
    // Two more keep-alive periods, and the claim as etcd has it.
    tokio::time::sleep(TTL).await;
    let s = observer.snapshot().borrow().clone();
    let record = s.stream(&stream("x")).expect("x is still claimed");
    assert_eq!(record.revision(), claim.revision(), "the claim was not re-written");
    assert_eq!(a.lease(), lease);
    while let Ok(ev) = events.try_recv() {
        assert!(
            matches!(ev, RegistryEvent::Fenced | RegistryEvent::Unfenced),
            "no renewal after a short outage: {ev:?}"
        );
    }
}

/// Cut off from etcd, a node fences itself before its lease can end: it refuses new claims
/// at once (instead of waiting out the request timeout), keeps the claims it holds, and takes
/// new ones again once etcd answers.
#[tokio::test]
async fn a_node_cut_off_from_etcd_fences_itself_before_its_lease_ends() {
    let etcd = EtcdServer::start().await;
    let proxy = Proxy::start(etcd.port()).await;
    let a = connect(proxy.endpoint(), "a", "/t").await;
    let observer = connect(etcd.endpoint(), "observer", "/t").await;
    let held = a.claim(stream("held"), info("a")).await.unwrap();
    let mut events = a.events();

    let cut_at = std::time::Instant::now();
    proxy.cut();
    match tokio::time::timeout(TTL * 2, events.recv()).await {
        Ok(Ok(RegistryEvent::Fenced)) => {}
        other => panic!("expected Fenced, got {other:?}"),
    }
    let fenced_after = cut_at.elapsed();
    assert!(a.is_fenced());
    // Still alive in etcd's eyes at that moment: fenced before anyone could take over.
    assert!(
        observer.snapshot().borrow().node(Role::Origin, &id("a")).is_some(),
        "fenced after {fenced_after:?}, but etcd had already dropped the node"
    );
    let asked = std::time::Instant::now();
    match a.claim(stream("new"), info("a")).await {
        Err(ClaimError::Registry(RegistryError::Fenced)) => {}
        other => panic!("a fenced node must not claim: {other:?}"),
    }
    assert!(asked.elapsed() < Duration::from_millis(200), "refused at once");
    assert_eq!(a.claim(stream("held"), info("a")).await.unwrap(), held, "held claims stay");

    proxy.restore();
    let deadline = TTL * 4;
    let back = tokio::time::timeout(deadline, async {
        loop {
            if let Ok(RegistryEvent::Unfenced) = events.recv().await {
                return;
            }
        }
    })
    .await;
    assert!(back.is_ok(), "unfenced once etcd answers");
    assert!(!a.is_fenced());
    a.claim(stream("new"), info("a")).await.expect("claims work again");
}
