//! Bytes waiting to be written to one socket, written with as few syscalls as possible.

use std::collections::VecDeque;
use std::io::{self, IoSlice};

use bytes::{Buf, Bytes};
use tokio::net::TcpStream;

/// Most buffers handed to one `writev` (Linux's IOV_MAX is 1024; a batch rarely needs more).
const MAX_IOVECS: usize = 128;

/// A FIFO of shared buffers for one connection. Everything queued is written with one
/// vectored write when the socket is writable; nothing waits for more data to arrive.
#[derive(Debug, Default)]
pub struct OutQueue {
    bufs: VecDeque<Bytes>,
    bytes: usize,
}

impl OutQueue {
    pub fn push(&mut self, b: Bytes) {
        if !b.is_empty() {
            self.bytes += b.len();
            self.bufs.push_back(b);
        }
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
    pub fn write_to(&mut self, stream: &TcpStream) -> io::Result<usize> {
        let mut total = 0;
        while !self.bufs.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
            let mut count = 0;
            for (slot, b) in slices.iter_mut().zip(self.bufs.iter()) {
                *slot = IoSlice::new(b);
                count += 1;
            }
            match stream.try_write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    total += n;
                    self.advance(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
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
