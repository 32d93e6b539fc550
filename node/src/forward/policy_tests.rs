#![allow(clippy::disallowed_methods)] // `Instant::now()` is only the virtual clock's origin

use std::time::Duration;

use super::*;

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn ids(s: &[&str]) -> Vec<NodeId> {
    s.iter().map(|s| id(s)).collect()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn policy() -> (ForwardPolicy, Instant) {
    (ForwardPolicy::new(id("me"), Backoff::new(ms(200), ms(2000))), Instant::now())
}

fn open(to: &[&str]) -> Vec<Action> {
    to.iter().map(|t| Action::Open { to: id(t) }).collect()
}

fn close(to: &str) -> Vec<Action> {
    vec![Action::Close { to: id(to) }]
}

fn opened(p: &mut ForwardPolicy, now: Instant, to: &[&str]) {
    for t in to {
        assert_eq!(p.on_event(now, Event::Opened { to: id(t) }), []);
    }
}

fn open_now(p: &ForwardPolicy) -> Vec<&str> {
    p.open().map(NodeId::as_str).collect()
}

#[test]
fn forwards_to_the_home_and_its_standby_and_not_to_itself() {
    let (mut p, t0) = policy();
    // Home here, standby "a": only the standby gets a forward.
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["me", "a"]))), open(&["a"]));
    // An open in flight is not asked for twice.
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["me", "a"]))), []);
    opened(&mut p, t0, &["a"]);
    assert_eq!(p.next_deadline(), None);
    // The ring now says home "b", standby "a": "a" keeps its forward, "b" gets one.
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["b", "a"]))), open(&["b"]));
    opened(&mut p, t0, &["b"]);
    assert_eq!(open_now(&p), ["a", "b"]);
    // No ring: nothing is wanted; the forwards close a hand-over later.
    assert_eq!(p.on_event(t0, Event::Owners(vec![])), []);
    assert_eq!(p.next_deadline(), Some(t0 + HANDOVER));
    assert_eq!(p.poll(t0 + HANDOVER), [close("a"), close("b")].concat());
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn a_standby_that_becomes_the_home_keeps_its_forward() {
    let (mut p, t0) = policy();
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["a", "b"]))), open(&["a", "b"]));
    opened(&mut p, t0, &["a", "b"]);
    // The home "a" died: "b" is the home, "c" the new standby. "b" is not touched.
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["b", "c"]))), open(&["c"]));
    // The dead home's forward ends by itself: not retried, it is no owner any more.
    assert_eq!(p.on_event(t0, Event::Finished { to: id("a") }), []);
    assert_eq!(p.next_deadline(), None);
    opened(&mut p, t0, &["c"]);
    assert_eq!(open_now(&p), ["b", "c"]);
    assert_eq!(p.poll(t0 + HANDOVER * 3), []);
}

#[test]
fn this_node_becoming_the_home_closes_the_old_homes_forward_after_the_handover() {
    let (mut p, t0) = policy();
    p.on_event(t0, Event::Owners(ids(&["a", "me"])));
    opened(&mut p, t0, &["a"]);
    // The ring moved the home here; "b" is the standby now.
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["me", "b"]))), open(&["b"]));
    assert_eq!(p.next_deadline(), Some(t0 + HANDOVER));
    assert_eq!(p.poll(t0 + HANDOVER - ms(1)), []);
    assert_eq!(open_now(&p), ["a"], "the old home is fed meanwhile");
    assert_eq!(p.poll(t0 + HANDOVER), close("a"));
}

#[test]
fn an_owner_that_comes_back_within_the_handover_keeps_its_forward() {
    let (mut p, t0) = policy();
    p.on_event(t0, Event::Owners(ids(&["a"])));
    opened(&mut p, t0, &["a"]);
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["me"]))), []);
    assert_eq!(p.on_event(t0 + ms(500), Event::Owners(ids(&["a"]))), []);
    assert_eq!(p.next_deadline(), None);
    assert_eq!(p.poll(t0 + HANDOVER * 2), [], "never closed");
    assert_eq!(open_now(&p), ["a"]);
}

#[test]
fn home_switch_is_make_before_break() {
    let (mut p, t0) = policy();
    p.on_event(t0, Event::Owners(ids(&["a"])));
    opened(&mut p, t0, &["a"]);
    // The ring moves the stream to "b": its forward is opened, the old one stays.
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["b"]))), open(&["b"]));
    // The new home refuses for now: the old forward still carries the stream, past the
    // hand-over time too.
    assert_eq!(p.on_event(t0, Event::OpenFailed { to: id("b") }), []);
    assert_eq!(p.next_deadline(), Some(t0 + ms(200)), "only the retry");
    assert_eq!(p.poll(t0 + ms(200)), open(&["b"]));
    assert_eq!(p.on_event(t0 + HANDOVER * 2, Event::OpenFailed { to: id("b") }), []);
    assert_eq!(open_now(&p), ["a"]);
    // Once the new home is open, the old forward goes (its hand-over time has passed).
    let t1 = t0 + HANDOVER * 2 + ms(400);
    assert_eq!(p.poll(t1), open(&["b"]));
    assert_eq!(p.on_event(t1, Event::Opened { to: id("b") }), close("a"));
    assert_eq!(open_now(&p), ["b"]);
}

#[test]
fn retry_backoff_grows_per_owner_is_capped_and_resets_after_success() {
    let (mut p, t0) = policy();
    let mut now = t0;
    assert_eq!(p.on_event(now, Event::Owners(ids(&["a", "b"]))), open(&["a", "b"]));
    opened(&mut p, now, &["b"]);
    let mut waits = Vec::new();
    for _ in 0..6 {
        assert_eq!(p.on_event(now, Event::OpenFailed { to: id("a") }), []);
        let at = p.next_deadline().unwrap();
        // Nothing before the retry time, the open exactly at it.
        assert_eq!(p.poll(at - ms(1)), []);
        assert_eq!(p.poll(at), open(&["a"]));
        waits.push(at - now);
        now = at;
    }
    assert_eq!(waits, [ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000)]);
    opened(&mut p, now, &["a"]);
    // A forward that ends by itself is retried after the first step again; the other owner's
    // backoff was never touched.
    assert_eq!(p.on_event(now, Event::Finished { to: id("a") }), []);
    assert_eq!(p.next_deadline(), Some(now + ms(200)));
    assert_eq!(p.on_event(now, Event::Finished { to: id("b") }), []);
    assert_eq!(p.poll(now + ms(200)), open(&["a", "b"]));
}

#[test]
fn no_deadline_while_nothing_is_wanted() {
    // A failed open, then this node becomes the only owner: nothing to retry, no wake-ups.
    let (mut p, t0) = policy();
    p.on_event(t0, Event::Owners(ids(&["a"])));
    p.on_event(t0, Event::OpenFailed { to: id("a") });
    assert!(p.next_deadline().is_some());
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["me"]))), []);
    assert_eq!(p.next_deadline(), None);
    assert_eq!(p.poll(t0 + ms(5000)), []);
}

#[test]
fn an_open_that_lands_after_its_owner_left_the_ring_is_closed_a_handover_later() {
    let (mut p, t0) = policy();
    p.on_event(t0, Event::Owners(ids(&["a"])));
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["me"]))), []);
    assert_eq!(p.on_event(t0 + ms(100), Event::Opened { to: id("a") }), []);
    assert_eq!(p.poll(t0 + HANDOVER), close("a"));
    // An answer nobody asked for is dropped at once.
    assert_eq!(p.on_event(t0, Event::Opened { to: id("z") }), close("z"));
}

#[test]
fn publisher_left_finishes_after_the_opens_in_flight() {
    let (mut p, t0) = policy();
    p.on_event(t0, Event::Owners(ids(&["a"])));
    opened(&mut p, t0, &["a"]);
    assert_eq!(p.on_event(t0, Event::PublisherLeft), [Action::Finish]);
    assert_eq!(p.on_event(t0, Event::Owners(ids(&["b"]))), []);
    assert_eq!(p.next_deadline(), None);

    let (mut p, t0) = policy();
    p.on_event(t0, Event::Owners(ids(&["a", "b"])));
    assert_eq!(p.on_event(t0, Event::PublisherLeft), []);
    assert_eq!(p.on_event(t0, Event::Opened { to: id("a") }), []);
    assert_eq!(p.on_event(t0, Event::OpenFailed { to: id("b") }), [Action::Finish]);
}
