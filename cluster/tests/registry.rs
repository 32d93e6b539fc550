//! Behaviour of both registries, with one test body per behaviour run against the in-memory
//! registry and against a real etcd server (its own ports and data directory per test).
#![allow(clippy::disallowed_methods)] // real etcd against real time: the test reads the real clock

mod support;

use sluice_cluster::*;
use std::time::{Duration, Instant};
use support::*;

const SOON: Duration = Duration::from_secs(3);
const MARGIN: Duration = Duration::from_millis(800);

/// Run a body against the memory registry and against etcd.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn memory() {
                super::$name(&MemoryFixture::new()).await
            }
            #[tokio::test]
            async fn etcd() {
                let f = EtcdFixture { etcd: EtcdServer::start().await };
                super::$name(&f).await
            }
        }
    };
}

fn has_node(s: &Snapshot, node: &str) -> bool {
    s.node(Role::Origin, &id(node)).is_some()
}

both!(lease_expiry_removes_the_node_key);
async fn lease_expiry_removes_the_node_key<F: Fixture>(f: &F) {
    let watcher = f.registry("watcher", "/t").await;
    let a = f.registry("a", "/t").await;
    wait_snapshot(&*watcher, SOON, "a registered", |s| has_node(s, "a")).await;
    drop(a); // a crash: keep-alives stop, the lease is not revoked
    let took =
        wait_snapshot(&*watcher, TTL + Duration::from_secs(2), "a expired", |s| !has_node(s, "a"))
            .await;
    assert!(
        took >= Duration::from_millis(900),
        "key vanished after {took:?}, before its lease could expire"
    );
    // The watcher itself is still registered (its keep-alives work).
    assert!(has_node(&watcher.snapshot().borrow(), "watcher"));
}

both!(second_claim_is_taken_after_the_hold);
async fn second_claim_is_taken_after_the_hold<F: Fixture>(f: &F) {
    let a = f.registry("a", "/t").await;
    let b = f.registry("b", "/t").await;
    let ca = a.claim(stream("x"), info("a")).await.unwrap();
    assert!(ca.revision() > 0);
    assert_eq!(ca.info.origin, id("a"));
    // Claiming a held name again is idempotent.
    assert_eq!(a.claim(stream("x"), info("a")).await.unwrap(), ca);

    let start = Instant::now();
    match b.claim(stream("x"), info("b")).await {
        Err(ClaimError::Taken { holder }) => assert_eq!(holder, Some(id("a"))),
        other => panic!("expected Taken, got {other:?}"),
    }
    let held = start.elapsed();
    assert!(held >= TTL, "refused after {held:?}: the claim must be held for TTL + margin");
    assert!(held < TTL + MARGIN + Duration::from_secs(2), "held for {held:?}");
    assert!(b.claims().is_empty());

    // Released: b gets it at once, with a larger revision (the fencing token).
    a.release(ca.clone()).await.unwrap();
    let start = Instant::now();
    let cb = b.claim(stream("x"), info("b")).await.unwrap();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(cb.revision() > ca.revision());
    assert_eq!(b.claims(), vec![cb.clone()]);

    // A stale release (a's old claim) does not delete b's claim.
    a.release(ca).await.unwrap();
    let cy = b.claim(stream("y"), info("b")).await.unwrap();
    wait_snapshot(&*a, SOON, "y visible", |s| s.stream(&stream("y")).is_some()).await;
    let snap = a.snapshot().borrow().clone();
    let x = snap.stream(&stream("x")).expect("b's claim survived a stale release");
    assert_eq!((x.info.origin.clone(), x.revision()), (id("b"), cb.revision()));
    assert_eq!(snap.stream(&stream("y")).unwrap().revision(), cy.revision());
}

both!(crashed_holders_claim_is_taken_over_after_lease_expiry);
async fn crashed_holders_claim_is_taken_over_after_lease_expiry<F: Fixture>(f: &F) {
    let a = f.registry("a", "/t").await;
    let b = f.registry("b", "/t").await;
    let ca = a.claim(stream("x"), info("a")).await.unwrap();
    drop(a); // origin a crashes; its encoder reconnects to b
    let start = Instant::now();
    let cb = b
        .claim(stream("x"), info("b"))
        .await
        .expect("the name comes back once the dead lease expires");
    let took = start.elapsed();
    assert!(took < TTL + MARGIN, "took {took:?}");
    assert!(took >= Duration::from_millis(900), "got it after {took:?}, before a's lease expired");
    assert!(cb.revision() > ca.revision());
    assert_eq!(cb.info.origin, id("b"));
}

both!(cache_follows_nodes_and_streams);
async fn cache_follows_nodes_and_streams<F: Fixture>(f: &F) {
    let watcher = f.registry("watcher", "/t").await;
    let a = f.registry("a", "/t").await;
    wait_snapshot(&*watcher, SOON, "a joins", |s| has_node(s, "a")).await;
    assert_eq!(
        watcher.snapshot().borrow().ready_origins(),
        [id("a"), id("watcher")].into_iter().collect()
    );

    let ca = a.claim(stream("x"), info("a")).await.unwrap();
    wait_snapshot(&*watcher, SOON, "x claimed", |s| {
        s.stream(&stream("x")).is_some_and(|r| {
            r.revision() == ca.revision() && r.info == info("a") && r.lease == a.lease()
        })
    })
    .await;

    let mut draining = NodeInfo { state: NodeState::Draining, ..NodeInfo::default() };
    draining.addresses.insert("rtmp".into(), "127.0.0.1:1935".into());
    a.update_node(draining.clone()).await.unwrap();
    wait_snapshot(&*watcher, SOON, "a draining", |s| {
        s.node(Role::Origin, &id("a")).is_some_and(|n| n.info == draining)
            && !s.ready_origins().contains(&id("a"))
    })
    .await;

    a.release(ca).await.unwrap();
    wait_snapshot(&*watcher, SOON, "x released", |s| s.streams.is_empty()).await;

    a.claim(stream("z"), info("a")).await.unwrap();
    a.shutdown().await; // revokes the lease: node and claims go at once
    let took =
        wait_snapshot(&*watcher, SOON, "a left", |s| !has_node(s, "a") && s.streams.is_empty())
            .await;
    assert!(took < Duration::from_secs(1), "left after {took:?}");
}

both!(prefixes_isolate_clusters);
async fn prefixes_isolate_clusters<F: Fixture>(f: &F) {
    let a = f.registry("a", "/one").await;
    let b = f.registry("b", "/two/").await;
    let start = Instant::now();
    a.claim(stream("x"), info("a")).await.unwrap();
    b.claim(stream("x"), info("b")).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "claims in different clusters do not contend"
    );
    wait_snapshot(&*a, SOON, "a sees x", |s| s.stream(&stream("x")).is_some()).await;
    wait_snapshot(&*b, SOON, "b sees x", |s| s.stream(&stream("x")).is_some()).await;
    let (sa, sb) = (a.snapshot().borrow().clone(), b.snapshot().borrow().clone());
    assert_eq!(sa.ready_origins(), [id("a")].into_iter().collect());
    assert_eq!(sb.ready_origins(), [id("b")].into_iter().collect());
    assert_eq!(sa.stream(&stream("x")).unwrap().info.origin, id("a"));
    assert_eq!(sb.stream(&stream("x")).unwrap().info.origin, id("b"));
}

/// Collect events until `done` says so, or panic after `limit`.
async fn events_until(
    rx: &mut tokio::sync::broadcast::Receiver<RegistryEvent>,
    limit: Duration,
    done: impl Fn(&[RegistryEvent]) -> bool,
) -> Vec<RegistryEvent> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    while !done(&seen) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) => seen.push(ev),
            other => panic!("events so far {seen:?}; then {other:?}"),
        }
    }
    seen
}

both!(reregisters_after_the_lease_is_revoked);
async fn reregisters_after_the_lease_is_revoked<F: Fixture>(f: &F) {
    let watcher = f.registry("watcher", "/t").await;
    let a = f.registry("a", "/t").await;
    let cx = a.claim(stream("x"), info("a")).await.unwrap();
    let cy = a.claim(stream("y"), info("a")).await.unwrap();
    let mut events = a.events();
    let old = a.lease();
    f.revoke(old).await;

    let seen = events_until(&mut events, TTL + Duration::from_secs(2), |evs| {
        evs.iter().filter(|e| matches!(e, RegistryEvent::ClaimRenewed { .. })).count() == 2
            && evs.iter().any(|e| matches!(e, RegistryEvent::LeaseRenewed { .. }))
    })
    .await;
    let new = a.lease();
    assert_ne!(new, old);
    assert!(seen.contains(&RegistryEvent::LeaseRenewed { old, new }), "{seen:?}");
    let claims = a.claims();
    assert_eq!(claims.len(), 2);
    assert!(claims.iter().all(|c| c.lease == new && c.revision() > cy.revision()));

    wait_snapshot(&*watcher, SOON, "a and its claims are back", |s| {
        s.node(Role::Origin, &id("a")).is_some_and(|n| n.lease == new)
            && [&cx, &cy].iter().all(|c| {
                s.stream(&c.stream).is_some_and(|r| r.lease == new && r.revision() > c.revision())
            })
    })
    .await;
}

both!(claim_taken_while_the_lease_was_lost_is_reported);
async fn claim_taken_while_the_lease_was_lost_is_reported<F: Fixture>(f: &F) {
    let a = f.registry("a", "/t").await;
    let b = f.registry("b", "/t").await;
    a.claim(stream("x"), info("a")).await.unwrap();
    a.claim(stream("y"), info("a")).await.unwrap();
    let mut events = a.events();
    f.revoke(a.lease()).await;
    // b claims x before a notices (a's next keep-alive is up to TTL/3 away).
    let cb = b.claim(stream("x"), info("b")).await.unwrap();
    let seen = events_until(&mut events, TTL + Duration::from_secs(2), |evs| {
        evs.iter().any(|e| matches!(e, RegistryEvent::ClaimLost { .. }))
            && evs.iter().any(|e| matches!(e, RegistryEvent::ClaimRenewed { .. }))
    })
    .await;
    assert!(
        seen.contains(&RegistryEvent::ClaimLost { stream: stream("x"), holder: Some(id("b")) }),
        "{seen:?}"
    );
    let claims = a.claims();
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].stream, stream("y"));
    wait_snapshot(&*a, SOON, "x stays b's", |s| {
        s.stream(&stream("x")).is_some_and(|r| r.revision() == cb.revision())
            && s.stream(&stream("y")).is_some_and(|r| r.info.origin == id("a"))
    })
    .await;
}

both!(a_claim_value_is_updated_in_place);
async fn a_claim_value_is_updated_in_place<F: Fixture>(f: &F) {
    let a = f.registry("a", "/t").await;
    let b = f.registry("b", "/t").await;
    let claim = a.claim(stream("u"), info("a")).await.unwrap();
    let mut richer = info("a");
    richer.codecs = vec!["avc1.64001f".into(), "mp4a.40.2".into()];
    assert!(a.update_claim(&claim, richer.clone()).await.unwrap(), "holder updates its claim");
    wait_snapshot(&*b, SOON, "codecs visible to other nodes", |s| {
        s.stream(&stream("u"))
            .is_some_and(|r| r.info.codecs == richer.codecs && r.revision() == claim.revision())
    })
    .await;
    assert_eq!(a.claims()[0].info.codecs, richer.codecs, "the held claim carries the new value");
    // Another node cannot update a claim it does not hold, and a released claim is not rewritten.
    assert!(!b.update_claim(&claim, info("b")).await.unwrap());
    a.release(claim.clone()).await.unwrap();
    assert!(!a.update_claim(&claim, richer).await.unwrap(), "released: not rewritten");
    wait_snapshot(&*b, SOON, "released claim gone", |s| s.stream(&stream("u")).is_none()).await;
}

both!(a_claim_from_before_a_lease_recovery_still_updates_and_releases_the_renewed_one);
async fn a_claim_from_before_a_lease_recovery_still_updates_and_releases_the_renewed_one<
    F: Fixture,
>(
    f: &F,
) {
    let a = f.registry("a", "/t").await;
    let b = f.registry("b", "/t").await;
    // What a publisher holds: the claim as first made.
    let held = a.claim(stream("x"), info("a")).await.unwrap();
    let mut events = a.events();
    f.revoke(a.lease()).await;
    events_until(&mut events, TTL + Duration::from_secs(2), |evs| {
        evs.iter().any(|e| matches!(e, RegistryEvent::ClaimRenewed { .. }))
    })
    .await;
    let renewed = a.claims()[0].clone();
    assert!(renewed.revision() > held.revision());

    let mut richer = info("a");
    richer.codecs = vec!["avc1.64001f".into()];
    assert!(a.update_claim(&held, richer.clone()).await.unwrap(), "the old claim updates");
    wait_snapshot(&*b, SOON, "the renewed claim carries the codecs", |s| {
        s.stream(&stream("x"))
            .is_some_and(|r| r.revision() == renewed.revision() && r.info.codecs == richer.codecs)
    })
    .await;
    a.release(held).await.unwrap();
    wait_snapshot(&*b, SOON, "x released", |s| s.stream(&stream("x")).is_none()).await;
    assert!(a.claims().is_empty());
    let taken = b.claim(stream("x"), info("b")).await.expect("the name is free for others");
    assert_eq!(taken.info.origin, id("b"));
}

both!(a_takeover_request_is_seen_by_all_first_come_and_withdrawn);
async fn a_takeover_request_is_seen_by_all_first_come_and_withdrawn<F: Fixture>(f: &F) {
    let holder = f.registry("holder", "/t").await;
    let a = f.registry("a", "/t").await;
    let b = f.registry("b", "/t").await;
    let mut playout = info("holder");
    playout.playout = true;
    holder.claim(stream("tv"), playout.clone()).await.unwrap();
    wait_snapshot(&*a, SOON, "the playout's claim", |s| {
        s.stream(&stream("tv")).is_some_and(|r| r.info.playout)
    })
    .await;
    let asked = a.request_takeover(&stream("tv")).await.unwrap().expect("first to ask");
    wait_snapshot(&*holder, SOON, "a's request", |s| {
        s.takeovers.get(&stream("tv")) == Some(&id("a"))
    })
    .await;
    assert_eq!(b.request_takeover(&stream("tv")).await.unwrap(), None, "a asked first");
    // Withdrawing someone else's revision leaves it be; its own takes it away.
    b.withdraw_takeover(&stream("tv"), asked + 1000).await.unwrap();
    assert_eq!(b.request_takeover(&stream("tv")).await.unwrap(), None, "still a's");
    a.withdraw_takeover(&stream("tv"), asked).await.unwrap();
    wait_snapshot(&*holder, SOON, "withdrawn", |s| s.takeovers.is_empty()).await;
    // A request lives no longer than the node that made it.
    b.request_takeover(&stream("tv")).await.unwrap().expect("free again");
    wait_snapshot(&*holder, SOON, "b's request", |s| !s.takeovers.is_empty()).await;
    b.shutdown().await;
    wait_snapshot(&*holder, SOON, "gone with b", |s| s.takeovers.is_empty()).await;
}
