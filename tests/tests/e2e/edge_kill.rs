//! An edge dies (SIGKILL). Only its own viewers lose the stream: a viewer of the other edge
//! plays on untouched. Viewers that follow the control plane ask again, naming the edge they
//! lost (`?avoid=`), and are sent to the other edge at once, long before the dead edge's lease
//! ends (the edges here hold 10 s leases); once it has ended, the control plane never names
//! the dead edge again.

use std::time::Instant;

use sluice_launch::Signal;
use sluice_tests::cluster::TestCluster;
use sluice_tests::follower::Follower;
use sluice_tests::process::wait_for;
use sluice_tests::viewer::Watcher;
use sluice_tests::{control_plane, h264_small, http, secs, Origin, Publisher};

const FOLLOWERS: usize = 20;
const EDGE_LEASE: &str = "10s";

/// An edge of `c` with a lease of [`EDGE_LEASE`] instead of the tests' short one.
fn long_lease_edge(c: &TestCluster, id: &str) -> Origin {
    let mut args = c.args(id);
    let ttl = args.iter().position(|a| a == "--lease-ttl").expect("the cluster sets a lease") + 1;
    args[ttl] = EDGE_LEASE.to_string();
    Origin::start_edge(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The edge `/play/…json` names for a viewer with nothing to avoid.
fn assigned(cp: std::net::SocketAddr) -> Option<String> {
    let r = http::get(cp, "/play/live/ek.json?protocol=rtmp", secs(5)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    v["edge"].as_str().map(str::to_string)
}

#[test]
fn a_dead_edge_costs_only_its_own_viewers_who_re_assign_through_the_control_plane() {
    let c = TestCluster::new("ek", &["ek-o", "ek-a", "ek-b"]);
    let origin = c.origin("ek-o", &[]);
    let mut edges =
        vec![("ek-a", long_lease_edge(&c, "ek-a")), ("ek-b", long_lease_edge(&c, "ek-b"))];
    let cp = control_plane::start(&c, "ek", &[]);
    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "ek"), &h264_small().path);
    for (id, e) in &edges {
        wait_for(secs(20), || e.stream_info("live", "ek"))
            .unwrap_or_else(|| panic!("{id} lists it"));
    }
    wait_for(secs(20), || assigned(cp.http)).expect("the control plane assigns");

    // Bounded-load assignment spreads the followers over both edges.
    let followers: Vec<Follower> = (0..FOLLOWERS).map(|_| Follower::start(cp.http, "ek")).collect();
    let playing = |fs: &[Follower]| fs.iter().filter(|f| f.stats().playing).count();
    wait_for(secs(60), || (playing(&followers) == FOLLOWERS).then_some(()))
        .unwrap_or_else(|| panic!("{} of {FOLLOWERS} followers play", playing(&followers)));
    let doomed = followers[0].stats().edges[0].clone();
    let on_doomed = |f: &Follower| f.stats().edges == [doomed.clone()];
    let moving = followers.iter().filter(|f| on_doomed(f)).count();
    assert!(moving < FOLLOWERS, "the followers are spread over both edges");
    let survivor = edges.iter().position(|(id, _)| *id != doomed).expect("two edges");
    let bystander = Watcher::start(edges[survivor].1.rtmp, "live", "ek");
    assert!(bystander.wait_video(30, secs(20)) >= 30, "the other edge's viewer plays");
    let mark = bystander.mark();

    let dead = edges.remove(1 - survivor).1;
    let killed_at = Instant::now();
    sluice_launch::kill(dead.pid(), Signal::KILL);
    drop(dead);

    // The dead edge's followers play again, from the other edge, well inside its lease.
    let moved = |f: &Follower| f.stats().playing && f.stats().edges.len() == 2;
    wait_for(secs(30), || (followers.iter().filter(|f| moved(f)).count() == moving).then_some(()))
        .unwrap_or_else(|| panic!("followers after the kill: {:?}", followers[0].stats()));
    let moved_in = killed_at.elapsed();
    let still_registered = assigned(cp.http).as_deref() == Some(doomed.as_str());
    let stats: Vec<_> = followers.into_iter().map(Follower::finish).collect();
    let longest = stats.iter().map(|s| s.longest_outage).max().unwrap_or_default();
    let retries: u32 = stats.iter().map(|s| s.failures).sum();
    println!(
        "edge {doomed} killed: its {moving} followers moved within {moved_in:?}, longest outage \
         {longest:?}, {retries} retries; dead edge still assigned without avoid: {still_registered}"
    );
    let survivor_id = edges[0].0;
    for s in &stats {
        // The other edge's followers never left it; the dead edge's came over to it.
        let expected = if s.edges[0] == doomed {
            vec![doomed.clone(), survivor_id.into()]
        } else {
            vec![survivor_id.to_string()]
        };
        assert_eq!(s.edges, expected, "{s:?}");
    }
    assert!(longest < secs(3), "a follower was without the stream for {longest:?}");

    // The other edge's viewer never noticed.
    let record = bystander.stop();
    let broken = record.interruptions(mark, secs(1), 0);
    assert!(broken.is_empty(), "the other edge's viewer was interrupted: {broken:?}");

    // Once the lease has ended (its key gone from etcd) the dead edge is never handed out again.
    let key = format!("{}/nodes/edge/{doomed}", c.prefix);
    let registered =
        || c.etcd.ctl(&["get", &key, "--keys-only"]).is_ok_and(|o| !o.trim().is_empty());
    assert!(registered(), "{doomed} is still registered when its followers have moved");
    wait_for(secs(20), || (!registered()).then_some(())).expect("the dead edge's lease ends");
    std::thread::sleep(std::time::Duration::from_millis(500)); // the control plane follows etcd's watch
    for _ in 0..20 {
        assert_eq!(assigned(cp.http).as_deref(), Some(survivor_id));
    }
    publisher.stop();
}
