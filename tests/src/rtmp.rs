//! A blocking RTMP client for tests: sluice-media's sans-IO [`ClientSession`] driven over a
//! `std::net::TcpStream`, plus FLV file reading and video tag inspection.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::rtmp::client::{ClientConfig, ClientEvent, ClientMode, ClientSession};
use sluice_media::rtmp::handshake::ClientHandshake;

/// One RTMP connection driven by a [`ClientSession`].
pub struct RtmpClient {
    stream: TcpStream,
    session: ClientSession,
    events: VecDeque<ClientEvent>,
    eof: bool,
    /// Bytes read from the socket so far.
    pub bytes_read: u64,
}

impl std::fmt::Debug for RtmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmpClient")
            .field("eof", &self.eof)
            .field("bytes_read", &self.bytes_read)
            .finish()
    }
}

/// A client configuration for `rtmp://addr/app/stream`.
pub fn client_config(addr: SocketAddr, app: &str, stream: &str, mode: ClientMode) -> ClientConfig {
    ClientConfig {
        app: app.to_string(),
        tc_url: format!("rtmp://{addr}/{app}"),
        stream: stream.to_string(),
        mode,
        digest_handshake: false,
        chunk_size: Some(4096),
    }
}

impl RtmpClient {
    /// Connect over TCP and start the session (handshake bytes are sent at once).
    pub fn connect(
        addr: SocketAddr,
        app: &str,
        stream: &str,
        mode: ClientMode,
    ) -> Result<RtmpClient> {
        let tcp =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).context("TCP connect")?;
        Self::with_stream(tcp, client_config(addr, app, stream, mode))
    }

    /// Drive a session over an already connected socket.
    pub fn with_stream(stream: TcpStream, config: ClientConfig) -> Result<RtmpClient> {
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let seed: [u8; 32] = rand::random();
        let mut c = RtmpClient {
            stream,
            session: ClientSession::new(config, seed),
            events: VecDeque::new(),
            eof: false,
            bytes_read: 0,
        };
        c.flush()?;
        Ok(c)
    }

    /// The socket (e.g. to shut it down).
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }

    /// Whether the server closed the connection.
    pub fn is_eof(&self) -> bool {
        self.eof
    }

    fn flush(&mut self) -> Result<()> {
        while let Some(bytes) = self.session.poll_transmit() {
            self.stream.write_all(&bytes).context("write to server")?;
        }
        Ok(())
    }

    /// Read once (waiting up to `timeout`), feed the session, send its answers, queue its
    /// events. Returns the number of bytes read (0 on timeout or EOF).
    pub fn pump(&mut self, timeout: Duration) -> Result<usize> {
        if self.eof {
            return Ok(0);
        }
        self.stream.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = match self.stream.read(&mut buf) {
            Ok(0) => {
                self.eof = true;
                return Ok(0);
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(0)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) =>
            {
                self.eof = true;
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        };
        self.bytes_read += n as u64;
        self.session
            .receive(&buf[..n])
            .map_err(|e| anyhow!("client session rejected server bytes: {e}"))?;
        while let Some(ev) = self.session.poll_event() {
            self.events.push_back(ev);
        }
        self.flush()?;
        Ok(n)
    }

    /// The next event, waiting up to `timeout`. `Ok(None)` on timeout; an error if the server
    /// closed the connection with no event left.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<ClientEvent>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Ok(Some(ev));
            }
            if self.eof {
                bail!("server closed the connection");
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.pump(left.min(Duration::from_millis(200)))?;
        }
    }

    /// Wait for the next onStatus (skipping other events); returns its code.
    pub fn next_status(&mut self, timeout: Duration) -> Result<(String, String, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                Some(ClientEvent::Status { level, code, description }) => {
                    return Ok((level, code, description))
                }
                Some(ClientEvent::CommandError { description }) => {
                    bail!("command error: {description}")
                }
                Some(_) => continue,
                None => bail!("no onStatus within {timeout:?}"),
            }
        }
    }

    /// Wait for onStatus with `code`, failing on any other error-level status.
    pub fn expect_status(&mut self, code: &str, timeout: Duration) -> Result<(String, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (level, got, desc) =
                self.next_status(left).with_context(|| format!("waiting for {code}"))?;
            if got == code {
                return Ok((level, desc));
            }
            if level == "error" {
                bail!("expected {code}, got error status {got} ({desc})");
            }
        }
    }

    /// The next media message, waiting up to `timeout` (statuses are skipped but recorded in
    /// `seen`).
    pub fn next_media(
        &mut self,
        timeout: Duration,
        seen: &mut Vec<String>,
    ) -> Result<Option<MediaMessage>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                Some(ClientEvent::Media(m)) => return Ok(Some(m)),
                Some(ClientEvent::Status { code, .. }) => seen.push(code),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    /// Queue and send a media message (publisher).
    pub fn send_media(&mut self, message: &MediaMessage) -> Result<()> {
        self.session.send_media(message);
        self.flush()
    }

    /// Send closing commands and shut the socket down.
    pub fn close(mut self) {
        self.session.close();
        let _ = self.flush();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Keep the connection going (answering the server, queueing events) for `duration`.
    pub fn pump_for(&mut self, duration: Duration) -> Result<()> {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline && !self.eof {
            self.pump(Duration::from_millis(50))?;
        }
        Ok(())
    }

    /// Read and discard whatever the server sends (answering pings), until `duration` ends.
    pub fn drain_for(&mut self, duration: Duration) -> Result<()> {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline && !self.eof {
            self.pump(Duration::from_millis(100))?;
            self.events.clear();
        }
        Ok(())
    }
}

/// A raw TCP connection to an RTMP port with 5 s connect and write timeouts (for hostile and
/// limit tests that speak the protocol byte by byte).
pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("TCP connect");
    s.set_nodelay(true).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// [`raw_connect`], then a plain handshake with sluice-media's client handshake; nothing else
/// is sent.
pub fn raw_handshaken(addr: SocketAddr) -> TcpStream {
    let mut s = raw_connect(addr);
    let mut out = bytes::BytesMut::new();
    let mut hs = ClientHandshake::new(rand::random(), 0, false, &mut out);
    s.write_all(&out).unwrap();
    out.clear();
    let mut input = bytes::BytesMut::new();
    let mut buf = [0u8; 4096];
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        let n = s.read(&mut buf).expect("read S0/S1/S2");
        assert!(n > 0, "server closed during the handshake");
        input.extend_from_slice(&buf[..n]);
        if hs.receive(&mut input, &mut out).expect("server handshake is valid") {
            break;
        }
    }
    s.write_all(&out).unwrap();
    s
}

/// Every tag of an FLV file as a [`MediaMessage`].
pub fn read_flv_file(path: &Path) -> Result<Vec<MediaMessage>> {
    let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    parse_flv(&data)
}

/// Parse a complete FLV file held in memory.
pub fn parse_flv(data: &[u8]) -> Result<Vec<MediaMessage>> {
    if data.len() < 13 || &data[..3] != b"FLV" {
        bail!("not an FLV file");
    }
    let header_len = u32::from_be_bytes([data[5], data[6], data[7], data[8]]) as usize;
    let mut pos = header_len + 4;
    let mut out = Vec::new();
    while pos + 11 <= data.len() {
        let h = &data[pos..pos + 11];
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body_start = pos + 11;
        let body_end = body_start + len;
        if body_end > data.len() {
            break;
        }
        if let Some(kind) = MediaKind::from_type_id(h[0] & 0x1F) {
            out.push(MediaMessage {
                kind,
                timestamp: ts,
                payload: Bytes::copy_from_slice(&data[body_start..body_end]),
            });
        }
        pos = body_end + 4;
    }
    Ok(out)
}

/// What the first bytes of a video tag say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoHeader {
    pub keyframe: bool,
    pub sequence_header: bool,
    /// Legacy codec id (7 = AVC) or the Enhanced RTMP FourCC as a big-endian u32.
    pub codec: u32,
}

/// Inspect a video message payload (legacy FLV or Enhanced RTMP header).
pub fn video_header(payload: &[u8]) -> Option<VideoHeader> {
    let b0 = *payload.first()?;
    if b0 & 0x80 != 0 {
        let frame_type = (b0 >> 4) & 0x07;
        let packet_type = b0 & 0x0F;
        let fourcc = payload.get(1..5)?;
        Some(VideoHeader {
            keyframe: frame_type == 1,
            sequence_header: packet_type == 0,
            codec: u32::from_be_bytes([fourcc[0], fourcc[1], fourcc[2], fourcc[3]]),
        })
    } else {
        let codec = (b0 & 0x0F) as u32;
        let packet_type = payload.get(1).copied();
        Some(VideoHeader {
            keyframe: b0 >> 4 == 1,
            sequence_header: (codec == 7 || codec == 12) && packet_type == Some(0),
            codec,
        })
    }
}

/// The Enhanced RTMP FourCC `hvc1` as [`VideoHeader::codec`] reports it.
pub const FOURCC_HVC1: u32 = u32::from_be_bytes(*b"hvc1");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_video_headers() {
        let key = video_header(&[0x17, 1, 0, 0, 0]).unwrap();
        assert!(key.keyframe && !key.sequence_header && key.codec == 7);
        let seq = video_header(&[0x17, 0, 0, 0, 0]).unwrap();
        assert!(seq.sequence_header);
        let inter = video_header(&[0x27, 1, 0, 0, 0]).unwrap();
        assert!(!inter.keyframe);
        let ex = video_header(&[0x90, b'h', b'v', b'c', b'1']).unwrap();
        assert!(ex.keyframe && ex.sequence_header && ex.codec == FOURCC_HVC1);
        assert_eq!(video_header(&[]), None);
    }

    #[test]
    fn parses_flv_tags() {
        let mut f = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        f.extend_from_slice(&[9, 0, 0, 2, 0, 0, 0x21, 0, 0, 0, 0, 0x17, 0x01, 0, 0, 0, 13]);
        let tags = parse_flv(&f).unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].kind, MediaKind::Video);
        assert_eq!(tags[0].timestamp, 0x21);
        assert_eq!(&tags[0].payload[..], &[0x17, 0x01]);
    }
}
