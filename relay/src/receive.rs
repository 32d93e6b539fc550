//! The receiving side of media, shared by both directions: accepting GOP streams and routing
//! them by request id ([`accept_gops`]), and putting one request's GOP streams back in order
//! ([`Reassembly`]). A subscription ([`crate::RelaySubscription`]) and an accepted forward
//! (`server::forward_in`) each read their frames through one `Reassembly`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::codec::Frame;
use crate::config::RelayConfig;
use crate::error::{ProtocolViolation, RelayError};
use crate::wire::{GopEnd, GopReader};

/// GOP streams waiting for one request's reader.
pub(crate) const GOP_QUEUE: usize = 64;
/// After the sender said how many GOPs there were, how long to wait for GOP streams still in
/// transit.
pub(crate) const END_GRACE: Duration = Duration::from_secs(1);

/// The connection's end of one request's media: where its GOP streams and its end notice go.
pub(crate) struct Inlet {
    gops: mpsc::Sender<GopReader>,
    end: Option<oneshot::Sender<u64>>,
    generation: u64,
}

/// Source of [`Inlet::generation`].
static GENERATION: AtomicU64 = AtomicU64::new(0);

impl Inlet {
    /// Hands over a GOP stream; a reader that does not keep up loses it (the stream is
    /// stopped).
    pub(crate) fn deliver(&self, reader: GopReader) {
        if let Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) =
            self.gops.try_send(reader)
        {
            r.abandon();
        }
    }

    /// The sender had `gop_count` GOP streams (sequences `0..gop_count`) and sends no more.
    /// Only the first notice counts.
    pub(crate) fn end(&mut self, gop_count: u64) {
        if let Some(end) = self.end.take() {
            let _ = end.send(gop_count);
        }
    }

    /// Unique per inlet ever made: tells a request from a later one that reuses its id.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

/// What [`Reassembly::receive`] took in.
pub(crate) enum Arrival {
    /// A GOP stream (queued).
    Gop,
    /// The sender's end notice.
    Ended,
    /// The connection dropped the request: nothing more will come.
    Closed,
}

/// Reads one request's frames in order across its GOP streams.
pub(crate) struct Reassembly {
    gops: mpsc::Receiver<GopReader>,
    end: Option<oneshot::Receiver<u64>>,
    current: Option<GopReader>,
    /// GOP streams that arrived ahead of the one being read, by sequence.
    pending: BTreeMap<u64, GopReader>,
    /// Lowest GOP sequence still acceptable.
    next_sequence: u64,
    /// The sender's GOP count once it announced the end.
    ended: Option<u64>,
}

/// A new request's routing end and reading end.
pub(crate) fn channel() -> (Inlet, Reassembly) {
    let (gops_tx, gops) = mpsc::channel(GOP_QUEUE);
    let (end_tx, end) = oneshot::channel();
    let inlet = Inlet {
        gops: gops_tx,
        end: Some(end_tx),
        generation: GENERATION.fetch_add(1, Ordering::Relaxed),
    };
    let reassembly = Reassembly {
        gops,
        end: Some(end),
        current: None,
        pending: BTreeMap::new(),
        next_sequence: 0,
        ended: None,
    };
    (inlet, reassembly)
}

impl Reassembly {
    /// The next frame in order; `Ok(None)` once the sender ended and its GOP streams are
    /// read (or did not come within a grace period). GOP streams the sender reset are
    /// skipped: the next frame is then the headers of a later GOP. `Err(Closed)` when the
    /// connection dropped the request without an end notice; `Err(Protocol)` for a
    /// malformed GOP stream (the caller closes the connection). Cancel-safe.
    pub(crate) async fn next_frame(&mut self) -> Result<Option<Frame>, RelayError> {
        loop {
            if let Some(reader) = self.current.as_mut() {
                match reader.next().await? {
                    Ok(frame) => return Ok(Some(frame)),
                    Err(GopEnd::Finished | GopEnd::Reset) => {
                        self.current = None;
                        continue;
                    }
                }
            }
            if let Some((_, reader)) = self.pending.pop_first() {
                self.next_sequence = reader.sequence.saturating_add(1);
                self.current = Some(reader);
                continue;
            }
            if let Some(gop_count) = self.ended {
                if self.next_sequence >= gop_count {
                    return Ok(None);
                }
                match tokio::time::timeout(END_GRACE, self.gops.recv()).await {
                    Ok(Some(reader)) => self.accept(reader),
                    _ => return Ok(None),
                }
                continue;
            }
            if let Arrival::Closed = self.receive().await {
                return Err(RelayError::Closed);
            }
        }
    }

    /// Waits for the next GOP stream or the end notice and takes it in (without reading
    /// any frame). For a reader that is waiting on its consumer. Cancel-safe.
    pub(crate) async fn receive(&mut self) -> Arrival {
        let end_slot = &mut self.end;
        let end = async {
            match end_slot.as_mut() {
                Some(end) => end.await.ok(),
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            reader = self.gops.recv() => Ok(reader),
            count = end => Err(count),
        };
        match event {
            Ok(Some(reader)) => {
                self.accept(reader);
                Arrival::Gop
            }
            Ok(None) => Arrival::Closed,
            Err(count) => {
                self.end = None;
                self.ended = count;
                match count {
                    Some(_) => Arrival::Ended,
                    None => Arrival::Closed,
                }
            }
        }
    }

    /// Whether the reader is a whole GOP behind: a GOP two or more after the one being read
    /// has arrived.
    pub(crate) fn behind(&self) -> bool {
        self.current.is_some()
            && self
                .pending
                .last_key_value()
                .is_some_and(|(&sequence, _)| sequence > self.next_sequence)
    }

    /// Gives up the GOP being read (its stream is stopped); reading continues with the next
    /// GOP that arrived.
    pub(crate) fn skip_current(&mut self) {
        if let Some(reader) = self.current.take() {
            reader.abandon();
        }
    }

    fn accept(&mut self, reader: GopReader) {
        if reader.sequence < self.next_sequence {
            return reader.abandon();
        }
        if let Some(old) = self.pending.insert(reader.sequence, reader) {
            old.abandon();
        }
    }
}

/// Accepts the GOP streams the peer opens on `conn` until it closes, reads each one's header
/// and hands it to `route(request_id)`'s inlet. Streams for unknown requests are stopped
/// ([`crate::codes::STREAM_UNWANTED`]); a malformed header calls `violation`.
pub(crate) async fn accept_gops<R, V>(
    conn: quinn::Connection,
    config: Arc<RelayConfig>,
    route: R,
    violation: V,
) where
    R: Fn(u64, GopReader) -> Option<GopReader> + Send + Sync + 'static,
    V: Fn(ProtocolViolation) + Send + Sync + 'static,
{
    let handlers = Arc::new((route, violation));
    while let Ok(stream) = conn.accept_uni().await {
        let handlers = handlers.clone();
        let config = config.clone();
        tokio::spawn(async move {
            let open = GopReader::open(stream, config.max_frame_size);
            let (header, reader) = match tokio::time::timeout(config.request_timeout, open).await {
                Ok(Ok(x)) => x,
                Ok(Err(RelayError::Protocol(what))) => return (handlers.1)(what),
                _ => return, // reset before its header, or too slow: nothing to deliver
            };
            if let Some(unrouted) = (handlers.0)(header.request_id, reader) {
                unrouted.abandon();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn an_end_with_every_gop_read_ends_at_once() {
        let (mut inlet, mut frames) = channel();
        inlet.end(0);
        let start = Instant::now();
        assert!(matches!(frames.next_frame().await, Ok(None)));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn gop_streams_still_in_transit_get_the_end_grace_and_no_more() {
        let (mut inlet, mut frames) = channel();
        inlet.end(2);
        inlet.end(5); // only the first notice counts
        let start = Instant::now();
        assert!(matches!(frames.next_frame().await, Ok(None)));
        assert_eq!(start.elapsed(), END_GRACE);
        drop(inlet);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_dropped_without_an_end_notice_is_closed() {
        let (inlet, mut frames) = channel();
        drop(inlet);
        assert!(matches!(frames.next_frame().await, Err(RelayError::Closed)));
    }

    #[tokio::test(start_paused = true)]
    async fn receive_reports_the_end_notice_then_the_close() {
        let (mut inlet, mut frames) = channel();
        assert_ne!(inlet.generation(), channel().0.generation());
        inlet.end(3);
        assert!(matches!(frames.receive().await, Arrival::Ended));
        drop(inlet);
        assert!(matches!(frames.receive().await, Arrival::Closed));
        assert!(!frames.behind());
    }
}
