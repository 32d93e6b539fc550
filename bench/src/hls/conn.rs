//! One HTTP/1.1 keep-alive connection of an HLS client: sequential `GET`s, each response's
//! body streamed to a sink as it arrives (framed by `Content-Length`, or chunked / to EOF after
//! which the connection is closed). One fixed read buffer per connection; bodies are never
//! accumulated here. A request on a reused connection that the server had already closed is
//! retried once on a fresh connection (the usual keep-alive race).

use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::fmp4::Fmp4Error;
use crate::http::{parse_head, ChunkedDecoder, HttpError, MAX_HEAD};
use crate::rtmp_conn::{tcp_connect, ConnError};
use crate::target::HttpUrl;

/// Read buffer per connection (holds a whole response head).
const READ_BUF: usize = 32 * 1024;
const _: () = assert!(READ_BUF > MAX_HEAD);

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("connect: {}", .0.label())]
    Connect(ConnError),
    #[error("i/o: {0:?}")]
    Io(std::io::ErrorKind),
    #[error("closed by server")]
    Closed,
    /// Closed before any byte of the response: the keep-alive race, retried once.
    #[error("closed by server before the response")]
    ClosedIdle,
    #[error("{0}")]
    Http(#[from] HttpError),
    #[error("body larger than {0} bytes")]
    TooLarge(u64),
    /// The sink refused the body (a part that is not valid fMP4).
    #[error("fmp4: {0}")]
    Body(Fmp4Error),
}

impl FetchError {
    /// A short label for error counting.
    pub fn label(&self) -> String {
        match self {
            FetchError::Connect(e) => format!("connect: {}", e.label()),
            FetchError::Io(kind) => format!("io: {kind}"),
            FetchError::Closed | FetchError::ClosedIdle => "closed by server".into(),
            FetchError::Http(e) => e.label(),
            FetchError::TooLarge(_) => "body too large".into(),
            FetchError::Body(e) => format!("fmp4: {e}"),
        }
    }
}

/// A response whose body went to the sink (only for status 200; other bodies are discarded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Bytes received for this response, head included.
    pub wire_bytes: u64,
}

/// A keep-alive connection to one server (reconnected when needed).
pub struct HttpConn {
    addr: String,
    host: String,
    connect_timeout: Duration,
    stream: Option<TcpStream>,
    buf: Box<[u8]>,
    start: usize,
    filled: usize,
    /// TCP connections opened so far.
    pub connects: u64,
}

impl HttpConn {
    pub fn new(url: &HttpUrl, connect_timeout: Duration) -> Self {
        HttpConn {
            addr: url.addr.clone(),
            host: url.host.clone(),
            connect_timeout,
            stream: None,
            buf: vec![0u8; READ_BUF].into_boxed_slice(),
            start: 0,
            filled: 0,
            connects: 0,
        }
    }

    /// Drop the connection (after a timeout or an error its state is unknown).
    pub fn reset(&mut self) {
        self.stream = None;
        self.start = 0;
        self.filled = 0;
    }

    /// `GET path` (path and query). A 200 body goes to `sink` piece by piece; at most
    /// `max_body` bytes are accepted.
    pub async fn get(
        &mut self,
        path: &str,
        max_body: u64,
        sink: &mut impl FnMut(&[u8]) -> Result<(), Fmp4Error>,
    ) -> Result<Response, FetchError> {
        let reused = self.stream.is_some();
        match self.try_get(path, max_body, sink).await {
            Err(FetchError::ClosedIdle) if reused => {
                self.reset();
                self.try_get(path, max_body, sink).await
            }
            Err(e) => {
                self.reset();
                Err(e)
            }
            ok => ok,
        }
    }

    async fn try_get(
        &mut self,
        path: &str,
        max_body: u64,
        sink: &mut impl FnMut(&[u8]) -> Result<(), Fmp4Error>,
    ) -> Result<Response, FetchError> {
        if self.stream.is_none() {
            let stream =
                tcp_connect(&self.addr, self.connect_timeout).await.map_err(FetchError::Connect)?;
            self.stream = Some(stream);
            self.start = 0;
            self.filled = 0;
            self.connects += 1;
        }
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: sluice-bench\r\nAccept: */*\r\n\r\n",
            self.host
        );
        let stream = self.stream.as_mut().ok_or(FetchError::Closed)?;
        if let Err(e) = stream.write_all(request.as_bytes()).await {
            return Err(match e.kind() {
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                    FetchError::ClosedIdle
                }
                kind => FetchError::Io(kind),
            });
        }
        let head = loop {
            if let Some(head) = parse_head(&self.buf[self.start..self.filled])? {
                break head;
            }
            let got_any = self.filled > self.start;
            match self.read_more().await {
                Ok(0) | Err(FetchError::Closed) if !got_any => return Err(FetchError::ClosedIdle),
                Ok(0) => return Err(FetchError::Closed),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        };
        self.start += head.head_len;
        let ok = head.status == 200;
        let mut wire = head.head_len as u64;
        let mut delivered = 0u64;
        let mut deliver = |data: &[u8]| -> Result<(), FetchError> {
            delivered += data.len() as u64;
            if !ok {
                return Ok(());
            }
            if delivered > max_body {
                return Err(FetchError::TooLarge(max_body));
            }
            sink(data).map_err(FetchError::Body)
        };
        let mut keep = !head.close;
        if head.chunked {
            // Trailers are not parsed: the connection is not reused after a chunked body.
            keep = false;
            let mut decoder = ChunkedDecoder::new();
            loop {
                let mut result = Ok(());
                decoder.decode(&self.buf[self.start..self.filled], |d| {
                    if result.is_ok() {
                        result = deliver(d);
                    }
                })?;
                result?;
                wire += (self.filled - self.start) as u64;
                self.start = self.filled;
                if decoder.is_done() {
                    break;
                }
                if self.read_more().await? == 0 {
                    return Err(FetchError::Closed);
                }
            }
        } else if let Some(len) = head.content_length {
            let mut left = len;
            if ok && len > max_body {
                return Err(FetchError::TooLarge(max_body));
            }
            loop {
                let take =
                    usize::try_from(left).unwrap_or(usize::MAX).min(self.filled - self.start);
                deliver(&self.buf[self.start..self.start + take])?;
                self.start += take;
                left -= take as u64;
                wire += take as u64;
                if left == 0 {
                    break;
                }
                if self.read_more().await? == 0 {
                    return Err(FetchError::Closed);
                }
            }
        } else {
            // No framing: the body runs to EOF.
            keep = false;
            loop {
                deliver(&self.buf[self.start..self.filled])?;
                wire += (self.filled - self.start) as u64;
                self.start = self.filled;
                if self.read_more().await? == 0 {
                    break;
                }
            }
        }
        if !keep {
            self.reset();
        }
        Ok(Response { status: head.status, wire_bytes: wire })
    }

    /// Read into the buffer (compacting it first); returns the bytes read (0 at EOF).
    async fn read_more(&mut self) -> Result<usize, FetchError> {
        if self.start == self.filled {
            self.start = 0;
            self.filled = 0;
        } else if self.filled == self.buf.len() {
            if self.start == 0 {
                return Err(FetchError::Http(HttpError::HeadTooLarge));
            }
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
        }
        let stream = self.stream.as_mut().ok_or(FetchError::Closed)?;
        let n = stream.read(&mut self.buf[self.filled..]).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionReset => FetchError::Closed,
            kind => FetchError::Io(kind),
        })?;
        self.filled += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request (read up to the blank line) with the next canned
    /// response, and closes after the last one; returns how many connections it accepted.
    async fn serve(
        responses: Vec<Vec<u8>>,
        close_after_each: bool,
    ) -> (HttpUrl, tokio::task::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = HttpUrl::parse(&format!("http://{addr}/live/x.m3u8")).unwrap();
        let task = tokio::spawn(async move {
            let mut accepted = 0;
            let mut responses = responses.into_iter().peekable();
            while responses.peek().is_some() {
                let (mut sock, _) = listener.accept().await.unwrap();
                accepted += 1;
                let mut req = Vec::new();
                loop {
                    let mut b = [0u8; 1024];
                    let n = sock.read(&mut b).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&b[..n]);
                    if req.windows(4).any(|w| w == b"\r\n\r\n") {
                        req.clear();
                        let Some(resp) = responses.next() else { break };
                        // Write in two pieces to exercise partial reads.
                        let mid = resp.len() / 2;
                        sock.write_all(&resp[..mid]).await.unwrap();
                        sock.flush().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        sock.write_all(&resp[mid..]).await.unwrap();
                        if close_after_each || responses.peek().is_none() {
                            break;
                        }
                    }
                }
            }
            accepted
        });
        (url, task)
    }

    async fn fetch(conn: &mut HttpConn, max: u64) -> Result<(u16, Vec<u8>), FetchError> {
        let mut body = Vec::new();
        let r = conn
            .get("/live/x.m3u8", max, &mut |d: &[u8]| {
                body.extend_from_slice(d);
                Ok(())
            })
            .await?;
        Ok((r.status, body))
    }

    #[tokio::test]
    async fn keep_alive_content_length_and_statuses() {
        let big = vec![7u8; 100_000];
        let mut with_big = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
        with_big.extend_from_slice(&big);
        let (url, server) = serve(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope".to_vec(),
                with_big,
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                    .to_vec(),
            ],
            false,
        )
        .await;
        let mut conn = HttpConn::new(&url, Duration::from_secs(2));
        assert_eq!(fetch(&mut conn, 1000).await.unwrap(), (200, b"hello".to_vec()));
        // A 404 body is read (so the connection stays usable) but not handed to the sink.
        assert_eq!(fetch(&mut conn, 1000).await.unwrap(), (404, vec![]));
        assert_eq!(fetch(&mut conn, 200_000).await.unwrap(), (200, big));
        assert_eq!(fetch(&mut conn, 1000).await.unwrap(), (200, b"abc".to_vec()));
        assert_eq!(conn.connects, 1, "one keep-alive connection for all four");
        assert_eq!(server.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn reconnects_after_close_and_limits_bodies() {
        let (url, server) = serve(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n".to_vec(),
            ],
            true,
        )
        .await;
        let mut conn = HttpConn::new(&url, Duration::from_secs(2));
        assert_eq!(fetch(&mut conn, 10).await.unwrap().1, b"ok");
        // The server closed the idle connection: the request is retried on a new one.
        assert_eq!(fetch(&mut conn, 10).await.unwrap().1, b"ok");
        assert!(matches!(fetch(&mut conn, 10).await, Err(FetchError::TooLarge(10))));
        assert_eq!(server.await.unwrap(), 3);
        assert_eq!(conn.connects, 3);
    }

    #[tokio::test]
    async fn truncated_body_is_an_error() {
        let (url, _server) =
            serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec()], true).await;
        let mut conn = HttpConn::new(&url, Duration::from_secs(2));
        assert!(matches!(fetch(&mut conn, 100).await, Err(FetchError::Closed)));
    }
}
