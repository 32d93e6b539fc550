//! One playout: a file ([`Source`]: FLV or MP4) read a bounded piece at a time and published into the hub in real
//! time ([`super::pacer::Pacer`]), as a publisher that gives way to a live one
//! ([`Hub::publish_yielding`]). While displaced it keeps its place in time (reading and pacing,
//! publishing nothing); once the name is free again it publishes anew from the next keyframe,
//! sequence headers first. A playout that starts behind its scheduled time reads on without
//! publishing until it has caught up, then goes live at the next keyframe. In a cluster it
//! publishes only while it holds the name's claim ([`super::Claims`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice_media::codec::{parse_audio_tag, parse_video_tag, AudioPacket, FrameType, VideoPacket};
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::stream_name::StreamKey;
use tokio::sync::watch;
use tracing::{info, warn};

use super::pacer::Pacer;
use super::schedule::State;
use super::source::{Input, Source};
use super::{Claims, Ready};
use crate::hub::{Hub, KickReason, Publisher};

/// How far behind its time a tag may be and still start a publish: a playout further behind
/// (a late start) reads on without publishing until it catches up.
const LATE: Duration = Duration::from_secs(1);
/// How far before its place a late indexed file starts reading (to find a keyframe to go on air
/// from).
const SKIP_MARGIN_MS: u64 = 3000;
/// How long a keyframe waits for a claim in flight: polls, and the time between them.
const CLAIM_POLLS: u32 = 25;
const CLAIM_POLL: Duration = Duration::from_millis(20);

/// What a playout is told to do.
pub struct Job {
    pub hub: Hub,
    pub key: StreamKey,
    pub input: Input,
    pub looped: bool,
    /// When the file's first tag is due (its scheduled time: in the past for a late start).
    pub start: Instant,
    /// The name's claim in a cluster.
    pub claims: Arc<dyn Claims>,
    /// Set to true to stop.
    pub stop: watch::Receiver<bool>,
    /// Told of each change of state.
    pub report: Box<dyn Fn(State) + Send + Sync>,
    /// A turn to read on without pacing (catching up), shared by the node's playouts.
    pub catch_ups: Arc<tokio::sync::Semaphore>,
}

/// The sequence headers and metadata seen so far: sent first to every new publish.
#[derive(Default)]
struct Headers {
    video: Option<Bytes>,
    audio: Option<Bytes>,
    data: Option<Bytes>,
    has_video: bool,
}

impl Headers {
    /// Keep `tag` if it is a header; whether it was one.
    fn keep(&mut self, kind: MediaKind, payload: &Bytes) -> bool {
        let slot = match kind {
            MediaKind::Video => {
                self.has_video = true;
                match parse_video_tag(payload) {
                    Ok(t) if matches!(t.packet, VideoPacket::SequenceStart) => &mut self.video,
                    _ => return false,
                }
            }
            MediaKind::Audio => match parse_audio_tag(payload) {
                Ok(t) if matches!(t.packet, AudioPacket::SequenceStart) => &mut self.audio,
                _ => return false,
            },
            MediaKind::Data => &mut self.data,
        };
        *slot = Some(payload.clone());
        true
    }

    fn send(&self, publisher: &mut Publisher, timestamp: u32) {
        let all = [
            (MediaKind::Data, &self.data),
            (MediaKind::Video, &self.video),
            (MediaKind::Audio, &self.audio),
        ];
        for (kind, payload) in all {
            if let Some(payload) = payload {
                let _ = publisher.push(MediaMessage { kind, timestamp, payload: payload.clone() });
            }
        }
    }
}

fn is_keyframe(kind: MediaKind, payload: &Bytes) -> bool {
    kind == MediaKind::Video
        && parse_video_tag(payload).is_ok_and(|t| {
            t.frame_type == FrameType::Key && matches!(t.packet, VideoPacket::CodedFrames { .. })
        })
}

/// Wait until `at`, or until `publisher` is kicked: taken over by a live publisher (then it
/// is dropped and the playout goes on displaced) or ended for another reason (an operator's
/// kick, a drain: the entry ends here). False when the entry is stopped or ended.
async fn wait(
    at: Instant,
    publisher: &mut Option<Publisher>,
    job: &mut Job,
    reported: &mut State,
) -> bool {
    let key = &job.key;
    loop {
        let kicked = async {
            match publisher {
                Some(p) => p.kicked().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(at.into()) => return true,
            _ = job.stop.changed() => return false,
            reason = kicked => {
                *publisher = None;
                match reason {
                    KickReason::TakenOver | KickReason::ClaimLost { .. } => {
                        info!(stream = %key, ?reason, "playout gave way to another publisher");
                        job.claims.displaced(key);
                        set(job.report.as_ref(), reported, State::Displaced);
                    }
                    reason => {
                        info!(stream = %key, ?reason, "playout kicked: the entry ends here");
                        return false;
                    }
                }
            }
        }
    }
}

/// Whether the name is claimed: asked for when not yet, and a claim in flight waited for a
/// moment (an etcd round trip), so the keyframe at hand can go out; not waited for when the
/// name is another's now.
async fn claimed(job: &Job) -> bool {
    for _ in 0..CLAIM_POLLS {
        match job.claims.ready(&job.key) {
            Ready::Yes => return true,
            Ready::No => return false,
            Ready::Claiming => tokio::time::sleep(CLAIM_POLL).await,
        }
    }
    job.claims.ready(&job.key) == Ready::Yes
}

/// Report `state` if it is not the one reported last.
fn set(report: &(dyn Fn(State) + Send + Sync), reported: &mut State, state: State) {
    if *reported != state {
        *reported = state;
        report(state);
    }
}

/// Play the job's file out until it ends (once) or the job is stopped; the state it ended in.
pub async fn run(mut job: Job) -> State {
    let mut publisher: Option<Publisher> = None;
    let end = play(&mut job, &mut publisher).await;
    // The stream ends here before its claim is let go (and a claim asked for but not used is
    // let go too).
    drop(publisher);
    job.claims.ended(&job.key);
    end
}

async fn play(job: &mut Job, publisher: &mut Option<Publisher>) -> State {
    let mut pacer = Pacer::new(job.start);
    let mut headers = Headers::default();
    // The codecs the claim was told of.
    let mut told: Vec<String> = Vec::new();
    // This playout's turn to catch up, while it reads on without pacing.
    let mut turn: Option<tokio::sync::OwnedSemaphorePermit> = None;
    // Reported as playing once on air.
    let mut reported = State::Waiting;
    let mut source = match Source::open(&job.input).await {
        Ok(s) => s,
        Err(e) => {
            warn!(stream = %job.key, input = %job.input, error = %e, "playout: cannot play the file");
            return State::Failed;
        }
    };
    loop {
        let now = tokio::time::Instant::now().into_std();
        pacer.skip_passes(now);
        // Behind its time (a late start): an indexed file skips to where it should be.
        let behind = pacer.behind(now);
        if let Some(duration) = source.duration_ms() {
            if !job.looped && behind > duration + LATE.as_millis() as u64 {
                info!(stream = %job.key, input = %job.input, "playout: its time is past: nothing to play");
                return State::Done;
            }
            // The pass keeps the file's own timeline, wherever reading starts.
            if let Some(first) = source.first_ms() {
                pacer.set_first(first);
                source.skip_to(u64::from(first) + behind.saturating_sub(SKIP_MARGIN_MS));
            }
        }
        let mut tags = 0u64;
        loop {
            let tag = match source.next().await {
                Ok(Some(tag)) => tag,
                Ok(None) => break,
                Err(e) => {
                    warn!(stream = %job.key, input = %job.input, error = %e, "playout: the file cannot be played on");
                    return State::Failed;
                }
            };
            tags += 1;
            let (timestamp, due) = pacer.place(tag.timestamp);
            // Behind its time and not on air: read on, publish nothing, until caught up.
            let late = publisher.is_none() && due + LATE < tokio::time::Instant::now().into_std();
            if late {
                if turn.is_none() {
                    let catch_ups = job.catch_ups.clone();
                    tokio::select! {
                        permit = catch_ups.acquire_owned() => turn = permit.ok(),
                        _ = job.stop.changed() => return State::Done,
                    }
                }
                if *job.stop.borrow() {
                    return State::Done;
                }
            } else {
                turn = None;
                if !wait(due, publisher, job, &mut reported).await {
                    return State::Done;
                }
            }
            let header = headers.keep(tag.kind, &tag.payload);
            // (Re)publish at a keyframe (or any audio frame of a file without video), once
            // the name is free and, in a cluster, claimed.
            let starts_here = is_keyframe(tag.kind, &tag.payload)
                || (!headers.has_video && tag.kind == MediaKind::Audio && !header);
            if publisher.is_none() && starts_here && !late && !job.hub.is_live(&job.key) {
                if !claimed(job).await {
                    set(job.report.as_ref(), &mut reported, State::Displaced);
                } else {
                    match job.hub.publish_yielding(&job.key) {
                        Ok(mut p) => {
                            headers.send(&mut p, timestamp);
                            // A new claim may be under it: told the codecs anew.
                            told.clear();
                            info!(stream = %job.key, input = %job.input, "playout live");
                            set(job.report.as_ref(), &mut reported, State::Playing);
                            *publisher = Some(p);
                        }
                        Err(e) => {
                            warn!(stream = %job.key, error = %e, "playout: publish refused");
                        }
                    }
                }
            }
            if let Some(p) = publisher.as_mut() {
                let message = MediaMessage { kind: tag.kind, timestamp, payload: tag.payload };
                if let Err(e) = p.push(message) {
                    warn!(stream = %job.key, error = %e, "playout: frame refused");
                    return State::Failed;
                }
                if p.codecs() != told.as_slice() {
                    told = p.codecs().to_vec();
                    job.claims.codecs(&job.key, &told);
                }
            }
        }
        if tags == 0 || !source.has_media() {
            warn!(stream = %job.key, input = %job.input, "playout: the file holds no media");
            return State::Failed;
        }
        if !job.looped {
            info!(stream = %job.key, played = ?pacer.played(), "playout ended");
            return State::Done;
        }
        pacer.next_pass();
        if let Err(e) = source.rewind().await {
            warn!(stream = %job.key, input = %job.input, error = %e, "playout: cannot read the file again");
            return State::Failed;
        }
    }
}
