//! Closing a connection after a last message (a stopped publisher's reason): closing a socket
//! with unread input makes the kernel send a reset, and a reset can destroy the message
//! before the peer reads it. So: write what is queued, end our side, and read (discarding)
//! until the peer closes or the deadline passes.

use std::io;
use std::time::Duration;

use super::transport::Transport;
use crate::out_queue::OutQueue;

/// The longest a closing connection is kept to let its last message reach the peer.
pub(super) const LINGER: Duration = Duration::from_secs(2);

/// Write `out`, shut our side down, then discard input until EOF, an error or [`LINGER`].
pub(super) async fn close_after(stream: &mut Transport, out: &mut OutQueue) {
    let _ = tokio::time::timeout(LINGER, async {
        while !out.is_empty() || stream.wants_write() {
            stream.writable().await?;
            stream.flush_tls()?;
            match out.write_to(stream) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        loop {
            stream.readable().await?;
            match stream.try_read(&mut sink) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
}
