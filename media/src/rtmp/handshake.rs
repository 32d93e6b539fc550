//! The RTMP handshake, server and client side, plain and digest ("complex", Flash-era) forms.
//!
//! Sans-IO: bytes in through `receive`, bytes out appended to the caller's buffer. Randomness
//! comes from the caller (`seed`), time as the caller's `epoch` milliseconds.

use bytes::BytesMut;

/// C1/S1/C2/S2 length.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only RTMP version byte accepted (plain RTMP; RTMPE's 6 is refused).
pub const RTMP_VERSION: u8 = 3;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("unsupported RTMP version byte {0} (only 3 is supported)")]
    UnsupportedVersion(u8),
    #[error("peer's S1 digest is invalid")]
    InvalidDigest,
}

/// Server side: waits for C0+C1, answers S0+S1+S2, then waits for C2.
#[derive(Debug)]
pub struct ServerHandshake {}

impl ServerHandshake {
    /// `seed` fills S1's random bytes; `epoch` is S1's time field.
    pub fn new(seed: [u8; 32], epoch: u32) -> Self {
        todo!()
    }

    /// Consume handshake bytes from the front of `input` (leaving anything after C2 in place for
    /// the chunk decoder) and append S0+S1+S2 to `out` once C0+C1 is complete. Returns `true`
    /// when the handshake is finished.
    pub fn receive(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, HandshakeError> {
        todo!()
    }

    /// Whether the client used the digest (complex) handshake.
    pub fn used_digest(&self) -> bool {
        todo!()
    }
}

/// Client side: sends C0+C1 at once, answers S1 with C2.
#[derive(Debug)]
pub struct ClientHandshake {}

impl ClientHandshake {
    /// Creates the handshake and appends C0+C1 to `out`. With `digest`, C1 carries a
    /// Flash-player style digest and S1's digest is verified.
    pub fn new(seed: [u8; 32], epoch: u32, digest: bool, out: &mut BytesMut) -> Self {
        todo!()
    }

    /// Consume S0+S1+S2 from `input`, appending C2 to `out`. Returns `true` when finished.
    pub fn receive(&mut self, input: &mut BytesMut, out: &mut BytesMut) -> Result<bool, HandshakeError> {
        todo!()
    }
}
