//! What an RTMP connection reads and writes: a TCP socket, or RTMPS (TLS over one).
//!
//! The connection loop is readiness-driven (`readable`, then `try_read`; `writable`, then
//! `try_write_vectored`), so TLS is rustls's sans-IO [`rustls::ServerConnection`] driven by the
//! same readiness, not an `AsyncRead` stream: records are read and decrypted when the socket is
//! readable, plaintext is encrypted into rustls's bounded send buffer, and records go out when
//! the socket takes them. Two rules keep it honest:
//! - nothing more is accepted from the connection while encrypted bytes wait for the socket
//!   (`try_write_vectored` answers `WouldBlock`), so the connection's own output cap still
//!   bounds what a slow RTMPS viewer makes us hold;
//! - handshake records rustls wants to send make the connection wait for writability even
//!   when it has nothing of its own to send ([`Transport::wants_write`]).
//!
//! The TLS handshake counts against the RTMP handshake deadline (the connection's first).

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::out_queue::TryWriteVectored;

/// A connection's byte stream.
pub(super) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsTransport>),
}

/// RTMPS: rustls's server state over a TCP socket.
pub(super) struct TlsTransport {
    tcp: TcpStream,
    tls: rustls::ServerConnection,
    /// Decrypted bytes rustls holds for us.
    plaintext: usize,
    /// The peer closed (TCP EOF or `close_notify`) and every plaintext byte was read.
    eof: bool,
}

/// Blocking-style I/O on a non-blocking socket: `WouldBlock` when it is not ready.
struct TryIo<'a>(&'a TcpStream);

impl Read for TryIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for TryIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

impl Transport {
    /// Start TLS on an accepted socket (the handshake runs as the connection reads).
    pub(super) fn tls(tcp: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let tls = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Transport::Tls(Box::new(TlsTransport { tcp, tls, plaintext: 0, eof: false })))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(t) => &t.tcp,
        }
    }

    pub(super) fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }

    /// Ready when [`Transport::try_read`] may have something (or an end) to give. Polled
    /// in place (no waiter registered and dropped per wait, as `readable()` does): a
    /// player's loop waits on it for every frame it sends.
    pub(super) fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Tls(t) if t.plaintext > 0 || t.eof => Poll::Ready(Ok(())),
            _ => self.tcp().poll_read_ready(cx),
        }
    }

    /// Ready when the socket takes bytes (see [`Transport::poll_readable`]).
    pub(super) fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_write_ready(cx)
    }

    /// Wait until [`Transport::try_read`] may have something (or an end) to give.
    pub(super) async fn readable(&self) -> io::Result<()> {
        match self {
            Transport::Tls(t) if t.plaintext > 0 || t.eof => Ok(()),
            _ => self.tcp().readable().await,
        }
    }

    /// Wait until the socket takes bytes.
    pub(super) async fn writable(&self) -> io::Result<()> {
        self.tcp().writable().await
    }

    /// Whether TLS has records to send that wait for the socket (handshake, alerts, or
    /// encrypted output the socket did not take yet).
    pub(super) fn wants_write(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls(t) => t.tls.wants_write(),
        }
    }

    /// Read what is there: `Ok(0)` at the end, `WouldBlock` when nothing is (TLS records that
    /// carried no application data, such as the handshake's, also give `WouldBlock`).
    pub(super) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.try_read(buf),
            Transport::Tls(t) => t.try_read(buf),
        }
    }

    /// Send TLS records rustls holds, as far as the socket takes them.
    pub(super) fn flush_tls(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush_records(),
        }
    }

    /// Close our sending side (TLS: `close_notify` first).
    pub(super) async fn shutdown(&mut self) -> io::Result<()> {
        if let Transport::Tls(t) = self {
            t.tls.send_close_notify();
            while t.tls.wants_write() {
                t.tcp.writable().await?;
                t.flush_records()?;
            }
        }
        match self {
            Transport::Plain(tcp) => tcp.shutdown().await,
            Transport::Tls(t) => t.tcp.shutdown().await,
        }
    }
}

impl TryWriteVectored for Transport {
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.try_write_vectored(bufs),
            Transport::Tls(t) => t.try_write_vectored(bufs),
        }
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(tcp) => tcp.try_write(buf),
            Transport::Tls(t) => t.try_write_vectored(&[IoSlice::new(buf)]),
        }
    }
}

impl TlsTransport {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.plaintext == 0 && !self.eof {
            // One socket read per call, like the plain socket: the loop comes back while the
            // socket stays readable.
            if self.tls.read_tls(&mut TryIo(&self.tcp))? == 0 {
                self.eof = true;
            } else {
                let state = match self.tls.process_new_packets() {
                    Ok(state) => state,
                    Err(e) => {
                        // Tell the peer why (the alert rustls queued), then fail.
                        let _ = self.flush_records();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                };
                self.plaintext = state.plaintext_bytes_to_read();
                self.eof = state.peer_has_closed() && self.plaintext == 0;
                // Handshake replies go out now, whatever the connection has to say.
                self.flush_records()?;
            }
        }
        if self.plaintext > 0 {
            let n = self.tls.reader().read(buf)?;
            self.plaintext -= n;
            return Ok(n);
        }
        if self.eof {
            return Ok(0);
        }
        Err(would_block())
    }

    fn flush_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut TryIo(&self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.flush_records()?;
        if self.tls.wants_write() {
            // The socket is full: take nothing more until it drains.
            return Err(would_block());
        }
        let n = self.tls.writer().write_vectored(bufs)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            // rustls's buffer is full with nothing to send: only before the handshake ends,
            // and the server says nothing before the client's first RTMP bytes.
            return Err(io::Error::other("RTMPS: output before the TLS handshake finished"));
        }
        self.flush_records()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn server_config() -> (Arc<rustls::ServerConfig>, Vec<u8>) {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = cert.cert.der().to_vec();
        let key =
            rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone().into()], key)
        .unwrap();
        (Arc::new(config), der)
    }

    fn client_config(ca: Vec<u8>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.into()).unwrap();
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    /// Echo through the readiness-driven transport, the way the connection loop drives it.
    async fn echo(mut t: Transport, total: usize) -> io::Result<()> {
        let mut buf = vec![0u8; 4096];
        let mut pending: Vec<u8> = Vec::new();
        let mut seen = 0;
        while seen < total || !pending.is_empty() || t.wants_write() {
            tokio::select! {
                r = t.readable(), if seen < total => {
                    r?;
                    match t.try_read(&mut buf) {
                        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                        Ok(n) => { seen += n; pending.extend_from_slice(&buf[..n]); }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e),
                    }
                }
                r = t.writable(), if !pending.is_empty() || t.wants_write() => {
                    r?;
                    t.flush_tls()?;
                    if !pending.is_empty() {
                        match t.try_write_vectored(&[IoSlice::new(&pending)]) {
                            Ok(n) => { pending.drain(..n); }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
            }
        }
        t.shutdown().await
    }

    #[tokio::test]
    async fn a_tls_client_gets_back_every_byte_it_sends() {
        let (server, ca) = server_config();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // More than rustls buffers and than a socket takes at once: backpressure is exercised.
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let total = data.len();
        let serve = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            echo(Transport::tls(tcp, server).unwrap(), total).await
        });
        let connector = tokio_rustls::TlsConnector::from(client_config(ca));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await.unwrap();
        let (mut rd, mut wr) = tokio::io::split(tls);
        let sent = data.clone();
        let writer = tokio::spawn(async move { wr.write_all(&sent).await.map(|_| wr) });
        let mut back = Vec::new();
        rd.read_to_end(&mut back).await.unwrap();
        let _wr = writer.await.unwrap().unwrap();
        serve.await.unwrap().unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "the echoed bytes differ");
    }

    #[tokio::test]
    async fn garbage_instead_of_a_client_hello_is_an_error_not_a_hang() {
        let (server, _) = server_config();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serve = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            echo(Transport::tls(tcp, server).unwrap(), 1).await
        });
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        // A plain RTMP C0+C1 sent to the RTMPS port.
        let mut c0c1 = vec![3u8];
        c0c1.extend(std::iter::repeat_n(0u8, 1536));
        tcp.write_all(&c0c1).await.unwrap();
        let e = serve.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }
}
