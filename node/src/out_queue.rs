//! Bytes waiting to be written to one socket, written with as few syscalls as possible.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;

/// A socket-like thing that takes a vectored write without waiting (`WouldBlock` when full).
pub trait TryWriteVectored {
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;

    /// One buffer. A socket overrides it with `send`, which the kernel takes for less than a
    /// one-element `writev` (no iovec import, no VFS write path): most media goes out this way,
    /// a frame at a time.
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.try_write_vectored(&[IoSlice::new(buf)])
    }
}

impl TryWriteVectored for &TcpStream {
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        TcpStream::try_write_vectored(self, bufs)
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TcpStream::try_write(self, buf)
    }
}

/// Buffers an emptied queue keeps room for (steady playback queues one or two at a time).
const IDLE_CAPACITY: usize = 4;

/// Most buffers handed to one `writev` (Linux's IOV_MAX is 1024; a batch rarely needs more).
const MAX_IOVECS: usize = 128;

/// A FIFO of shared buffers for one connection. Everything queued is written with one
/// vectored write when the socket is writable; nothing waits for more data to arrive.
///
/// Bounded in bytes: [`OutQueue::push_capped`] refuses what would take the queue past its cap
/// (for output a peer provokes: replies, control messages). [`OutQueue::push`] is for output
/// the caller admits by its own rule (media, taken only while the queue is short).
#[derive(Debug)]
pub struct OutQueue {
    bufs: VecDeque<Bytes>,
    bytes: usize,
    cap: usize,
}

/// The queue's cap would be exceeded: the connection should close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("output queue full: {queued} bytes queued, cap {cap}")]
pub struct QueueFull {
    /// Bytes that would have been queued.
    pub queued: usize,
    pub cap: usize,
}

impl Default for OutQueue {
    /// Unbounded (`usize::MAX`) for callers that bound what they push themselves.
    fn default() -> Self {
        OutQueue::with_cap(usize::MAX)
    }
}

impl OutQueue {
    pub fn with_cap(cap: usize) -> Self {
        OutQueue { bufs: VecDeque::new(), bytes: 0, cap }
    }

    /// Queue `b` regardless of the cap (the caller bounds what it pushes this way).
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.bytes += b.len();
            self.bufs.push_back(b);
        }
    }

    /// Queue `b` unless the queue would then hold more than its cap.
    pub fn push_capped(&mut self, b: Bytes) -> Result<(), QueueFull> {
        let queued = self.bytes.saturating_add(b.len());
        if queued > self.cap {
            return Err(QueueFull { queued, cap: self.cap });
        }
        self.push(b);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.bytes
    }

    /// Write as much as the socket takes without blocking. Returns bytes written;
    /// `Ok(0)` with a non-empty queue means "would block: wait for writability".
    pub fn write_to(&mut self, stream: &mut impl TryWriteVectored) -> io::Result<usize> {
        let mut total = 0;
        while !self.bufs.is_empty() {
            let written = if self.bufs.len() == 1 {
                stream.try_write(&self.bufs[0])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, b) in slices.iter_mut().zip(self.bufs.iter()) {
                    *slot = IoSlice::new(b);
                    count += 1;
                }
                stream.try_write_vectored(&slices[..count])
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    total += n;
                    self.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.bufs.is_empty() && self.bufs.capacity() > IDLE_CAPACITY {
            // A burst (a viewer's first GOP) grew the queue: an idle one keeps only a little.
            self.bufs.shrink_to(IDLE_CAPACITY);
        }
        Ok(total)
    }

    fn advance(&mut self, mut n: usize) {
        self.bytes -= n;
        while n > 0 {
            let Some(front) = self.bufs.front_mut() else { break };
            if n >= front.len() {
                n -= front.len();
                self.bufs.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_pushes_stop_at_the_cap() {
        let mut q = OutQueue::with_cap(10);
        q.push_capped(Bytes::from_static(b"123456")).unwrap();
        let full = q.push_capped(Bytes::from_static(b"12345")).unwrap_err();
        assert_eq!(full, QueueFull { queued: 11, cap: 10 });
        assert_eq!(q.len(), 6);
        q.push_capped(Bytes::from_static(b"1234")).unwrap();
        // Media pushed by its own rule is not refused, but counts against later capped pushes.
        q.push(Bytes::from_static(b"media"));
        assert_eq!(q.len(), 15);
        assert!(q.push_capped(Bytes::from_static(b"x")).is_err());
        q.advance(15);
        assert!(q.is_empty());
        q.push_capped(Bytes::from_static(b"x")).unwrap();
    }
}
