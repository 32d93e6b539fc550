//! The sending side of media, for both directions: publishes one subscription's (this node
//! serving it) or one forward's (this node forwarding) frames as GOP streams. What to do
//! with each frame is decided by the sans-IO [`GopCutter`] (the rules are listed there);
//! this driver carries its decisions out on quinn streams, each GOP stream written by its
//! own task from a queue bounded in frames and in bytes.

mod budget;
mod cutter;

use std::collections::VecDeque;
use std::sync::Arc;

use budget::ByteBudget;
use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::codec::{self, Frame, GopHeader};
pub(crate) use cutter::Priorities;
use cutter::{Decision, GopCutter, ResetReason};

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
    /// Bytes of payload queued per GOP stream (see `RelayConfig::gop_queue_bytes`).
    pub(crate) queue_bytes: usize,
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
    /// Payload bytes queued and not yet written.
    budget: ByteBudget,
    reset: Option<oneshot::Sender<u32>>,
    task: JoinHandle<()>,
}

impl GopWriter {
    /// Queues a frame; `false` when the queue is full, in frames or bytes (or the writer is
    /// gone).
    fn push(&self, frame: Frame) -> bool {
        let Some(tx) = self.frames.as_ref() else { return true };
        let len = frame.payload.len();
        if !self.budget.try_reserve(len) {
            return false;
        }
        if tx.try_send(frame).is_err() {
            self.budget.release(len);
            return false;
        }
        true
    }

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

/// The driver's side of one publication: the GOP streams it holds, by sequence.
struct Driver {
    p: Publication,
    cutter: GopCutter,
    writers: Vec<(u64, GopWriter)>,
}

/// Runs one publication to its end.
pub(crate) async fn run(p: Publication) -> Outcome {
    let cutter = GopCutter::new(p.max_frame_size, p.priorities.clone());
    let mut d = Driver { p, cutter, writers: Vec::new() };
    let ended = loop {
        let frame = tokio::select! {
            f = d.p.frames.recv() => f,
            _ = d.p.cancel.wait_for(|c| *c) => break false,
        };
        let Some(frame) = frame else { break true };
        for (gop, w) in &d.writers {
            if w.delivered() {
                d.cutter.delivered(*gop);
            }
        }
        let decisions = d.cutter.on_frame(frame);
        if !d.execute(decisions).await {
            break false;
        }
    };
    let gop_count = d.cutter.gop_count();
    if !ended {
        let decisions = d.cutter.on_cancel();
        d.execute(decisions).await;
        return Outcome { ended: None, gop_count };
    }
    let decisions = d.cutter.on_end();
    d.execute(decisions).await;
    // Let the last GOPs be delivered (or cancelled) before saying ENDED.
    for i in 0..d.writers.len() {
        let Some((_, w)) = d.writers.get_mut(i) else { break };
        let cancelled = tokio::select! {
            _ = &mut w.task => false,
            _ = d.p.cancel.wait_for(|c| *c) => true,
        };
        if cancelled {
            // Cancelled meanwhile: reset every GOP still being written.
            let decisions = d.cutter.on_cancel();
            d.execute(decisions).await;
            return Outcome { ended: None, gop_count };
        }
    }
    Outcome { ended: Some(gop_count), gop_count }
}

impl Driver {
    /// Carries out the cutter's decisions in order; `false` when the publication must stop
    /// (cancelled while opening a stream, or the connection failed).
    async fn execute(&mut self, decisions: Vec<Decision>) -> bool {
        let mut queue = VecDeque::from(decisions);
        while let Some(decision) = queue.pop_front() {
            match decision {
                Decision::Open { gop, priority } => {
                    let send = tokio::select! {
                        s = self.p.conn.open_uni() => s,
                        _ = self.p.cancel.wait_for(|c| *c) => return false,
                    };
                    let Ok(send) = send else { return false };
                    let _ = send.set_priority(priority);
                    let header = GopHeader { request_id: self.p.request_id, gop_sequence: gop };
                    let budget = ByteBudget::new(self.p.queue_bytes);
                    let writer = spawn_writer(send, header, self.p.queue_frames.max(8), budget);
                    self.writers.push((gop, writer));
                }
                Decision::Write { gop, frame } => {
                    let fits = self.writer(gop).is_none_or(|w| w.push(frame));
                    if !fits {
                        // What a full queue changes comes before the rest.
                        for d in self.cutter.queue_full(gop).into_iter().rev() {
                            queue.push_front(d);
                        }
                    }
                }
                Decision::Finish { gop } => {
                    if let Some(w) = self.writer(gop) {
                        w.finish();
                    }
                }
                Decision::Reset { gop, reason } => {
                    if reason == ResetReason::WholeGopBehind {
                        tracing::debug!(
                            request_id = self.p.request_id,
                            "subscriber a whole GOP behind: cancelling a GOP"
                        );
                    }
                    if let Some(w) = self.writer(gop) {
                        w.cancel(reason.code());
                    }
                }
                Decision::Release { gop } => self.writers.retain(|(g, _)| *g != gop),
                Decision::DropOversized { len } => {
                    tracing::warn!(
                        request_id = self.p.request_id,
                        len,
                        "frame above the relay's max frame size dropped"
                    );
                }
            }
        }
        true
    }

    fn writer(&mut self, gop: u64) -> Option<&mut GopWriter> {
        self.writers.iter_mut().find(|(g, _)| *g == gop).map(|(_, w)| w)
    }
}

fn spawn_writer(
    mut send: quinn::SendStream,
    header: GopHeader,
    queue: usize,
    budget: ByteBudget,
) -> GopWriter {
    let written = budget.clone();
    let (tx, mut rx) = mpsc::channel::<Frame>(queue);
    let (reset_tx, mut reset_rx) = oneshot::channel::<u32>();
    let task = tokio::spawn(async move {
        let write_all = async {
            let mut head = BytesMut::with_capacity(codec::GOP_HEADER_LEN);
            codec::encode_gop_header(&header, &mut head);
            send.write_chunk(head.freeze()).await.ok()?;
            while let Some(frame) = rx.recv().await {
                let len = frame.payload.len();
                let mut head = BytesMut::with_capacity(codec::FRAME_HEADER_LEN);
                codec::encode_frame_header(&frame, &mut head).ok()?;
                // Header and payload in one call; the payload is not copied.
                send.write_all_chunks(&mut [head.freeze(), frame.payload]).await.ok()?;
                written.release(len);
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
    GopWriter { frames: Some(tx), budget, reset: Some(reset_tx), task }
}
