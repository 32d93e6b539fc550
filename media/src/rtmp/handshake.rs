//! The RTMP handshake, server and client side, plain and digest ("complex", Flash-era) forms.
//!
//! Sans-IO: bytes in through `receive`, bytes out appended to the caller's buffer. Randomness
//! comes from the caller (`seed`), time as the caller's `epoch` milliseconds.
//!
//! Plain handshake: S1 is time + zero + random, S2 echoes C1 and C2 echoes S1.
//!
//! Digest handshake (Flash Player 9+, ffmpeg, many hardware encoders): C1 carries a 32-byte
//! HMAC-SHA256 digest at an offset derived from four bytes of one of two layouts ("schemas"):
//!
//! * schema 0: offset = (C1[8] + C1[9] + C1[10] + C1[11]) % 728 + 12 (digest in bytes 12..772)
//! * schema 1: offset = (C1[772] + .. + C1[775]) % 728 + 776 (digest in bytes 776..1536)
//!
//! The digest covers the 1504 other bytes of the packet. C1 is keyed with the first 30 bytes of
//! the Flash Player key, S1 with the first 36 bytes of the Flash Media Server key. S2 (C2) is
//! 1504 random bytes followed by `HMAC(key = HMAC(full server (player) key, C1 (S1) digest),
//! S2[..1504])`.

use bytes::{Buf, BytesMut};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// C1/S1/C2/S2 length.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only RTMP version byte accepted (plain RTMP; RTMPE's 6 is refused).
pub const RTMP_VERSION: u8 = 3;

/// Length of an HMAC-SHA256 digest.
const DIGEST_LEN: usize = 32;
/// Length of the part of S2/C2 the digest response covers.
const RESPONSE_DATA_LEN: usize = HANDSHAKE_SIZE - DIGEST_LEN;

/// Shared 32-byte tail of both Genuine keys.
const KEY_TAIL: [u8; 32] = [
    0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
    0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
];
const FMS_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";
const FP_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";

/// Version bytes (C1/S1 bytes 4..8) announced in digest mode. Clients such as ffmpeg only check
/// the server's digest when the first of these is at least 3.
const SERVER_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];
const CLIENT_VERSION: [u8; 4] = [0x80, 0x00, 0x07, 0x02];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("unsupported RTMP version byte {0} (only 3 is supported)")]
    UnsupportedVersion(u8),
    #[error("peer's S1 digest is invalid")]
    InvalidDigest,
}

/// The full 68-byte "Genuine Adobe Flash Media Server 001" key.
fn fms_key() -> [u8; 68] {
    let mut k = [0u8; 68];
    k[..36].copy_from_slice(FMS_TEXT);
    k[36..].copy_from_slice(&KEY_TAIL);
    k
}

/// The full 62-byte "Genuine Adobe Flash Player 001" key.
fn fp_key() -> [u8; 62] {
    let mut k = [0u8; 62];
    k[..30].copy_from_slice(FP_TEXT);
    k[30..].copy_from_slice(&KEY_TAIL);
    k
}

fn hmac_parts(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Digest offset within a 1536-byte C1/S1 for `schema` (0 or 1).
fn digest_offset(packet: &[u8; HANDSHAKE_SIZE], schema: u8) -> usize {
    let (base, start) = if schema == 0 { (8, 12) } else { (772, 776) };
    let sum: usize = packet[base..base + 4].iter().map(|&b| b as usize).sum();
    sum % 728 + start
}

/// The digest a packet should carry at `offset`, keyed with `key`.
fn packet_digest(packet: &[u8; HANDSHAKE_SIZE], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_parts(key, &[&packet[..offset], &packet[offset + DIGEST_LEN..]])
}

/// Find a valid digest in `packet` (schema 0 first, then 1): returns (schema, digest).
fn find_digest(packet: &[u8; HANDSHAKE_SIZE], key: &[u8]) -> Option<(u8, [u8; DIGEST_LEN])> {
    [0u8, 1].into_iter().find_map(|schema| {
        let off = digest_offset(packet, schema);
        let expected = packet_digest(packet, off, key);
        (packet[off..off + DIGEST_LEN] == expected).then_some((schema, expected))
    })
}

/// Write the digest for `schema` into `packet`.
fn sign_packet(packet: &mut [u8; HANDSHAKE_SIZE], schema: u8, key: &[u8]) {
    let off = digest_offset(packet, schema);
    let d = packet_digest(packet, off, key);
    packet[off..off + DIGEST_LEN].copy_from_slice(&d);
}

/// Deterministic pseudo-random bytes from the caller's seed (SHA-256 in counter mode).
fn fill_random(seed: &[u8; 32], label: u8, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(DIGEST_LEN).enumerate() {
        let block = Sha256::new()
            .chain_update(seed)
            .chain_update([label])
            .chain_update((i as u32).to_be_bytes())
            .finalize();
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
}

/// A C1/S1 packet: time, version bytes, random.
fn hello_packet(seed: &[u8; 32], epoch: u32, version: [u8; 4]) -> Box<[u8; HANDSHAKE_SIZE]> {
    let mut p = Box::new([0u8; HANDSHAKE_SIZE]);
    fill_random(seed, 1, &mut p[8..]);
    p[..4].copy_from_slice(&epoch.to_be_bytes());
    p[4..8].copy_from_slice(&version);
    p
}

/// S2/C2 answering a peer digest: random data plus `HMAC(HMAC(full_key, peer_digest), data)`.
fn digest_response(
    seed: &[u8; 32],
    full_key: &[u8],
    peer_digest: &[u8; DIGEST_LEN],
) -> Box<[u8; HANDSHAKE_SIZE]> {
    let mut p = Box::new([0u8; HANDSHAKE_SIZE]);
    fill_random(seed, 2, &mut p[..RESPONSE_DATA_LEN]);
    let key = hmac_parts(full_key, &[peer_digest]);
    let d = hmac_parts(&key, &[&p[..RESPONSE_DATA_LEN]]);
    p[RESPONSE_DATA_LEN..].copy_from_slice(&d);
    p
}

/// Whether `p` (an S2/C2) carries the digest response to `my_digest`.
#[cfg(test)]
fn is_digest_response(
    p: &[u8; HANDSHAKE_SIZE],
    full_key: &[u8],
    my_digest: &[u8; DIGEST_LEN],
) -> bool {
    let key = hmac_parts(full_key, &[my_digest]);
    hmac_parts(&key, &[&p[..RESPONSE_DATA_LEN]])[..] == p[RESPONSE_DATA_LEN..]
}

/// Collects exactly one version byte plus one 1536-byte packet from the front of `input`.
/// Returns the packet once complete; never takes more bytes than it needs.
#[derive(Debug)]
struct HelloCollector {
    buf: Vec<u8>,
}

impl HelloCollector {
    fn new() -> Self {
        HelloCollector { buf: Vec::new() }
    }

    fn collect(
        &mut self,
        input: &mut BytesMut,
    ) -> Result<Option<Box<[u8; HANDSHAKE_SIZE]>>, HandshakeError> {
        if self.buf.is_empty() {
            match input.first() {
                None => return Ok(None),
                Some(&v) if v != RTMP_VERSION => return Err(HandshakeError::UnsupportedVersion(v)),
                Some(_) => self.buf.reserve_exact(1 + HANDSHAKE_SIZE),
            }
        }
        let take = (1 + HANDSHAKE_SIZE - self.buf.len()).min(input.len());
        self.buf.extend_from_slice(&input[..take]);
        input.advance(take);
        if self.buf.len() < 1 + HANDSHAKE_SIZE {
            return Ok(None);
        }
        let mut p = Box::new([0u8; HANDSHAKE_SIZE]);
        p.copy_from_slice(&self.buf[1..]);
        self.buf = Vec::new();
        Ok(Some(p))
    }
}

/// Drops `remaining` bytes from the front of successive inputs.
fn skip_bytes(remaining: &mut usize, input: &mut BytesMut) -> bool {
    let n = (*remaining).min(input.len());
    input.advance(n);
    *remaining -= n;
    *remaining == 0
}

#[derive(Debug)]
enum ServerState {
    AwaitC0C1(HelloCollector),
    AwaitC2 { remaining: usize },
    Done,
}

/// Server side: waits for C0+C1, answers S0+S1+S2, then waits for C2.
#[derive(Debug)]
pub struct ServerHandshake {
    seed: [u8; 32],
    epoch: u32,
    state: ServerState,
    digest: bool,
}

impl ServerHandshake {
    /// `seed` fills S1's random bytes; `epoch` is S1's time field.
    pub fn new(seed: [u8; 32], epoch: u32) -> Self {
        ServerHandshake {
            seed,
            epoch,
            state: ServerState::AwaitC0C1(HelloCollector::new()),
            digest: false,
        }
    }

    /// Consume handshake bytes from the front of `input` (leaving anything after C2 in place for
    /// the chunk decoder) and append S0+S1+S2 to `out` once C0+C1 is complete. Returns `true`
    /// when the handshake is finished.
    pub fn receive(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        loop {
            match &mut self.state {
                ServerState::AwaitC0C1(collector) => {
                    let Some(c1) = collector.collect(input)? else {
                        return Ok(false);
                    };
                    self.answer(&c1, out);
                    self.state = ServerState::AwaitC2 { remaining: HANDSHAKE_SIZE };
                }
                ServerState::AwaitC2 { remaining } => {
                    if !skip_bytes(remaining, input) {
                        return Ok(false);
                    }
                    self.state = ServerState::Done;
                }
                ServerState::Done => return Ok(true),
            }
        }
    }

    /// Append S0+S1+S2 answering `c1`.
    fn answer(&mut self, c1: &[u8; HANDSHAKE_SIZE], out: &mut BytesMut) {
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.extend_from_slice(&[RTMP_VERSION]);
        match find_digest(c1, &FP_TEXT[..]) {
            Some((schema, c1_digest)) => {
                self.digest = true;
                let mut s1 = hello_packet(&self.seed, self.epoch, SERVER_VERSION);
                sign_packet(&mut s1, schema, &FMS_TEXT[..]);
                out.extend_from_slice(&s1[..]);
                out.extend_from_slice(&digest_response(&self.seed, &fms_key(), &c1_digest)[..]);
            }
            None => {
                out.extend_from_slice(&hello_packet(&self.seed, self.epoch, [0; 4])[..]);
                out.extend_from_slice(c1);
            }
        }
    }

    /// Whether the client used the digest (complex) handshake.
    pub fn used_digest(&self) -> bool {
        self.digest
    }
}

#[derive(Debug)]
enum ClientState {
    AwaitS0S1(HelloCollector),
    AwaitS2 { remaining: usize },
    Done,
}

/// Client side: sends C0+C1 at once, answers S1 with C2.
#[derive(Debug)]
pub struct ClientHandshake {
    seed: [u8; 32],
    /// Our C1 digest, in digest mode.
    c1_digest: Option<[u8; DIGEST_LEN]>,
    state: ClientState,
    server_digest: bool,
}

impl ClientHandshake {
    /// Creates the handshake and appends C0+C1 to `out`. With `digest`, C1 carries a
    /// Flash-player style digest and S1's digest is verified.
    ///
    /// A server that answers a digest C1 plainly (S1 without a valid digest) is accepted and
    /// answered with the plain C2 (an echo of S1), as Flash Player does.
    pub fn new(seed: [u8; 32], epoch: u32, digest: bool, out: &mut BytesMut) -> Self {
        let version = if digest { CLIENT_VERSION } else { [0; 4] };
        let mut c1 = hello_packet(&seed, epoch, version);
        let c1_digest = digest.then(|| {
            sign_packet(&mut c1, 1, &FP_TEXT[..]);
            let off = digest_offset(&c1, 1);
            let mut d = [0u8; DIGEST_LEN];
            d.copy_from_slice(&c1[off..off + DIGEST_LEN]);
            d
        });
        out.reserve(1 + HANDSHAKE_SIZE);
        out.extend_from_slice(&[RTMP_VERSION]);
        out.extend_from_slice(&c1[..]);
        ClientHandshake {
            seed,
            c1_digest,
            state: ClientState::AwaitS0S1(HelloCollector::new()),
            server_digest: false,
        }
    }

    /// Consume S0+S1+S2 from `input`, appending C2 to `out`. Returns `true` when finished.
    pub fn receive(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<bool, HandshakeError> {
        loop {
            match &mut self.state {
                ClientState::AwaitS0S1(collector) => {
                    let Some(s1) = collector.collect(input)? else {
                        return Ok(false);
                    };
                    let server_digest = match self.c1_digest {
                        Some(_) => find_digest(&s1, &FMS_TEXT[..]),
                        None => None,
                    };
                    match server_digest {
                        Some((_, s1_digest)) => {
                            self.server_digest = true;
                            out.extend_from_slice(
                                &digest_response(&self.seed, &fp_key(), &s1_digest)[..],
                            );
                        }
                        None => out.extend_from_slice(&s1[..]),
                    }
                    self.state = ClientState::AwaitS2 { remaining: HANDSHAKE_SIZE };
                }
                ClientState::AwaitS2 { remaining } => {
                    if !skip_bytes(remaining, input) {
                        return Ok(false);
                    }
                    self.state = ClientState::Done;
                }
                ClientState::Done => return Ok(true),
            }
        }
    }

    /// Whether the server answered with a valid digest S1 (only in digest mode).
    pub fn server_used_digest(&self) -> bool {
        self.server_digest
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
