//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, enough for the origin's API,
//! metrics and HTTP-FLV endpoints (content-length, chunked and close-delimited bodies).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

/// A response whose body is read as it arrives (for `.flv` streams).
pub struct HttpStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: Box<dyn Read + Send>,
    stream: TcpStream,
}

impl std::fmt::Debug for HttpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpStream")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish()
    }
}

impl HttpStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Change the read timeout of the underlying socket.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Read the whole remaining body.
    pub fn read_body(mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        self.body.read_to_end(&mut body)?;
        Ok(body)
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.body.read(buf)
    }
}

/// GET `path` and read the whole response; `timeout` bounds each socket operation.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<HttpResponse> {
    let stream = open(addr, "GET", path, timeout)?;
    let status = stream.status;
    let headers = stream.headers.clone();
    let body = stream.read_body()?;
    Ok(HttpResponse { status, headers, body })
}

/// Send a request and read the status line and headers; the body is left to read.
pub fn open(
    addr: SocketAddr,
    method: &str,
    path: &str,
    timeout: Duration,
) -> io::Result<HttpStream> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: sluice-tests\r\nOrigin: http://example.test\r\n\
         Connection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = parse_status_line(&line).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {line:?}"))
    })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed in headers",
            ));
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let body: Box<dyn Read + Send> = if method == "HEAD" || status == 204 || status == 304 {
        Box::new(io::empty())
    } else if find_header(&headers, "transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        Box::new(ChunkedReader { inner: reader, remaining: 0, done: false })
    } else if let Some(len) =
        find_header(&headers, "content-length").and_then(|v| v.parse::<u64>().ok())
    {
        Box::new(reader.take(len))
    } else {
        Box::new(reader)
    };
    Ok(HttpStream { status, headers, body, stream })
}

fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// Decodes a `Transfer-Encoding: chunked` body.
struct ChunkedReader<R> {
    inner: R,
    remaining: u64,
    done: bool,
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body truncated"));
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.remaining = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {line:?}"))
            })?;
            if self.remaining == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(self.remaining.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body truncated"));
        }
        self.remaining -= n as u64;
        if self.remaining == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

/// `curl`'s status code for `url` (`000` when nothing answered), with extra `args` such as
/// `--cacert` and `--resolve`: for the HTTPS ports, which this module's client does not speak.
pub fn curl_status(url: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Where an LL-HLS media playlist stands: its media sequence and the newest (msn, part) it
/// lists (parts are named `part-{msn}.{index}.m4s`). A player's numbers must never go back.
pub fn hls_position(playlist: &str) -> Option<(u64, (u64, u64))> {
    let sequence = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))?
        .trim()
        .parse()
        .ok()?;
    let newest = playlist
        .lines()
        .filter_map(|l| l.split("part-").nth(1))
        .filter_map(|rest| {
            let (msn, rest) = rest.split_once('.')?;
            Some((msn.parse().ok()?, rest.split_once('.')?.0.parse().ok()?))
        })
        .max()?;
    Some((sequence, newest))
}

/// `curl -X METHOD [-d JSON]` with `Authorization: Bearer TOKEN` when a token is given:
/// (status, body). For the admin APIs' tests, which need methods and headers `get` lacks.
pub fn curl(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "--max-time", "20", "-X", method, "-w", "\n%{http_code}"]);
    if let Some(token) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    if let Some(body) = body {
        cmd.args(["-H", "Content-Type: application/json", "--data-binary", body]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

/// `curl URL` with `args` (e.g. `["-r", "0-99"]`): the status, the response headers
/// lower-cased, and the body (kept in `dir` meanwhile).
pub fn curl_download(url: &str, args: &[&str], dir: &std::path::Path) -> (u16, String, Vec<u8>) {
    let body = dir.join("curl-body");
    let _ = std::fs::remove_file(&body);
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "60", "-D", "-", "-o"])
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let headers = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let status = headers.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, headers, std::fs::read(&body).unwrap_or_default())
}

/// The id of the newest recording the node at `http` lists, once it is finished (its
/// `/api/recordings` open to this caller: no token, or `--admin-allow`).
pub fn finished_recording(http: SocketAddr) -> Option<String> {
    let url = format!("http://{http}/api/recordings");
    let list: serde_json::Value = serde_json::from_str(&curl("GET", &url, None, None).1).ok()?;
    let rec = list["recordings"].as_array()?.first()?;
    (rec["finished"] == true).then(|| rec["id"].as_str().map(str::to_string)).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_chunked_bodies() {
        let raw = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        let mut r = ChunkedReader { inner: &raw[..], remaining: 0, done: false };
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 404 Not Found\r\n"), Some(404));
        assert_eq!(parse_status_line("HTTP/1.0 200 OK"), Some(200));
        assert_eq!(parse_status_line("SSH-2.0"), None);
    }
}
