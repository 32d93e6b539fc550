//! Drives a [`ClientSession`] over a tokio `TcpStream`: the bytes in/bytes out plumbing shared
//! by the publisher, the RTMP players and the flood probe.

use std::io;
use std::time::Duration;

use sluice_media::frame::MediaMessage;
use sluice_media::rtmp::client::{ClientEvent, ClientMode, ClientSession};
use sluice_media::rtmp::SessionError;
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::target::RtmpUrl;

/// Read buffer size per connection (one per player: keep it modest for 10k players).
const READ_BUF: usize = 16 * 1024;

#[derive(Debug, Error)]
pub enum ConnError {
    #[error("connect: {0}")]
    Connect(io::Error),
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("server closed the connection")]
    Eof,
    #[error("rtmp: {0}")]
    Rtmp(#[from] SessionError),
    #[error("status {0}")]
    Status(String),
    #[error("command error: {0}")]
    Command(String),
    #[error("timed out waiting for the server")]
    Timeout,
}

impl ConnError {
    /// A short label for failure counting (no addresses, no variable text beyond codes).
    pub fn label(&self) -> String {
        match self {
            ConnError::Connect(e) => format!("connect: {}", e.kind()),
            ConnError::ConnectTimeout => "connect timeout".into(),
            ConnError::Io(e) => format!("io: {}", e.kind()),
            ConnError::Eof => "closed by server".into(),
            ConnError::Rtmp(e) => format!("rtmp {}", e.kind()),
            ConnError::Status(code) => format!("status {code}"),
            ConnError::Command(_) => "command error".into(),
            ConnError::Timeout => "timeout".into(),
        }
    }
}

/// Open a TCP connection with a timeout, `TCP_NODELAY` set.
pub async fn tcp_connect(addr: &str, timeout: Duration) -> Result<TcpStream, ConnError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnError::ConnectTimeout)?
        .map_err(ConnError::Connect)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// One RTMP client connection.
pub struct RtmpConn {
    stream: TcpStream,
    session: ClientSession,
    buf: Vec<u8>,
}

impl RtmpConn {
    /// Connect and start the handshake (the session then runs connect/createStream/play|publish
    /// on its own as bytes flow).
    pub async fn connect(
        url: &RtmpUrl,
        mode: ClientMode,
        timeout: Duration,
    ) -> Result<Self, ConnError> {
        let stream = tcp_connect(&url.addr, timeout).await?;
        let seed: [u8; 32] = rand::random();
        let session = ClientSession::new(url.client_config(mode), seed);
        let mut conn = RtmpConn { stream, session, buf: vec![0; READ_BUF] };
        conn.flush().await?;
        Ok(conn)
    }

    /// Write everything the session has queued.
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        while let Some(bytes) = self.session.poll_transmit() {
            self.stream.write_all(&bytes).await?;
        }
        Ok(())
    }

    /// Read once from the socket and feed the session; returns the number of bytes read.
    /// Cancel-safe (a cancelled read consumed nothing).
    pub async fn read(&mut self) -> Result<usize, ConnError> {
        let n = self.stream.read(&mut self.buf).await?;
        if n == 0 {
            return Err(ConnError::Eof);
        }
        self.session.receive(&self.buf[..n])?;
        Ok(n)
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.session.poll_event()
    }

    pub fn send_media(&mut self, message: &MediaMessage) {
        self.session.send_media(message);
    }

    /// Queue the polite goodbye and write it.
    pub async fn close(&mut self) {
        self.session.close();
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Read and flush until the session reports `Connected` (connect succeeded). For probes.
    pub async fn wait_connected(&mut self, timeout: Duration) -> Result<(), ConnError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(event) = self.poll_event() {
                match event {
                    ClientEvent::Connected => return Ok(()),
                    ClientEvent::CommandError { description } => {
                        return Err(ConnError::Command(description))
                    }
                    _ => {}
                }
            }
            self.flush().await?;
            tokio::time::timeout_at(deadline, self.read())
                .await
                .map_err(|_| ConnError::Timeout)??;
        }
    }
}

/// Whether an onStatus means the stream cannot be played/published.
pub fn is_error_status(level: &str) -> bool {
    level.eq_ignore_ascii_case("error")
}
