//! The one HTTP request the launchers make: a GET whose status line (and body) says whether a
//! process is ready (`/readyz` of a node, `/health` of etcd). Plain std, no HTTP crate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// GET `path` from `addr` with `Connection: close`: the status code and the raw body (chunked
/// bodies are not decoded; the callers only look for a word in them).
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let status =
        text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "no status line")
        })?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// Whether `GET path` answers 200.
pub fn ok(addr: SocketAddr, path: &str, timeout: Duration) -> bool {
    matches!(get(addr, path, timeout), Ok((200, _)))
}
