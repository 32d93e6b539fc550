//! The pull rules on a virtual clock: `t0` plus durations, no sockets, no sleeps.
#![allow(clippy::disallowed_methods)] // `Instant::now()` is only the virtual clock's origin

use super::*;

const LINGER: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(15);

fn id(s: &str) -> NodeId {
    NodeId::new(s).unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn subscribed(origin: &str, revision: i64) -> Event {
    Event::Subscribed { origin: id(origin), revision }
}

/// A pull that subscribed at `a` under claim 7 at `t0` and has been live for a minute.
fn live() -> (PullPolicy, Instant) {
    let t0 = Instant::now();
    let mut p = PullPolicy::new(t0, LINGER, GRACE);
    assert_eq!(p.poll(t0), [Action::Subscribe]);
    assert_eq!(p.on_event(t0, subscribed("a", 7)), [Action::Publish]);
    assert!(p.publishing());
    (p, t0 + secs(60))
}

#[test]
fn subscribes_at_once_and_backoff_grows_is_capped_and_resets_after_success() {
    let t0 = Instant::now();
    let mut p = PullPolicy::new(t0, LINGER, GRACE);
    assert_eq!(p.next_deadline(), Some(t0));
    assert_eq!(p.poll(t0), [Action::Subscribe]);
    // Nothing more while the subscribe is in flight.
    assert_eq!(p.poll(t0 + secs(5)), []);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..6 {
        assert_eq!(p.on_event(now, Event::SubscribeFailed), []);
        let at = p.next_deadline().unwrap();
        assert_eq!(p.poll(at - ms(1)), []);
        assert_eq!(p.poll(at), [Action::Subscribe]);
        waits.push(at - now);
        now = at;
    }
    assert_eq!(waits, [ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000)]);
    // A subscription that lives past QUICK_FAILURE is a success: the next loss resubscribes
    // at once and a failure after it waits the first step again.
    assert_eq!(p.on_event(now, subscribed("a", 7)), [Action::Publish]);
    now += QUICK_FAILURE;
    assert_eq!(p.on_event(now, Event::Broken), [Action::Subscribe]);
    assert_eq!(p.on_event(now, Event::SubscribeFailed), []);
    assert_eq!(p.next_deadline(), Some(now + MIN_BACKOFF));
}

#[test]
fn a_subscription_that_fails_at_once_backs_off_instead_of_spinning() {
    let (mut p, mut now) = live();
    let mut waits = Vec::new();
    for _ in 0..5 {
        // Subscribed, then broken (or ended under the same claim) right away.
        let resubscribe = p.on_event(now, subscribed("a", 7));
        assert_eq!(resubscribe, [Action::SwitchUpstream]);
        now += ms(10);
        assert_eq!(p.on_event(now, Event::Ended { claim: Some(7) }), []);
        let at = p.next_deadline().unwrap();
        assert_eq!(p.poll(at - ms(1)), []);
        assert_eq!(p.poll(at), [Action::Subscribe]);
        waits.push(at - now);
        now = at;
    }
    assert_eq!(waits, [ms(200), ms(400), ms(800), ms(1600), ms(2000)]);
}

#[test]
fn a_failed_subscribe_is_retried_early_when_the_registry_changes() {
    let (mut p, now) = live();
    assert_eq!(p.on_event(now, Event::Broken), [Action::Subscribe]);
    assert_eq!(p.on_event(now, Event::SubscribeFailed), []);
    assert_eq!(p.on_event(now + ms(50), Event::Claim(Some(7))), [Action::Subscribe]);
    // No source: looked up again every IDLE_CHECK, or when the registry changes.
    assert_eq!(p.on_event(now + ms(60), Event::NoRelay), []);
    assert_eq!(p.poll(now + ms(60) + IDLE_CHECK), [Action::Subscribe]);
    assert_eq!(p.on_event(now + secs(2), Event::NoRelay), []);
    assert_eq!(p.on_event(now + secs(2), Event::Claim(Some(7))), [Action::Subscribe]);
}

#[test]
fn grace_expiry_ends_the_local_publish_exactly_at_grace() {
    let (mut p, lost) = live();
    assert_eq!(p.on_event(lost, Event::Broken), [Action::Subscribe]);
    let mut now = lost;
    // The origin stays unreachable; viewers are kept meanwhile.
    while now + MAX_BACKOFF < lost + GRACE {
        assert_eq!(p.on_event(now, Event::SubscribeFailed), []);
        now = p.next_deadline().unwrap();
        assert_eq!(p.poll(now), [Action::Subscribe]);
        assert!(p.publishing());
    }
    assert_eq!(p.on_event(now, Event::SubscribeFailed), []);
    assert_eq!(p.next_deadline(), Some(lost + GRACE));
    assert_eq!(p.poll(lost + GRACE - ms(1)), []);
    assert!(p.publishing());
    assert_eq!(
        p.poll(lost + GRACE),
        [Action::EndLocal(EndReason::GraceExpired), Action::Subscribe]
    );
    assert!(!p.publishing());
    // When the stream comes back later, it is a new local publish.
    assert_eq!(p.on_event(lost + secs(20), subscribed("a", 7)), [Action::Publish]);
}

#[test]
fn grace_also_ends_while_a_subscribe_is_in_flight() {
    let (mut p, lost) = live();
    assert_eq!(p.on_event(lost, Event::Broken), [Action::Subscribe]);
    assert_eq!(p.next_deadline(), Some(lost + GRACE));
    assert_eq!(p.poll(lost + GRACE), [Action::EndLocal(EndReason::GraceExpired)]);
}

#[test]
fn a_stream_back_within_grace_resumes_without_ending() {
    let (mut p, lost) = live();
    p.on_event(lost, Event::Broken);
    assert_eq!(p.on_event(lost, Event::SubscribeFailed), []);
    let at = p.next_deadline().unwrap();
    assert_eq!(p.poll(at), [Action::Subscribe]);
    // Back on another origin under the same claim, just before the grace ends.
    let back = lost + GRACE - ms(1);
    assert_eq!(p.on_event(back, subscribed("b", 7)), [Action::SwitchUpstream]);
    assert!(p.publishing());
    // The grace timer is gone with the loss.
    assert_eq!(p.poll(lost + GRACE + secs(1)), []);
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn a_stale_claim_means_a_new_session() {
    let (mut p, now) = live();
    // The publisher reconnected (maybe elsewhere): a new claim revision.
    assert_eq!(p.on_event(now, Event::Claim(Some(7))), []);
    assert_eq!(p.on_event(now, Event::Claim(Some(9))), [Action::Unsubscribe, Action::Subscribe]);
    assert!(p.publishing());
    assert_eq!(p.on_event(now + ms(5), subscribed("b", 9)), [Action::NewSession]);
}

#[test]
fn a_renewed_claim_keeps_the_subscription_and_the_session() {
    let (mut p, now) = live();
    // etcd came back after the lease ended: the origin re-took claim 7 as 12 for the same
    // publish. Nothing to do: the subscription is live, the session the same.
    assert_eq!(p.on_event(now, Event::Claim(None)), []);
    assert_eq!(p.on_event(now, Event::ClaimRenewed { from: 7, to: 12 }), []);
    assert_eq!(p.on_event(now, Event::Claim(Some(12))), [], "12 is the live revision now");
    // A later break resubscribes under 12 and goes on in the same session.
    assert_eq!(p.on_event(now + ms(5), Event::Broken), [Action::Subscribe]);
    assert_eq!(p.on_event(now + ms(10), subscribed("a", 12)), [Action::SwitchUpstream]);
    // A real new publish after that is still a new claim: the upstream is dropped.
    let got = p.on_event(now + secs(120), Event::Claim(Some(15)));
    assert_eq!(got.first(), Some(&Action::Unsubscribe));
}

#[test]
fn a_renewal_of_another_claim_than_the_live_one_is_a_new_claim() {
    let (mut p, now) = live();
    let got = p.on_event(now, Event::ClaimRenewed { from: 5, to: 12 });
    assert_eq!(got, [Action::Unsubscribe, Action::Subscribe]);
}

#[test]
fn a_claim_that_changed_while_subscribing_is_stale_at_once() {
    let (mut p, now) = live();
    p.on_event(now, Event::Broken);
    assert_eq!(p.on_event(now, Event::Claim(Some(9))), []);
    let got = p.on_event(now + ms(5), subscribed("a", 7));
    assert_eq!(got, [Action::SwitchUpstream, Action::Unsubscribe]);
    let at = p.next_deadline().unwrap();
    assert_eq!(at, now + ms(5) + MIN_BACKOFF);
    assert_eq!(p.poll(at), [Action::Subscribe]);
    assert_eq!(p.on_event(at, subscribed("a", 9)), [Action::NewSession]);
}

#[test]
fn the_claim_gone_or_the_publisher_left_ends_at_once() {
    let (mut p, now) = live();
    // ENDED and the claim is gone: the publisher left.
    assert_eq!(
        p.on_event(now, Event::Ended { claim: None }),
        [Action::EndLocal(EndReason::PublisherLeft), Action::Subscribe]
    );
    assert_eq!(p.on_event(now, Event::NotPublished), []);
    assert!(!p.publishing());

    let (mut p, now) = live();
    // Broken, and on the next lookup the claim is gone.
    assert_eq!(p.on_event(now, Event::Broken), [Action::Subscribe]);
    assert_eq!(p.on_event(now, Event::NotPublished), [Action::EndLocal(EndReason::ClaimGone)]);
    // Waits for a new claim.
    assert_eq!(p.on_event(now + ms(10), Event::Claim(Some(8))), [Action::Subscribe]);
}

#[test]
fn a_refused_local_publish_waits_the_longest_backoff() {
    let t0 = Instant::now();
    let mut p = PullPolicy::new(t0, LINGER, GRACE);
    p.poll(t0);
    assert_eq!(p.on_event(t0, subscribed("a", 7)), [Action::Publish]);
    assert_eq!(p.on_event(t0, Event::PublishRefused), []);
    assert!(!p.publishing());
    // Not cut short by registry changes.
    assert_eq!(p.on_event(t0 + ms(10), Event::Claim(Some(7))), []);
    assert_eq!(p.next_deadline(), Some(t0 + MAX_BACKOFF));
    assert_eq!(p.poll(t0 + MAX_BACKOFF), [Action::Subscribe]);
}

#[test]
fn linger_keeps_the_upstream_exactly_linger_after_the_last_viewer() {
    let (mut p, now) = live();
    let demand = |viewers| Event::Demand { viewers, wanted: Some(now - secs(30)) };
    assert_eq!(p.on_event(now, demand(2)), []);
    let left = now + secs(1);
    assert_eq!(p.on_event(left, demand(0)), []);
    assert_eq!(p.next_deadline(), Some(left + LINGER));
    assert_eq!(p.on_event(left + LINGER - ms(1), demand(0)), []);
    assert_eq!(p.on_event(left + LINGER, demand(0)), [Action::Stop]);
    // Over: nothing more.
    assert_eq!(p.on_event(left + LINGER, Event::Broken), []);
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn a_returning_viewer_cancels_the_linger() {
    let (mut p, now) = live();
    let demand = |viewers| Event::Demand { viewers, wanted: Some(now - secs(30)) };
    assert_eq!(p.on_event(now, demand(0)), []);
    assert_eq!(p.on_event(now + secs(5), demand(1)), []);
    assert_eq!(p.next_deadline(), None);
    // The linger starts again from the next time the stream has no viewers.
    let left = now + secs(8);
    assert_eq!(p.on_event(left, demand(0)), []);
    assert_eq!(p.on_event(now + LINGER, demand(0)), []);
    assert_eq!(p.on_event(left + LINGER, demand(0)), [Action::Stop]);
}

#[test]
fn a_recent_request_keeps_the_pull_and_a_gone_entry_stops_it() {
    let (mut p, now) = live();
    // A viewer asked (not counted in the hub yet) after the stream went idle.
    let asked = now + secs(4);
    assert_eq!(p.on_event(now, Event::Demand { viewers: 0, wanted: Some(asked) }), []);
    assert_eq!(p.next_deadline(), Some(asked + LINGER));
    let at_linger = Event::Demand { viewers: 0, wanted: Some(asked) };
    assert_eq!(p.on_event(now + LINGER, at_linger.clone()), []);
    assert_eq!(p.on_event(asked + LINGER, at_linger), [Action::Stop]);

    let (mut p, now) = live();
    p.on_event(now, Event::Demand { viewers: 0, wanted: None });
    assert_eq!(
        p.on_event(now + LINGER, Event::Demand { viewers: 0, wanted: None }),
        [Action::Stop]
    );
}

#[test]
fn home_switch_is_make_before_break() {
    let (mut p, now) = live();
    // The ring moves the stream's home from a to b: subscribe at b, keep a.
    let next = Action::SubscribeNext { to: id("b"), revision: 7 };
    assert_eq!(p.on_event(now, Event::Home(Some(id("b")))), std::slice::from_ref(&next));
    // b has no forward yet: a keeps feeding viewers; b is tried again every IDLE_CHECK.
    assert_eq!(p.on_event(now, Event::NextFailed { origin: id("b") }), []);
    assert_eq!(p.next_deadline(), Some(now + IDLE_CHECK));
    assert_eq!(p.poll(now + IDLE_CHECK - ms(1)), []);
    assert_eq!(p.poll(now + IDLE_CHECK), [next]);
    // Only once b is live is a dropped.
    assert_eq!(
        p.on_event(now + secs(2), Event::NextReady { origin: id("b") }),
        [Action::Promote { to: id("b") }, Action::SwitchUpstream]
    );
    assert_eq!(p.poll(now + secs(5)), []);
    assert_eq!(p.next_deadline(), None);
    assert!(p.publishing());
}

#[test]
fn a_ring_change_that_keeps_the_home_does_nothing() {
    let (mut p, now) = live();
    assert_eq!(p.on_event(now, Event::Home(Some(id("a")))), []);
    assert_eq!(p.on_event(now, Event::Home(None)), []);
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn no_switch_before_a_ring_change_while_live() {
    // The home was known before subscribing (the lookup tried it first); subscribing at the
    // ingest instead does not start a switch by itself.
    let t0 = Instant::now();
    let mut p = PullPolicy::new(t0, LINGER, GRACE);
    assert_eq!(p.on_event(t0, Event::Home(Some(id("home")))), [Action::Subscribe]);
    assert_eq!(p.on_event(t0, subscribed("ingest", 7)), [Action::Publish]);
    assert_eq!(p.poll(t0 + secs(5)), []);
}

#[test]
fn a_home_that_moves_again_during_a_switch_is_followed() {
    let (mut p, now) = live();
    assert_eq!(
        p.on_event(now, Event::Home(Some(id("b")))),
        [Action::SubscribeNext { to: id("b"), revision: 7 }]
    );
    assert_eq!(p.on_event(now, Event::Home(Some(id("c")))), []);
    assert_eq!(
        p.on_event(now, Event::NextReady { origin: id("b") }),
        [
            Action::Promote { to: id("b") },
            Action::SwitchUpstream,
            Action::SubscribeNext { to: id("c"), revision: 7 }
        ]
    );
}

#[test]
fn losing_the_upstream_abandons_a_switch() {
    let (mut p, now) = live();
    p.on_event(now, Event::Home(Some(id("b"))));
    assert_eq!(p.on_event(now, Event::Broken), [Action::Subscribe]);
    // A late answer about the abandoned switch changes nothing.
    assert_eq!(p.on_event(now, Event::NextReady { origin: id("b") }), []);
    assert_eq!(p.on_event(now, subscribed("b", 7)), [Action::SwitchUpstream]);
}

#[test]
fn a_silent_home_is_left_for_the_ingest_make_before_break_and_tried_again_later() {
    let (mut p, now) = live();
    assert_eq!(p.on_event(now, Event::Home(Some(id("a")))), []);
    // a sends nothing for --upstream-stall; the stream is claimed by its ingest i.
    let to_ingest = Action::SubscribeNext { to: id("i"), revision: 7 };
    let got = p.on_event(now, Event::Stalled { fallbacks: vec![id("i")] });
    assert_eq!(got, std::slice::from_ref(&to_ingest));
    assert_eq!(p.on_event(now, Event::Stalled { fallbacks: vec![id("i")] }), [], "one at a time");
    let at = now + ms(300);
    assert_eq!(
        p.on_event(at, Event::NextReady { origin: id("i") }),
        [Action::Promote { to: id("i") }, Action::SwitchUpstream]
    );
    // The home is tried again only after STALL_HOLD (it may be dead but still in the ring).
    assert_eq!(p.next_deadline(), Some(at + STALL_HOLD));
    assert_eq!(p.poll(at + STALL_HOLD - ms(1)), []);
    assert_eq!(p.poll(at + STALL_HOLD), [Action::SubscribeNext { to: id("a"), revision: 7 }]);
    // The ring dropped a meanwhile (it was dead): the ingest is the home, nothing more to do.
    assert_eq!(p.on_event(at + STALL_HOLD, Event::NextFailed { origin: id("a") }), []);
    assert_eq!(p.on_event(at + STALL_HOLD, Event::Home(Some(id("i")))), []);
    assert_eq!(p.poll(at + STALL_HOLD * 2), []);
    assert!(p.publishing());
}

#[test]
fn silence_with_no_other_source_changes_nothing() {
    let (mut p, now) = live();
    // Pulling from the ingest itself, or the claim unknown: nowhere better to go.
    assert_eq!(p.on_event(now, Event::Stalled { fallbacks: vec![id("a")] }), []);
    assert_eq!(p.on_event(now, Event::Stalled { fallbacks: vec![] }), []);
    // A failed attempt at the ingest leaves the home as it was.
    p.on_event(now, Event::Stalled { fallbacks: vec![id("i")] });
    assert_eq!(p.on_event(now, Event::NextFailed { origin: id("i") }), []);
    assert!(p.publishing());
}

#[test]
fn a_silent_home_is_left_for_its_standby_then_the_ingest_and_the_standby_becoming_home_ends_it() {
    let (mut p, now) = live();
    assert_eq!(p.on_event(now, Event::Home(Some(id("a")))), []);
    let stalled = || Event::Stalled { fallbacks: vec![id("s"), id("a"), id("i")] };
    // The live upstream "a" itself is never a fallback; the standby first.
    assert_eq!(p.on_event(now, stalled()), [Action::SubscribeNext { to: id("s"), revision: 7 }]);
    // The standby has no forward yet: the ingest at once, not after a retry time.
    assert_eq!(
        p.on_event(now, Event::NextFailed { origin: id("s") }),
        [Action::SubscribeNext { to: id("i"), revision: 7 }]
    );
    assert_eq!(
        p.on_event(now, Event::NextReady { origin: id("i") }),
        [Action::Promote { to: id("i") }, Action::SwitchUpstream]
    );
    // Silent again within STALL_HOLD (the encoder paused): the pull stays where it is.
    assert_eq!(p.on_event(now + ms(500), Event::Stalled { fallbacks: vec![id("s")] }), []);
    assert_eq!(
        p.on_event(now + STALL_HOLD, Event::Stalled { fallbacks: vec![id("s")] }),
        [Action::SubscribeNext { to: id("s"), revision: 7 }]
    );
    assert_eq!(
        p.on_event(now + STALL_HOLD, Event::NextReady { origin: id("s") }),
        [Action::Promote { to: id("s") }, Action::SwitchUpstream]
    );
    // The ring drops the dead home: the standby it moved to is the home, nothing to do.
    assert_eq!(p.on_event(now + STALL_HOLD, Event::Home(Some(id("s")))), []);
    assert_eq!(p.poll(now + STALL_HOLD * 3), []);
    assert!(p.publishing());
}
