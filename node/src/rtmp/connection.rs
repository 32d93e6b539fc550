//! The tokio driver of one RTMP connection: socket bytes into the sans-IO
//! [`ServerSession`], its events into the hub, hub deliveries and session output back out.
//!
//! One task per connection, no per-connection channels: the task waits on socket readability
//! (only while the write queue is short), writability (only while something is queued), the
//! stream's wake-up (only while playing and the write queue is short) and a deadline.
//!
//! What a peer can make the connection hold is bounded: a peer that provokes replies without
//! reading them fills the write queue, which stops the reading (its further bytes stay in the
//! kernel), and a queue that still reaches `--max-output-queue` closes the connection. Deadlines
//! are about progress of the session, not bytes: handshake + `connect`, then publish/play
//! within `--start-timeout`, then media in (publisher) or out (player) within `--idle-timeout`.

use sluice_cluster::types::Claim;
use sluice_media::rtmp::server::{ServerEvent, ServerSession, MEDIA_STREAM_ID};
use sluice_media::stream_name::StreamKey;
use std::io;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{debug, info, Instrument};

use super::claim_guard::ClaimGuard;
use super::deadlines::{Deadlines, Expired, Phase, Timeouts};
use super::error::ConnectionError;
use super::publish_gate::{NotClaimed, PendingClaim};
use super::transport::Transport;

mod play;
mod publish;
use super::RtmpContext;
use crate::hub::log::Delivery;
use crate::hub::{KickReason, Publisher, Subscription};
use crate::log_limit::printable;
use crate::out_queue::OutQueue;

/// Stop collecting media for a player while this much is queued for its socket.
const PLAYER_HIGH_WATER: usize = 256 * 1024;
/// Most media bytes taken from the log per collection.
const COLLECT_BATCH: usize = 128 * 1024;
/// Most bytes read at once by a connection that does not publish (handshake, commands, acks).
const READ_BUF_SMALL: usize = 4 * 1024;
/// Most bytes read at once by a publisher.
const READ_BUF_PUBLISHER: usize = 64 * 1024;

std::thread_local! {
    /// The read buffer of every connection on this thread: what is read goes straight into the
    /// session (which keeps only what it cannot parse yet), so no connection needs its own.
    static READ_SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0; READ_BUF_PUBLISHER].into_boxed_slice());
}
/// Stop reading the socket while this much is queued for it: whatever the peer sends next
/// could only provoke more output it does not take.
const READ_PAUSE: usize = PLAYER_HIGH_WATER;

/// Why a play/publish name does not name a stream.
#[derive(Debug, thiserror::Error)]
enum KeyError {
    #[error("play/publish before connect")]
    NotConnected,
    #[error(transparent)]
    Name(#[from] sluice_media::stream_name::NameError),
}

/// What the connection is doing with a stream (none, claiming, publishing, waiting, playing).
enum Activity {
    None,
    /// Waiting for the registry to grant the stream name.
    Claiming {
        stream_id: u32,
        key: StreamKey,
        claim: PendingClaim,
    },
    /// Field order matters: the publisher ends before its claim is released.
    /// Boxed: most connections are players, and this is the largest variant by far.
    Publishing {
        stream_id: u32,
        publisher: Box<Publisher>,
        _forward: Option<crate::forward::ForwardGuard>,
        _claim: Box<ClaimGuard>,
        /// Its app's quota, when it has one.
        quota: Option<Box<super::publish_quota::QuotaCheck>>,
    },
    /// Waiting for the webhook's answer to a play (`--play-webhook-apps`).
    Asking {
        stream_id: u32,
        key: StreamKey,
        name: String,
        reset: bool,
        answer: play::PendingAnswer,
    },
    Waiting {
        sub: Subscription,
        stream_id: u32,
        name: String,
        reset: bool,
        deadline: Instant,
    },
    Playing {
        sub: Subscription,
        stream_id: u32,
        name: String,
    },
}

pub(super) struct Connection {
    ctx: Arc<RtmpContext>,
    stream: Transport,
    session: ServerSession,
    out: OutQueue,
    app: Option<String>,
    activity: Activity,
    /// Progress of the session (`connect` accepted, publish/play started, media received from
    /// a publisher or written to a player): the deadlines count from it, not from any byte.
    deadlines: Deadlines,
    deliveries: Vec<Delivery>,
    /// Tells the webhook `on_play_done` when the play ends (dropped). Boxed: only players of
    /// webhook apps have one, and every connection would otherwise keep its room.
    play_done: Option<Box<crate::webhook::PlayDone>>,
    /// The connection's span, entered wherever the connection may log (not on a player's
    /// per-frame path: media wake-ups and writes).
    span: tracing::Span,
}

impl Connection {
    pub(super) fn new(ctx: Arc<RtmpContext>, stream: Transport, span: tracing::Span) -> Self {
        let seed: [u8; 32] = rand::random();
        let epoch = ctx.epoch.elapsed().as_millis() as u32;
        let session = ServerSession::new(ctx.session_config.clone(), seed, epoch);
        let now = Instant::now();
        // A player may hold the high-water mark, a batch and one whole media message: a
        // smaller cap would close healthy players on their next reply.
        let floor = ctx.limits.max_message_size + PLAYER_HIGH_WATER + COLLECT_BATCH;
        let out = OutQueue::with_cap(ctx.limits.max_output_queue.max(floor));
        let timeouts = Timeouts {
            handshake: ctx.limits.handshake_timeout,
            start: ctx.limits.start_timeout,
            idle: ctx.limits.idle_timeout,
        };
        Connection {
            ctx,
            stream,
            session,
            out,
            app: None,
            activity: Activity::None,
            deadlines: Deadlines::new(timeouts, now),
            deliveries: Vec::new(),
            play_done: None,
            span,
        }
    }

    /// Run the connection, then log how it ended (in its span) and count it closed.
    pub(super) async fn run_to_end(&mut self) {
        let result = self.run().await;
        let ctx = &self.ctx;
        self.span.in_scope(|| match result {
            Ok(()) => debug!("connection closed"),
            Err(e) if e.is_disconnect() => debug!(error = %e, "peer disconnected"),
            Err(e) => {
                ctx.metrics.error(e.kind());
                if ctx.error_log.allow() {
                    // Session errors may quote what the peer sent (a command name).
                    let error = printable(&e.to_string(), 200);
                    info!(%error, kind = e.kind().as_str(), "connection closed with error");
                }
            }
        });
        ctx.metrics.connections.dec();
    }

    /// `&mut self`, not `self`: an `async fn` taking `self` by value keeps two copies of it in its
    /// future (the argument and the moved-in local), a kilobyte more in every connection's task.
    async fn run(&mut self) -> Result<(), ConnectionError> {
        // One timer per connection, re-armed only when the deadline moves earlier or it fires
        // (activity pushes the deadline later; re-arming per frame would churn the timer wheel).
        let mut armed = self.deadline();
        let timer = tokio::time::sleep_until(armed);
        tokio::pin!(timer);
        loop {
            self.fill_output()?;
            if !self.out.is_empty() {
                self.flush()?;
            }
            let deadline = self.deadline();
            if deadline < armed {
                armed = deadline;
                timer.as_mut().reset(armed);
            }
            let want_media =
                matches!(self.activity, Activity::Playing { .. } | Activity::Waiting { .. })
                    && self.out.len() < PLAYER_HIGH_WATER;
            let want_input = self.out.len() < READ_PAUSE;
            tokio::select! {
                ready = std::future::poll_fn(|cx| self.stream.poll_readable(cx)), if want_input => {
                    ready?;
                    let _in = self.span.clone().entered();
                    match self.read_into_session() {
                        Ok(0) => return Ok(()),
                        Ok(n) => {
                            if matches!(self.activity, Activity::Publishing { .. }) {
                                self.ctx.metrics.bytes_in.inc_by(n as u64);
                            }
                            self.handle_events()?;
                        }
                        Err(ConnectionError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                ready = std::future::poll_fn(|cx| self.stream.poll_writable(cx)),
                    if !self.out.is_empty() || self.stream.wants_write() => {
                    ready?;
                    self.stream.flush_tls()?;
                    self.flush()?;
                }
                wake = activity_wake(&mut self.activity, want_media) => {
                    // Media is the per-frame path: the loop's top collects and writes it.
                    if matches!(wake, Wake::Media) {
                        continue;
                    }
                    let in_span = self.span.clone().entered();
                    match wake {
                        Wake::Kicked(reason) => {
                            self.tell_kicked(&reason);
                            // Boxed: its state (a discard buffer, a timer) is needed only at
                            // the end, and would otherwise sit in every connection's future.
                            Box::pin(super::linger::close_after(&mut self.stream, &mut self.out))
                                .instrument(in_span.exit())
                                .await;
                            return Ok(());
                        }
                        Wake::Closed => {
                            if self.ctx.client_log.allow() {
                                info!("player closed: this node's drain deadline passed");
                            }
                            return Ok(());
                        }
                        Wake::Claimed(result) => self.on_claimed(result),
                        Wake::Answered(result) => self.on_answered(result),
                        Wake::Media => {} // handled above
                    }
                }
                _ = &mut timer => {
                    let _in = self.span.clone().entered();
                    self.on_deadline()?;
                    armed = self.deadline();
                    timer.as_mut().reset(armed);
                }
            }
        }
    }

    /// Read what the socket has (up to a publisher's or a player's share) through the
    /// thread's scratch buffer into the session. `Ok(0)`: the peer closed.
    fn read_into_session(&mut self) -> Result<usize, ConnectionError> {
        let limit = if matches!(self.activity, Activity::Publishing { .. }) {
            READ_BUF_PUBLISHER
        } else {
            READ_BUF_SMALL
        };
        READ_SCRATCH.with_borrow_mut(|buf| {
            let n = self.stream.try_read(&mut buf[..limit])?;
            if n > 0 {
                self.session.receive(&buf[..n])?;
            }
            Ok(n)
        })
    }

    fn phase(&self) -> Phase {
        match &self.activity {
            Activity::None => Phase::Starting,
            Activity::Waiting { deadline, .. } => Phase::Waiting(*deadline),
            Activity::Claiming { .. }
            | Activity::Asking { .. }
            | Activity::Publishing { .. }
            | Activity::Playing { .. } => Phase::Active,
        }
    }

    fn deadline(&self) -> Instant {
        self.deadlines.next(self.phase())
    }

    fn on_deadline(&mut self) -> Result<(), ConnectionError> {
        match self.deadlines.check(self.phase(), Instant::now()) {
            None => Ok(()),
            Some(Expired::Handshake) => {
                Err(ConnectionError::Timeout("handshake and connect not completed in time"))
            }
            Some(Expired::Start) => {
                Err(ConnectionError::Timeout("no publish or play started in time"))
            }
            Some(Expired::Idle) => Err(ConnectionError::Timeout("idle: no media in or out")),
            Some(Expired::Wait) => {
                if let Activity::Waiting { stream_id, name, .. } =
                    std::mem::replace(&mut self.activity, Activity::None)
                {
                    debug!(stream = %printable(&name, 64), "play: stream not published within the wait timeout");
                    self.session.play_not_found(stream_id, &name);
                    self.play_done = None;
                }
                Ok(())
            }
        }
    }

    /// Queue session output, then (for a player) media from the hub.
    fn fill_output(&mut self) -> Result<(), ConnectionError> {
        self.take_transmit()?;
        if let Activity::Waiting { sub, .. } = &self.activity {
            if sub.is_live() {
                let Activity::Waiting { mut sub, stream_id, name, reset, .. } =
                    std::mem::replace(&mut self.activity, Activity::None)
                else {
                    unreachable!()
                };
                self.session.accept_play(stream_id, &name, reset);
                self.take_transmit()?;
                sub.start_playing();
                self.activity = Activity::Playing { sub, stream_id, name };
                self.deadlines.progress(Instant::now());
            }
        }
        let Activity::Playing { sub, stream_id, name } = &mut self.activity else { return Ok(()) };
        if self.out.len() >= PLAYER_HIGH_WATER || !sub.has_pending() {
            return Ok(());
        }
        sub.collect(&mut self.deliveries, COLLECT_BATCH);
        let fast = *stream_id == MEDIA_STREAM_ID;
        for delivery in self.deliveries.drain(..) {
            match delivery {
                Delivery::Media(p) if fast => self.out.push(p.rtmp.clone()),
                Delivery::Media(p) => {
                    self.session.send_media(*stream_id, &p.message());
                    if let Some(b) = self.session.poll_transmit() {
                        self.out.push(b);
                    }
                }
                Delivery::Unpublished => {
                    self.session.unpublish_notify(*stream_id, name);
                    if let Some(b) = self.session.poll_transmit() {
                        self.out.push(b);
                    }
                }
                Delivery::Republished => {
                    self.session.publish_notify(*stream_id, name);
                    if let Some(b) = self.session.poll_transmit() {
                        self.out.push(b);
                    }
                }
            }
        }
        Delivery::shrink_after_burst(&mut self.deliveries);
        Ok(())
    }

    /// Move the session's replies and control messages to the write queue, within its cap.
    /// (Media is admitted by [`PLAYER_HIGH_WATER`] instead, and never closes a slow player.)
    fn take_transmit(&mut self) -> Result<(), ConnectionError> {
        while let Some(b) = self.session.poll_transmit() {
            self.out.push_capped(b).map_err(|full| ConnectionError::OutputFull {
                queued: full.queued,
                limit: full.cap,
            })?;
        }
        Ok(())
    }

    /// End a stopped publisher's session (its publisher and claim go now) and queue the
    /// onStatus error that tells the encoder why (sent as the connection closes).
    fn tell_kicked(&mut self, reason: &KickReason) {
        let Activity::Publishing { stream_id, publisher, .. } = &self.activity else { return };
        let (stream_id, key) = (*stream_id, publisher.key().clone());
        if self.ctx.client_log.allow() {
            info!(stream = %key, reason = reason.label(), "publisher stopped");
        }
        self.activity = Activity::None;
        self.session.reject_publish(stream_id, reason.code(), &reason.description(&key));
        let _ = self.take_transmit();
    }

    fn flush(&mut self) -> Result<(), ConnectionError> {
        let n = self.out.write_to(&mut self.stream)?;
        if n > 0 && matches!(self.activity, Activity::Playing { .. }) {
            self.deadlines.progress(Instant::now());
            self.ctx.bytes_out_rtmp.inc_by(n as u64);
        }
        Ok(())
    }

    fn handle_events(&mut self) -> Result<(), ConnectionError> {
        while let Some(event) = self.session.poll_event() {
            match event {
                ServerEvent::HandshakeDone { digest } => debug!(digest, "handshake done"),
                ServerEvent::Connect { app, tc_url } => self.on_connect(&app, tc_url.as_deref()),
                ServerEvent::Publish { stream_id, name, .. } => self.on_publish(stream_id, &name),
                ServerEvent::Play { stream_id, name, reset, .. } => {
                    self.on_play(stream_id, &name, reset);
                }
                ServerEvent::Media { message, .. } => {
                    if let Activity::Publishing { publisher, _claim, quota, .. } =
                        &mut self.activity
                    {
                        let now = Instant::now();
                        self.deadlines.progress(now);
                        publisher.push(message)?;
                        if let Some(quota) = quota {
                            quota.on_media(&self.ctx, publisher, now);
                        }
                        if publisher.codecs() != _claim.codecs.as_slice() {
                            _claim.advertise_codecs(publisher.codecs());
                        }
                    }
                }
                ServerEvent::Unpublish { .. } => {
                    if matches!(
                        self.activity,
                        Activity::Publishing { .. } | Activity::Claiming { .. }
                    ) {
                        self.activity = Activity::None;
                    }
                }
                ServerEvent::StopPlay { .. } => {
                    if matches!(
                        self.activity,
                        Activity::Playing { .. }
                            | Activity::Waiting { .. }
                            | Activity::Asking { .. }
                    ) {
                        self.activity = Activity::None;
                        self.play_done = None;
                    }
                }
                ServerEvent::BufferLength { .. } => {}
            }
        }
        Ok(())
    }

    fn on_connect(&mut self, app: &str, tc_url: Option<&str>) {
        match StreamKey::parse(app, "probe") {
            Ok((key, _)) => {
                debug!(app = key.app(), tc_url = %printable(tc_url.unwrap_or(""), 128), "connect");
                self.app = Some(key.app().to_string());
                self.deadlines.connected(Instant::now());
                self.session.accept_connect();
            }
            Err(e) => {
                if self.ctx.client_log.allow() {
                    info!(app = %printable(app, 64), error = %e, "connect refused: bad app name");
                }
                self.session.reject_connect(&format!("invalid app name: {e}"));
            }
        }
    }

    /// The peer's address (unspecified if the socket no longer knows it).
    fn client_ip(&self) -> std::net::IpAddr {
        self.stream.peer_addr().map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |a| a.ip())
    }

    /// Whether `key` is live here as a forward from another origin.
    fn hosted(&self, key: &StreamKey) -> bool {
        self.ctx.forwarding.as_ref().is_some_and(|f| f.hosts(key))
    }

    fn key_for(&self, name: &str) -> Result<StreamKey, KeyError> {
        let app = self.app.as_deref().ok_or(KeyError::NotConnected)?;
        Ok(StreamKey::parse(app, name).map(|(key, _query)| key)?)
    }
}

enum Wake {
    Media,
    Kicked(KickReason),
    /// The hub closed this player (a drain order's deadline).
    Closed,
    Claimed(Result<Claim, NotClaimed>),
    Answered(Result<(), String>),
}

/// Resolves when the activity needs attention: new media for a player, takeover for a publisher.
async fn activity_wake(activity: &mut Activity, want_media: bool) -> Wake {
    let waiting = matches!(activity, Activity::Waiting { .. });
    match activity {
        Activity::Playing { sub, .. } | Activity::Waiting { sub, .. } if want_media => {
            // Playing: a batch limit may have left media behind, so take it now, not at the
            // next frame. Waiting: nothing is collected before the stream is live, so wait for
            // a change instead (`has_pending` would stay true and spin the loop; the first
            // `changed` returns at once, marking the subscription's first ring seen).
            let ready = if waiting { sub.is_live() } else { sub.has_pending() };
            if !ready && !sub.is_closed() {
                sub.changed().await;
            }
            if sub.is_closed() {
                return Wake::Closed;
            }
            Wake::Media
        }
        Activity::Publishing { publisher, .. } => Wake::Kicked(publisher.kicked().await),
        Activity::Claiming { claim, .. } => Wake::Claimed(claim.as_mut().await),
        Activity::Asking { answer, .. } => Wake::Answered(answer.as_mut().await),
        _ => std::future::pending().await,
    }
}
