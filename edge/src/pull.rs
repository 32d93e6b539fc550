//! One stream pulled from an origin into the edge's hub.
//!
//! The task looks the stream up in the registry cache (no etcd request per viewer): its
//! *home* is its owner on the consistent-hash ring of ready origins, where the ingest origin
//! forwards it; the origin holding the claim (the *ingest*) is the fallback while a forward
//! is being set up. It subscribes over the relay with the claim's revision (a stale origin
//! answers STALE) and pushes the frames into a local hub publisher that every viewer protocol
//! reads. It runs while the stream has viewers, and `linger` after the last one leaves.
//!
//! - Ring change (an origin joined or left): the edge subscribes at the new home first and
//!   drops the old subscription only once the new one is live (make-before-break).
//! - Upstream loss (origin crash, network) or an `ENDED` while the same claim still stands
//!   (the stream moved between origins): the local publisher is kept for up to `grace` while
//!   the task resubscribes, so viewers stay connected and continue at the next keyframe with
//!   timestamps continuing.
//! - The claim is gone (the publisher left): the local publish ends at once; viewers get the
//!   unpublish notice and wait for a republish, as on an origin.
//!
//! These decisions (when to subscribe, retry, switch, end, stop) are the sans-IO
//! [`policy::PullPolicy`]; the task here is its driver: it subscribes, feeds frames into the
//! local publish, tells the policy what happened and sleeps until its next deadline.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use sluice_cluster::types::{NodeId, Snapshot, StreamRecord};
use sluice_media::stream_name::StreamKey;
use sluice_node::driver::{now, settle, sleep_until, Pending};
use sluice_node::hub::Hub;
use sluice_node::lock::lock;
use sluice_node::peers::{PeerError, Peers};
use sluice_node::placement::{relay_addr, Placement};
use sluice_node::relayed_publish::RelayedPublish;
use sluice_relay::{Frame, RelayError, RelaySubscription};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn, Instrument};

use crate::args::PullSettings;
use crate::table::PullTable;

pub mod policy;

use policy::{Action, Event, PullPolicy, IDLE_CHECK};

/// Everything one pull task needs.
pub(crate) struct PullTask {
    pub(crate) key: StreamKey,
    pub(crate) hub: Hub,
    pub(crate) placement: Placement,
    pub(crate) peers: Arc<Peers>,
    pub(crate) settings: PullSettings,
    pub(crate) pulls: PullTable,
}

/// An origin that should have the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub origin: NodeId,
    pub addr: SocketAddr,
}

/// Where to subscribe, in order of preference, and the claim to follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    pub revision: i64,
    pub candidates: Vec<Source>,
}

/// Why a stream has no usable source right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    #[error("no claim in the registry")]
    NotPublished,
    #[error("no origin with a usable relay address has the stream")]
    NoRelay,
}

/// The stream's owners by the ring (`owners`: its home, then its standbys) then its ingest
/// origin (the claim holder), with their relay addresses. Values from the registry are
/// untrusted: a missing or malformed address drops that candidate, never panics.
pub fn resolve(
    snapshot: &Snapshot,
    owners: &[NodeId],
    key: &StreamKey,
) -> Result<Sources, Unresolved> {
    let stream = snapshot.stream(key).ok_or(Unresolved::NotPublished)?;
    let ingest = &stream.info.origin;
    let mut candidates = Vec::with_capacity(owners.len() + 1);
    for origin in owners.iter().chain(std::iter::once(ingest)) {
        if candidates.iter().any(|c: &Source| &c.origin == origin) {
            continue;
        }
        if let Some(addr) = relay_addr(snapshot, origin) {
            candidates.push(Source { origin: origin.clone(), addr });
        }
    }
    if candidates.is_empty() {
        return Err(Unresolved::NoRelay);
    }
    Ok(Sources { revision: stream.revision(), candidates })
}

/// Why a subscribe at one origin failed.
#[derive(Debug, thiserror::Error)]
enum SubscribeError {
    #[error(transparent)]
    Peer(#[from] PeerError),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("subscribe timed out")]
    Timeout,
}

/// The I/O side of one pull: what the policy's actions open, switch and drop.
#[derive(Default)]
struct Io<'a> {
    /// The live subscription.
    sub: Option<RelaySubscription>,
    /// A subscribe in flight: the origin and claim it subscribed under, if any accepted.
    subscribing: Option<Pending<'a, Option<(NodeId, i64, RelaySubscription)>>>,
    /// A subscribe at the stream's new home in flight, while `sub` goes on.
    switching: Option<(NodeId, Pending<'a, Result<RelaySubscription, SubscribeError>>)>,
    /// The new home's subscription, live, waiting for [`Action::Promote`].
    next: Option<RelaySubscription>,
    /// The local publish every viewer protocol reads.
    local: Option<RelayedPublish>,
}

impl Io<'_> {
    /// Drops the live subscription and a switch in flight.
    fn drop_upstream(&mut self) {
        self.sub = None;
        self.switching = None;
        self.next = None;
    }
}

/// What woke the driver.
enum Wake {
    Event(Event),
    /// A frame was fed to the local publish: nothing to decide.
    Frame,
    /// A deadline or the demand check's tick.
    Timer,
}

pub(crate) async fn run(task: PullTask) {
    let span = tracing::info_span!("pull", stream = %task.key);
    async move {
        let gauge = task.hub.metrics().relay_upstreams.clone();
        gauge.inc();
        info!("pull started");
        task.pull().await;
        gauge.dec();
        info!("pull stopped");
    }
    .instrument(span)
    .await;
}

impl PullTask {
    fn resolve(&self, snapshot: &mut watch::Receiver<Snapshot>) -> Result<Sources, Unresolved> {
        let owners = self.placement.owners(&self.key);
        resolve(&snapshot.borrow_and_update(), &owners, &self.key)
    }

    /// Where else the stream is when its upstream went silent: its standbys by the ring, then
    /// its ingest.
    fn fallbacks(&self) -> Vec<NodeId> {
        let mut fallbacks: Vec<NodeId> =
            self.placement.owners(&self.key).into_iter().skip(1).collect();
        let ingest =
            self.placement.snapshot.borrow().stream(&self.key).map(|r| r.info.origin.clone());
        fallbacks.extend(ingest.filter(|i| !fallbacks.contains(i)));
        fallbacks
    }

    /// The driver: does the policy's actions, turns what happens into its events, and sleeps
    /// until something happens or its next deadline.
    async fn pull(&self) {
        let mut snapshot = self.placement.snapshot.clone();
        // The last claim seen, to tell a renewal of the same publish from a new one.
        let mut last_claim: Option<StreamRecord> = None;
        let mut ring = self.placement.ring.clone();
        ring.borrow_and_update();
        let (mut snapshot_open, mut ring_open) = (true, true);
        let mut policy = PullPolicy::new(now(), self.settings.linger, self.settings.grace);
        let mut io = Io::default();
        let mut events = VecDeque::new();
        let mut tick = tokio::time::interval(IDLE_CHECK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let frames_in = self.hub.metrics().relay_frames_in.clone();
        // When the live upstream last sent a frame, and whether its silence was reported.
        let mut last_frame = now();
        let mut stall_reported = false;
        let stall = self.settings.stall;
        let mut actions = policy.poll(now());
        loop {
            for action in actions.drain(..) {
                events.extend(self.act(action, &mut io, &mut snapshot));
            }
            if let Some(event) = events.pop_front() {
                actions = policy.on_event(now(), event);
                continue;
            }
            let deadline = policy.next_deadline();
            let watch_stall = !stall.is_zero() && !stall_reported && io.sub.is_some();
            let stalled_at = watch_stall.then(|| last_frame + stall);
            let wake = tokio::select! {
                frame = next_frame(&mut io.sub) => match frame {
                    Ok(Some(frame)) => {
                        last_frame = now();
                        stall_reported = false;
                        frames_in.inc();
                        if let Some(p) = io.local.as_mut() {
                            p.push(frame);
                        }
                        Wake::Frame
                    }
                    Ok(None) => {
                        io.drop_upstream();
                        let claim = self.resolve(&mut snapshot).ok().map(|s| s.revision);
                        Wake::Event(Event::Ended { claim })
                    }
                    Err(e) => {
                        warn!(error = %e, "upstream lost; resubscribing");
                        io.drop_upstream();
                        Wake::Event(Event::Broken)
                    }
                },
                subscribed = done(&mut io.subscribing) => match subscribed {
                    Some((origin, revision, sub)) => {
                        io.sub = Some(sub);
                        Wake::Event(Event::Subscribed { origin, revision })
                    }
                    None => Wake::Event(Event::SubscribeFailed),
                },
                (origin, result) = settle(&mut io.switching) => match result {
                    Ok(sub) => {
                        self.hub.metrics().relay_subscribes.inc();
                        io.next = Some(sub);
                        Wake::Event(Event::NextReady { origin })
                    }
                    // The forward may not have arrived yet: the policy retries.
                    Err(e) => {
                        debug!(to = %origin, error = %e, "new home not ready yet");
                        Wake::Event(Event::NextFailed { origin })
                    }
                },
                changed = snapshot.changed(), if snapshot_open => match changed {
                    Ok(()) => {
                        let record = snapshot.borrow_and_update().stream(&self.key).cloned();
                        Wake::Event(claim_event(&mut last_claim, record))
                    }
                    Err(_) => {
                        snapshot_open = false;
                        Wake::Frame
                    }
                },
                changed = ring.changed(), if ring_open => match changed {
                    Ok(()) => {
                        ring.borrow_and_update();
                        Wake::Event(Event::Home(self.placement.home(&self.key)))
                    }
                    Err(_) => {
                        ring_open = false;
                        Wake::Frame
                    }
                },
                _ = tick.tick() => Wake::Timer,
                () = sleep_until(deadline) => Wake::Timer,
                () = sleep_until(stalled_at) => {
                    stall_reported = true;
                    Wake::Event(Event::Stalled { fallbacks: self.fallbacks() })
                }
            };
            if let Wake::Event(Event::Subscribed { .. } | Event::NextReady { .. }) = &wake {
                // A new upstream: its silence is timed from now.
                last_frame = now();
                stall_reported = false;
            }
            actions = match wake {
                Wake::Frame => Vec::new(),
                Wake::Event(event) => policy.on_event(now(), event),
                // The demand check also polls the policy's deadlines (grace, retry, linger):
                // every action it returns must be carried out.
                Wake::Timer => match self.check_demand(&mut policy) {
                    Some(actions) => actions,
                    None => return,
                },
            };
        }
    }

    /// Does one of the policy's actions; an answer known at once is returned as an event.
    fn act<'a>(
        &'a self,
        action: Action,
        io: &mut Io<'a>,
        snapshot: &mut watch::Receiver<Snapshot>,
    ) -> Option<Event> {
        match action {
            Action::Subscribe => match self.resolve(snapshot) {
                Ok(sources) => {
                    io.subscribing = Some(Box::pin(self.subscribe_any(sources)));
                    None
                }
                Err(why) => {
                    debug!(%why, "no upstream yet");
                    Some(match why {
                        Unresolved::NotPublished => Event::NotPublished,
                        Unresolved::NoRelay => Event::NoRelay,
                    })
                }
            },
            Action::SubscribeNext { to, revision } => {
                let Some(addr) = relay_addr(&self.placement.snapshot.borrow(), &to) else {
                    return Some(Event::NextFailed { origin: to });
                };
                let next = Source { origin: to.clone(), addr };
                io.switching = Some((to, Box::pin(self.subscribe(next, revision))));
                None
            }
            Action::Promote { .. } => {
                // Make-before-break: the old subscription ends here, the new one is live; the
                // new home relays the same timeline, so viewers just go on.
                io.sub = io.next.take();
                None
            }
            Action::Unsubscribe => {
                io.drop_upstream();
                None
            }
            Action::Publish => match self.hub.publish(&self.key) {
                Ok(p) => {
                    io.local = Some(RelayedPublish::new_for_viewers(p));
                    None
                }
                Err(e) => {
                    warn!(error = %e, "cannot publish the pulled stream locally");
                    io.drop_upstream();
                    Some(Event::PublishRefused)
                }
            },
            // The same claim keeps the ingest's timeline (timestamps pass through); a new claim
            // is a new source session, rebased to continue for connected viewers.
            Action::SwitchUpstream => {
                if let Some(p) = io.local.as_mut() {
                    p.switch_upstream();
                }
                None
            }
            Action::NewSession => {
                if let Some(p) = io.local.as_mut() {
                    p.new_session();
                }
                None
            }
            Action::EndLocal(why) => {
                if io.local.take().is_some() {
                    info!(why = why.as_str(), "local publish ended");
                }
                None
            }
            // Only ever the answer to a demand check, handled there.
            Action::Stop => None,
        }
    }

    /// Subscribes at the first candidate that accepts.
    async fn subscribe_any(&self, sources: Sources) -> Option<(NodeId, i64, RelaySubscription)> {
        let metrics = self.hub.metrics();
        for source in sources.candidates {
            match self.subscribe(source.clone(), sources.revision).await {
                Ok(sub) => {
                    metrics.relay_subscribes.inc();
                    info!(origin = %source.origin, revision = sources.revision, "subscribed upstream");
                    return Some((source.origin, sources.revision, sub));
                }
                Err(e) => {
                    metrics.relay_subscribe_failures.inc();
                    info!(origin = %source.origin, addr = %source.addr, error = %e, "upstream subscribe failed");
                }
            }
        }
        None
    }

    async fn subscribe(
        &self,
        source: Source,
        revision: i64,
    ) -> Result<RelaySubscription, SubscribeError> {
        let conn = self.peers.get(source.origin.as_str(), source.addr).await?;
        let traceparent = sluice_node::trace_context::current_traceparent();
        let sub = conn.subscribe_traced(self.key.app(), self.key.name(), revision, &traceparent);
        match tokio::time::timeout(self.settings.connect_timeout, sub).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(SubscribeError::Timeout),
        }
    }

    /// Tells the policy the stream's demand (which also runs its deadlines: grace, retry,
    /// linger) and returns the actions to carry out, or `None` when the pull stops. Decided under
    /// the table lock, so a viewer arriving now either sees this task running (and it keeps
    /// running) or sees it gone (and starts a new one).
    fn check_demand(&self, policy: &mut PullPolicy) -> Option<Vec<Action>> {
        let mut pulls = lock(&self.pulls);
        let entry = pulls.get(&self.key);
        let ours = entry.is_some_and(|e| e.task.id() == tokio::task::id());
        let viewers = self.hub.viewer_count(&self.key);
        let wanted = entry.map(|e| e.wanted.into_std());
        let actions = policy.on_event(now(), Event::Demand { viewers, wanted });
        if !actions.contains(&Action::Stop) {
            return Some(actions);
        }
        if ours {
            pulls.remove(&self.key);
        }
        None
    }
}

/// The next frame of the live subscription; never, without one.
async fn next_frame(sub: &mut Option<RelaySubscription>) -> Result<Option<Frame>, RelayError> {
    match sub.as_mut() {
        Some(sub) => sub.next_frame().await,
        None => std::future::pending().await,
    }
}

/// Waits for the subscribe in flight, if any, and clears it.
async fn done<T>(pending: &mut Option<Pending<'_, T>>) -> T {
    let Some(fut) = pending.as_mut() else { return std::future::pending().await };
    let out = fut.as_mut().await;
    *pending = None;
    out
}

/// The policy event for a registry change that shows `record` (`None`: unclaimed): a claim
/// re-taken by the same origin for the same publish (same start time) as the last one seen is
/// a renewal, anything else a claim.
fn claim_event(last: &mut Option<StreamRecord>, record: Option<StreamRecord>) -> Event {
    let Some(record) = record else {
        return Event::Claim(None);
    };
    let renewed = last.as_ref().filter(|old| {
        old.revision() != record.revision()
            && old.info.origin == record.info.origin
            && old.info.started_at_ms != 0
            && old.info.started_at_ms == record.info.started_at_ms
    });
    let event = match renewed {
        Some(old) => Event::ClaimRenewed { from: old.revision(), to: record.revision() },
        None => Event::Claim(Some(record.revision())),
    };
    *last = Some(record);
    event
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use sluice_cluster::types::{NodeInfo, NodeRecord, Role, StreamInfo, StreamRecord};

    fn id(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    fn origin(snap: &mut Snapshot, name: &str, relay: Option<&str>) {
        let mut info = NodeInfo::default();
        if let Some(r) = relay {
            info.addresses.insert("relay".into(), r.into());
        }
        let rec = NodeRecord {
            role: Role::Origin,
            id: id(name),
            info,
            lease: 1,
            create_revision: 1,
            mod_revision: 1,
        };
        snap.nodes.insert((Role::Origin, id(name)), rec);
    }

    fn stream(snap: &mut Snapshot, key: &StreamKey, ingest: &str, revision: i64) {
        let info = StreamInfo {
            origin: id(ingest),
            codecs: vec![],
            started_at_ms: 0,
            rendition_of: None,
            playout: false,
        };
        let rec = StreamRecord {
            stream: key.clone(),
            info,
            lease: 1,
            create_revision: revision,
            mod_revision: revision,
        };
        snap.streams.insert(key.clone(), rec);
    }

    #[test]
    fn home_and_standbys_first_then_ingest_and_bad_addresses_are_skipped() {
        let key = StreamKey::parse("live", "s").unwrap().0;
        let mut snap = Snapshot::default();
        assert_eq!(resolve(&snap, &[], &key), Err(Unresolved::NotPublished));
        origin(&mut snap, "a", Some("127.0.0.1:7000"));
        origin(&mut snap, "b", Some("not an address"));
        origin(&mut snap, "c", Some("127.0.0.1:7002"));
        stream(&mut snap, &key, "a", 42);
        let got = resolve(&snap, &[id("c")], &key).unwrap();
        assert_eq!(got.revision, 42);
        let order: Vec<&str> = got.candidates.iter().map(|c| c.origin.as_str()).collect();
        assert_eq!(order, ["c", "a"]);
        // The ingest is the standby: it comes once, in the standby's place.
        origin(&mut snap, "d", Some("127.0.0.1:7003"));
        let got = resolve(&snap, &[id("d"), id("a"), id("c")], &key).unwrap();
        let order: Vec<&str> = got.candidates.iter().map(|c| c.origin.as_str()).collect();
        assert_eq!(order, ["d", "a", "c"]);
        // The home is the ingest: one candidate.
        assert_eq!(resolve(&snap, &[id("a")], &key).unwrap().candidates.len(), 1);
        // A home with a malformed address is skipped; the ingest remains.
        let got = resolve(&snap, &[id("b")], &key).unwrap();
        assert_eq!(
            got.candidates,
            vec![Source { origin: id("a"), addr: "127.0.0.1:7000".parse().unwrap() }]
        );
        // Nobody reachable.
        stream(&mut snap, &key, "b", 43);
        assert_eq!(resolve(&snap, &[id("b")], &key), Err(Unresolved::NoRelay));
    }

    /// The driver's clock is tokio's: with paused time, a policy deadline is slept to exactly.
    #[tokio::test(start_paused = true)]
    async fn the_driver_sleeps_to_the_policy_deadline_on_tokio_time() {
        let t0 = now();
        let linger = Duration::from_secs(10);
        let mut policy = PullPolicy::new(t0, linger, Duration::from_secs(15));
        assert_eq!(policy.poll(t0), [Action::Subscribe]);
        assert_eq!(policy.on_event(t0, Event::Demand { viewers: 0, wanted: None }), []);
        let deadline = policy.next_deadline();
        assert_eq!(deadline, Some(t0 + linger));
        sleep_until(deadline).await;
        assert_eq!(now() - t0, linger);
        let stop = policy.on_event(now(), Event::Demand { viewers: 0, wanted: None });
        assert_eq!(stop, [Action::Stop]);
    }

    fn record(revision: i64, origin: &str, started_at_ms: u64) -> StreamRecord {
        StreamRecord {
            stream: StreamKey::parse("live", "x").unwrap().0,
            info: StreamInfo {
                origin: NodeId::new(origin).unwrap(),
                codecs: vec![],
                started_at_ms,
                rendition_of: None,
                playout: false,
            },
            lease: 1,
            create_revision: revision,
            mod_revision: revision,
        }
    }

    #[test]
    fn only_the_same_publish_re_claimed_by_the_same_origin_is_a_renewal() {
        let mut last = None;
        assert_eq!(claim_event(&mut last, Some(record(7, "a", 100))), Event::Claim(Some(7)));
        assert_eq!(claim_event(&mut last, Some(record(7, "a", 100))), Event::Claim(Some(7)));
        // The key is gone for a moment while the lease is renewed: the last claim is kept.
        assert_eq!(claim_event(&mut last, None), Event::Claim(None));
        let renewed = claim_event(&mut last, Some(record(12, "a", 100)));
        assert_eq!(renewed, Event::ClaimRenewed { from: 7, to: 12 });
        // Published again (a later start), or by another origin: a new claim.
        assert_eq!(claim_event(&mut last, Some(record(15, "a", 200))), Event::Claim(Some(15)));
        assert_eq!(claim_event(&mut last, Some(record(18, "b", 200))), Event::Claim(Some(18)));
        // Without a start time nothing proves it is the same publish.
        let mut last = Some(record(7, "a", 0));
        assert_eq!(claim_event(&mut last, Some(record(9, "a", 0))), Event::Claim(Some(9)));
    }
}
