//! HTTP-FLV straight to the socket. A plaintext connection whose first request is
//! `GET /APP/STREAM.flv` (whole in the socket's receive queue, as players send it) is answered
//! here instead of by hyper: the request still goes through the router (drain, play
//! authorisation, the webhook, limits, CORS: one place decides), but the media then leaves
//! the way RTMP's does, shared buffers written with `send`/`writev` as the socket takes them,
//! with no hyper read and write buffers (~16 KB a connection) and no body stream between the
//! hub and the socket. HTTP/1.1 bodies are chunked, a chunk per FLV tag, framed once per
//! stream (players such as ffmpeg take a close-delimited body's end for an error), and end
//! with the last chunk when the stream ends for the viewer; HTTP/1.0 bodies end with the
//! connection.
//!
//! Everything else (HTTPS, HTTP/2, a second request on a kept-alive connection, a request
//! split over packets) is hyper's, and the same route serves it there.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use axum::Router;
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;
use tracing::{debug, Instrument};

use super::flv::{FlvHandoff, FlvViewer};
use super::serve::ClientIp;
use crate::out_queue::OutQueue;

/// Longest request head taken here (longer ones go to hyper, which has its own limits).
const MAX_HEAD: usize = 4096;
/// Most request headers taken here.
const MAX_HEADERS: usize = 32;
/// Largest non-media answer (an error's text, a redirect) sent from here.
const MAX_ANSWER: usize = 64 * 1024;

/// What became of a connection's first request.
pub(super) enum Served {
    /// Not an HTTP-FLV play: the socket, untouched (nothing read from it), for hyper.
    NotFlv(TcpStream),
    /// Answered here: what is left to run (the media, or a small answer's writing). Boxed and
    /// returned rather than run here, so the request's state is gone while it runs: the task
    /// a viewer holds for hours is its playing state alone.
    Then(Pin<Box<dyn Future<Output = ()> + Send>>),
    /// The connection is done.
    Done,
}

/// Answer the connection's first request here if it is an HTTP-FLV play.
pub(super) async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    router: &Router,
    idle: Duration,
) -> Served {
    let Some((head_len, req)) = flv_request(&stream, peer).await else {
        return Served::NotFlv(stream);
    };
    // Take the head off the socket: it is all there (we just peeked it).
    let mut head = vec![0u8; head_len];
    if stream.read_exact(&mut head).await.is_err() {
        return Served::Done;
    }
    drop(head);
    let path = req.uri().path().to_owned();
    let chunked = req.version() == Version::HTTP_11;
    let resp = match Box::pin(router.clone().call(req)).await {
        Ok(resp) => resp,
        Err(never) => match never {},
    };
    let span = tracing::debug_span!("http_flv_direct", %peer, %path);
    let (parts, body) = resp.into_parts();
    let viewer = match parts.extensions.get::<FlvHandoff>() {
        Some(handoff) if parts.status == StatusCode::OK => handoff.take(),
        _ => None,
    };
    Served::Then(match viewer {
        Some(viewer) => {
            let head = response_head(&parts, if chunked { Length::Chunked } else { Length::Close });
            drop((parts, body));
            Box::pin(play(stream, head, viewer, chunked, idle).instrument(span))
        }
        None => Box::pin(answer(stream, parts, body, idle).instrument(span)),
    })
}

/// Peek the first request: `Some` when it is a complete `GET /APP/STREAM.flv` with no body.
async fn flv_request(stream: &TcpStream, peer: SocketAddr) -> Option<(usize, Request<Body>)> {
    let mut buf = vec![0u8; MAX_HEAD];
    let n = stream.peek(&mut buf).await.ok()?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head_len) = parsed.parse(&buf[..n]).ok()? else {
        return None;
    };
    if parsed.method? != "GET" {
        return None;
    }
    let target = parsed.path?;
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let mut segments = path.strip_prefix('/')?.split('/');
    let (app, file) = (segments.next()?, segments.next()?);
    if segments.next().is_some() || app.is_empty() || file.len() <= ".flv".len() {
        return None;
    }
    if !file.ends_with(".flv") {
        return None;
    }
    let version = match parsed.version? {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut req = Request::builder().method(Method::GET).uri(target).version(version);
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        // A body, or a protocol switch, is hyper's business.
        if name == axum::http::header::CONTENT_LENGTH
            || name == axum::http::header::TRANSFER_ENCODING
            || name == axum::http::header::UPGRADE
            || name == axum::http::header::EXPECT
        {
            return None;
        }
        req = req.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let mut req = req.body(Body::empty()).ok()?;
    req.extensions_mut().insert(ClientIp(peer.ip()));
    Some((head_len, req))
}

/// Send a whole (small) answer that is not a media stream: an error, a redirect.
async fn answer(stream: TcpStream, parts: axum::http::response::Parts, body: Body, idle: Duration) {
    let body = match tokio::time::timeout(idle, axum::body::to_bytes(body, MAX_ANSWER)).await {
        Ok(Ok(body)) => body,
        _ => Bytes::new(),
    };
    let mut out = OutQueue::default();
    out.push(response_head(&parts, Length::Known(body.len())));
    out.push(body);
    write_all(&stream, &mut out, Instant::now() + idle).await;
}

/// Write everything queued, or give up at `deadline`.
async fn write_all(stream: &TcpStream, out: &mut OutQueue, deadline: Instant) {
    while !out.is_empty() {
        if out.write_to(&mut &*stream).is_err() {
            return;
        }
        if !out.is_empty() && tokio::time::timeout_at(deadline, stream.writable()).await.is_err() {
            return;
        }
    }
}

/// How a response body's end is told.
#[derive(Clone, Copy)]
enum Length {
    Known(usize),
    Chunked,
    /// By closing the connection (HTTP/1.0).
    Close,
}

/// The status line and headers, the body's framing, and `Connection: close` (the connection
/// is this response's alone).
fn response_head(parts: &axum::http::response::Parts, length: Length) -> Bytes {
    let mut head = Vec::with_capacity(256);
    let reason = parts.status.canonical_reason().unwrap_or("");
    head.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", parts.status.as_u16()).as_bytes());
    for (name, value) in &parts.headers {
        use axum::http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
        if name == CONTENT_LENGTH || name == TRANSFER_ENCODING || name == CONNECTION {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    match length {
        Length::Known(len) => {
            head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
        }
        Length::Chunked => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Length::Close => {}
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    Bytes::from(head)
}

/// What woke the player's loop.
enum Wake {
    /// Media to collect (false: the stream ended for this viewer).
    Media(bool),
    /// The client sent something, or closed.
    Input,
    /// The socket takes bytes again.
    Writable,
    /// No byte moved for the idle timeout.
    Idle,
}

/// Stream to one viewer until the stream ends for it, the client goes, or the socket takes
/// nothing for `idle` (a queue is only refilled once the socket took all of it, so a slow
/// viewer lags in the stream's log, where the hub moves it on to a keyframe).
async fn play(
    stream: TcpStream,
    head: Bytes,
    mut viewer: FlvViewer,
    chunked: bool,
    idle: Duration,
) {
    let mut out = OutQueue::default();
    let mut body = Framing { chunked, pieces: Vec::new() };
    out.push(head);
    viewer.take_pending(|b| body.pieces.push(b));
    viewer.sent(body.flush_into(&mut out));
    let mut last_moved = Instant::now();
    let sleep = tokio::time::sleep_until(last_moved + idle);
    tokio::pin!(sleep);
    loop {
        if !out.is_empty() {
            match out.write_to(&mut &stream) {
                Ok(0) => {}
                Ok(_) => last_moved = Instant::now(),
                Err(e) => {
                    debug!(error = %e, "http-flv viewer: write failed");
                    return;
                }
            }
        }
        if viewer.is_closed() {
            // Boxed: the ending's state (a deadline) need not sit in every viewer's future.
            return Box::pin(body.end(&stream, &mut out, idle)).await;
        }
        let blocked = !out.is_empty();
        let wake = {
            let media = viewer.wait();
            tokio::pin!(media);
            poll_fn(|cx| {
                if blocked {
                    if stream.poll_write_ready(cx).is_ready() {
                        return Poll::Ready(Wake::Writable);
                    }
                } else if let Poll::Ready(alive) = media.as_mut().poll(cx) {
                    return Poll::Ready(Wake::Media(alive));
                }
                if stream.poll_read_ready(cx).is_ready() {
                    return Poll::Ready(Wake::Input);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Wake::Idle),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        };
        match wake {
            Wake::Media(false) => return Box::pin(body.end(&stream, &mut out, idle)).await,
            Wake::Media(true) => {
                let flv_bytes = viewer.fill_framed(chunked, |b| out.push(b));
                viewer.sent(flv_bytes);
            }
            Wake::Writable => {}
            Wake::Input => {
                if !discard_input(&stream) {
                    return;
                }
            }
            Wake::Idle => {
                if last_moved + idle <= Instant::now() {
                    debug!("http-flv viewer: nothing moved for the idle timeout");
                    return;
                }
                sleep.as_mut().reset(last_moved + idle);
            }
        }
    }
}

/// The response body's framing.
struct Framing {
    chunked: bool,
    /// The pieces before the media (the FLV file header), framed as one chunk.
    pieces: Vec<Bytes>,
}

/// The chunk that ends a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

impl Framing {
    /// Queue the collected pieces (as one chunk when chunked); returns their FLV bytes (counted
    /// as sent once queued, as hyper's body is when hyper takes it).
    fn flush_into(&mut self, out: &mut OutQueue) -> usize {
        let len: usize = self.pieces.iter().map(Bytes::len).sum();
        if len == 0 {
            self.pieces.clear();
            return 0;
        }
        if self.chunked {
            out.push(Bytes::from(format!("{len:x}\r\n")));
        }
        // Taken, not drained: the room goes with them (only the first flush has any).
        std::mem::take(&mut self.pieces).into_iter().for_each(|b| out.push(b));
        if self.chunked {
            out.push(Bytes::from_static(b"\r\n"));
        }
        len
    }

    /// The stream ended for this viewer: finish the body (the last chunk), give the socket
    /// up to `idle` to take what is queued, and close.
    async fn end(&mut self, stream: &TcpStream, out: &mut OutQueue, idle: Duration) {
        if self.chunked {
            out.push(Bytes::from_static(LAST_CHUNK));
        }
        write_all(stream, out, Instant::now() + idle).await;
    }
}

/// Read and drop what the client sends while it plays. False: it closed, or the socket failed.
fn discard_input(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    // A few reads a wake-up: a client that keeps sending is served between them.
    for _ in 0..8 {
        match stream.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}
