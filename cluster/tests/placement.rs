//! The placement driver over a live registry: the ring follows ready origins.

mod support;

use sluice_cluster::*;
use std::time::Duration;
use support::*;

#[tokio::test]
async fn ring_follows_ready_origins_and_moves_only_the_new_share() {
    let f = MemoryFixture::new();
    let a = f.registry("origin-a", "/p").await;
    let _b = f.registry("origin-b", "/p").await;
    let (mut ring, task) = placement::spawn_ring(a.snapshot(), PlacementConfig::default());
    let two = ring.wait_for(|r| r.members().len() == 2).await.unwrap().clone();
    let streams: Vec<_> = (0..100).map(|i| stream(&format!("s{i}"))).collect();

    let c = f.registry("origin-c", "/p").await;
    let three =
        tokio::time::timeout(Duration::from_secs(3), ring.wait_for(|r| r.members().len() == 3))
            .await
            .unwrap()
            .unwrap()
            .clone();
    let moved = streams
        .iter()
        .filter(|s| two.owner(s) != three.owner(s))
        .inspect(|s| assert_eq!(three.owner(s), Some(&id("origin-c"))))
        .count();
    assert!((20..=47).contains(&moved), "moved {moved}");

    // Draining leaves the ring: its streams go back to where they were.
    c.update_node(NodeInfo { state: NodeState::Draining, ..NodeInfo::default() }).await.unwrap();
    let after =
        tokio::time::timeout(Duration::from_secs(3), ring.wait_for(|r| r.members().len() == 2))
            .await
            .unwrap()
            .unwrap()
            .clone();
    for s in &streams {
        assert_eq!(after.owner(s), two.owner(s));
    }
    task.abort();
}
