//! The sending side of media, for both directions: cuts one subscription's (this node
//! serving it) or one forward's (this node forwarding) frames into GOP streams.
//!
//! A GOP starts at each video keyframe (or at the first frame, or at any audio frame of a
//! stream without video, after a skip). Each GOP gets a new unidirectional stream with a
//! priority above every earlier GOP stream of the connection, starts with the latest
//! metadata and sequence headers, and is written by its own task from a bounded queue.
//! When GOP n+1 starts and GOP n-1 is still not fully acknowledged, the subscriber is a
//! whole GOP behind: GOP n-1 is reset ([`codes::GOP_CANCELLED`]). When a GOP's queue is
//! full the subscriber lags inside a GOP: that GOP is reset and frames are dropped until
//! the next GOP starts.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::codec::{self, Frame, FrameKind, GopHeader};
use crate::codes;

/// The GOP priorities of one connection's node: every stream the node opens on it (the
/// subscriptions it serves and its forwards) gets a priority above every earlier one.
#[derive(Debug, Default)]
pub(crate) struct Priorities(AtomicI32);

impl Priorities {
    /// The next priority (never negative: past `i32::MAX` it stays at 0).
    pub(crate) fn next(&self) -> i32 {
        self.0.fetch_add(1, Ordering::Relaxed).max(0)
    }
}

/// One subscription or forward to publish.
pub(crate) struct Publication {
    pub(crate) conn: quinn::Connection,
    /// The request the GOP streams belong to (their header's request_id).
    pub(crate) request_id: u64,
    pub(crate) frames: mpsc::Receiver<Frame>,
    /// Becomes `true` on Unsubscribe / a dropped forward handle, or connection teardown.
    pub(crate) cancel: watch::Receiver<bool>,
    /// Connection-wide GOP priorities.
    pub(crate) priorities: Arc<Priorities>,
    pub(crate) queue_frames: usize,
    /// Frames above this size are dropped here: the receiver (same configuration) would
    /// treat them as a protocol violation and close the whole connection.
    pub(crate) max_frame_size: usize,
}

/// How a publication ended.
pub(crate) struct Outcome {
    /// `Some(gop_count)` when the source ended (the subscriber is told `ENDED`); `None`
    /// when it was cancelled or the connection failed.
    pub(crate) ended: Option<u64>,
    /// GOP streams opened (sequences `0..gop_count`), however it ended.
    pub(crate) gop_count: u64,
}

/// A GOP stream being written by its task.
struct GopWriter {
    frames: Option<mpsc::Sender<Frame>>,
    reset: Option<oneshot::Sender<u32>>,
    task: JoinHandle<()>,
}

impl GopWriter {
    /// No more frames: the task finishes the stream once its queue is written.
    fn finish(&mut self) {
        self.frames = None;
    }

    /// Resets the stream with `code` unless it is already fully delivered.
    fn cancel(&mut self, code: u32) {
        if let Some(reset) = self.reset.take() {
            let _ = reset.send(code);
        }
    }

    fn delivered(&self) -> bool {
        self.task.is_finished()
    }
}

/// Runs one publication to its end.
pub(crate) async fn run(mut p: Publication) -> Outcome {
    // Latest header per kind (audio / video sequence header, metadata).
    let mut headers: [Option<Frame>; 3] = [None, None, None];
    let mut current: Option<GopWriter> = None;
    let mut previous: Option<GopWriter> = None;
    let mut next_sequence: u64 = 0;
    let mut skipping = false;
    let mut seen_video = false;

    let ended = loop {
        let frame = tokio::select! {
            f = p.frames.recv() => f,
            _ = p.cancel.wait_for(|c| *c) => break false,
        };
        let Some(frame) = frame else { break true };
        if frame.payload.len() > p.max_frame_size {
            tracing::warn!(
                request_id = p.request_id,
                len = frame.payload.len(),
                "frame above the relay's max frame size dropped"
            );
            continue;
        }
        if frame.kind == FrameKind::Video {
            seen_video = true;
        }
        if frame.is_header() {
            if let Some(slot) = headers.get_mut(frame.kind as usize - 1) {
                *slot = Some(frame.clone());
            }
            if !skipping {
                if let Some(w) = current.as_mut() {
                    push(w, frame, &mut skipping);
                }
            }
            continue;
        }
        let audio_only_cut = skipping && !seen_video && frame.kind == FrameKind::Audio;
        let starts = frame.starts_gop() || audio_only_cut || (current.is_none() && !skipping);
        if !starts {
            match current.as_mut() {
                Some(w) if !skipping => push(w, frame, &mut skipping),
                _ => {}
            }
            if skipping {
                if let Some(mut w) = current.take() {
                    w.cancel(codes::GOP_CANCELLED);
                }
            }
            continue;
        }
        // A new GOP.
        if let Some(mut old) = previous.take() {
            if !old.delivered() {
                tracing::debug!(
                    request_id = p.request_id,
                    "subscriber a whole GOP behind: cancelling a GOP"
                );
                old.cancel(codes::GOP_CANCELLED);
            }
        }
        if let Some(mut cur) = current.take() {
            cur.finish();
            previous = Some(cur);
        }
        skipping = false;
        let header = GopHeader { request_id: p.request_id, gop_sequence: next_sequence };
        next_sequence = next_sequence.saturating_add(1);
        let send = tokio::select! {
            s = p.conn.open_uni() => s,
            _ = p.cancel.wait_for(|c| *c) => break false,
        };
        let Ok(send) = send else { break false };
        let _ = send.set_priority(p.priorities.next());
        let mut w = spawn_writer(send, header, p.queue_frames.max(8));
        // Metadata first, then the video and audio sequence headers.
        for h in headers.iter().rev().flatten() {
            push(&mut w, h.clone(), &mut skipping);
        }
        push(&mut w, frame, &mut skipping);
        current = Some(w);
    };

    if ended {
        if let Some(w) = current.as_mut() {
            w.finish();
        }
        // Let the last GOPs be delivered (or cancelled) before saying ENDED.
        let mut writers: Vec<GopWriter> = [previous, current].into_iter().flatten().collect();
        for i in 0..writers.len() {
            let Some(w) = writers.get_mut(i) else { break };
            tokio::select! {
                _ = &mut w.task => {}
                _ = p.cancel.wait_for(|c| *c) => {
                    // Cancelled meanwhile: reset every GOP still being written.
                    for w in writers.iter_mut() {
                        w.cancel(codes::UNSUBSCRIBED);
                    }
                    return Outcome { ended: None, gop_count: next_sequence };
                }
            }
        }
        Outcome { ended: Some(next_sequence), gop_count: next_sequence }
    } else {
        for mut w in [previous, current].into_iter().flatten() {
            w.cancel(codes::UNSUBSCRIBED);
        }
        Outcome { ended: None, gop_count: next_sequence }
    }
}

/// Queues a frame for a GOP stream; a full queue means the subscriber lags.
fn push(w: &mut GopWriter, frame: Frame, skipping: &mut bool) {
    let Some(tx) = w.frames.as_ref() else { return };
    if tx.try_send(frame).is_err() {
        *skipping = true;
    }
}

fn spawn_writer(mut send: quinn::SendStream, header: GopHeader, queue: usize) -> GopWriter {
    let (tx, mut rx) = mpsc::channel::<Frame>(queue);
    let (reset_tx, mut reset_rx) = oneshot::channel::<u32>();
    let task = tokio::spawn(async move {
        let write_all = async {
            let mut head = BytesMut::with_capacity(codec::GOP_HEADER_LEN);
            codec::encode_gop_header(&header, &mut head);
            send.write_chunk(head.freeze()).await.ok()?;
            while let Some(frame) = rx.recv().await {
                let mut head = BytesMut::with_capacity(codec::FRAME_HEADER_LEN);
                codec::encode_frame_header(&frame, &mut head).ok()?;
                // Header and payload in one call; the payload is not copied.
                send.write_all_chunks(&mut [head.freeze(), frame.payload]).await.ok()?;
            }
            send.finish().ok()?;
            // Fully acknowledged (or stopped by the peer).
            let _ = send.stopped().await;
            Some(())
        };
        // A dropped reset handle disables that branch (the pattern does not match).
        let reset = tokio::select! {
            _ = write_all => None,
            Ok(code) = &mut reset_rx => Some(code),
        };
        if let Some(code) = reset {
            let _ = send.reset(code.into());
        }
    });
    GopWriter { frames: Some(tx), reset: Some(reset_tx), task }
}
