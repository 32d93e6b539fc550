//! Minimal HTTP/1.1 client pieces for HTTP-FLV and LL-HLS players: the response head parser and
//! an incremental, zero-copy decoder for `Transfer-Encoding: chunked` bodies.

use thiserror::Error;

/// Largest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HttpError {
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    #[error("malformed status line")]
    BadStatusLine,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("malformed Content-Length")]
    BadContentLength,
    #[error("malformed chunk size line")]
    BadChunkSize,
    #[error("chunk data not followed by CRLF")]
    BadChunkEnd,
}

impl HttpError {
    /// A short label for failure counting.
    pub fn label(&self) -> String {
        match self {
            HttpError::Status(code) => format!("http status {code}"),
            HttpError::HeadTooLarge | HttpError::BadStatusLine | HttpError::BadContentLength => {
                "http bad response head".into()
            }
            HttpError::BadChunkSize | HttpError::BadChunkEnd => "http bad chunked body".into(),
        }
    }
}

/// The parts of a response head a player needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub chunked: bool,
    /// `Content-Length`, if sent.
    pub content_length: Option<u64>,
    /// `Connection: close` (or HTTP/1.0 without keep-alive): the server closes after the body.
    pub close: bool,
    /// Bytes of the head, including the final CRLF CRLF.
    pub head_len: usize,
}

/// Parse a response head from the start of `buf`. `Ok(None)` means more bytes are needed.
/// A status other than 200 is an error.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    match parse_head(buf)? {
        Some(head) if head.status != 200 => Err(HttpError::Status(head.status)),
        head => Ok(head),
    }
}

/// Parse a response head of any status from the start of `buf`. `Ok(None)` means more bytes
/// are needed.
pub fn parse_head(buf: &[u8]) -> Result<Option<ResponseHead>, HttpError> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD { Err(HttpError::HeadTooLarge) } else { Ok(None) };
    };
    if end > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| HttpError::BadStatusLine)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or(HttpError::BadStatusLine)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::BadStatusLine);
    }
    let status: u16 =
        parts.next().and_then(|code| code.parse().ok()).ok_or(HttpError::BadStatusLine)?;
    let mut chunked = false;
    let mut content_length = None;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked |= value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            let ok =
                !value.is_empty() && value.len() <= 19 && value.bytes().all(|b| b.is_ascii_digit());
            let len: u64 =
                ok.then(|| value.parse().ok()).flatten().ok_or(HttpError::BadContentLength)?;
            if content_length.is_some_and(|other| other != len) {
                return Err(HttpError::BadContentLength);
            }
            content_length = Some(len);
        } else if name.eq_ignore_ascii_case("connection") {
            let value = value.to_ascii_lowercase();
            if value.contains("close") {
                close = true;
            } else if value.contains("keep-alive") {
                close = false;
            }
        }
    }
    Ok(Some(ResponseHead { status, chunked, content_length, close, head_len: end + 4 }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size (value so far, digits seen).
    Size {
        value: u64,
        digits: u8,
    },
    /// After the size: skipping a chunk extension up to CR.
    Extension {
        value: u64,
    },
    /// Expecting the LF of the size line.
    SizeLf {
        value: u64,
    },
    /// Inside chunk data, this many bytes left.
    Data {
        left: u64,
    },
    /// Expecting CR, then LF after chunk data.
    DataCr,
    DataLf,
    /// After the zero-size chunk: trailers are ignored, the body is complete.
    Done,
}

/// Incremental chunked-body decoder. It never copies: [`ChunkedDecoder::decode`] hands the
/// caller sub-slices of the input that are body data.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size { value: 0, digits: 0 } }
    }
}

impl ChunkedDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the terminating zero-size chunk was seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decode `input`, calling `sink` with each run of body bytes in order.
    pub fn decode(&mut self, input: &[u8], mut sink: impl FnMut(&[u8])) -> Result<(), HttpError> {
        let mut i = 0usize;
        while i < input.len() {
            let byte = input[i];
            match self.state {
                State::Size { value, digits } => {
                    if let Some(digit) = (byte as char).to_digit(16) {
                        if digits >= 15 {
                            return Err(HttpError::BadChunkSize);
                        }
                        self.state = State::Size {
                            value: value << 4 | u64::from(digit),
                            digits: digits + 1,
                        };
                    } else if digits == 0 {
                        return Err(HttpError::BadChunkSize);
                    } else if byte == b'\r' {
                        self.state = State::SizeLf { value };
                    } else if byte == b';' || byte == b' ' || byte == b'\t' {
                        self.state = State::Extension { value };
                    } else {
                        return Err(HttpError::BadChunkSize);
                    }
                    i += 1;
                }
                State::Extension { value } => {
                    if byte == b'\r' {
                        self.state = State::SizeLf { value };
                    }
                    i += 1;
                }
                State::SizeLf { value } => {
                    if byte != b'\n' {
                        return Err(HttpError::BadChunkSize);
                    }
                    self.state = if value == 0 { State::Done } else { State::Data { left: value } };
                    i += 1;
                }
                State::Data { left } => {
                    let available = input.len() - i;
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(available);
                    sink(&input[i..i + take]);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 { State::DataCr } else { State::Data { left } };
                }
                State::DataCr => {
                    if byte != b'\r' {
                        return Err(HttpError::BadChunkEnd);
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if byte != b'\n' {
                        return Err(HttpError::BadChunkEnd);
                    }
                    self.state = State::Size { value: 0, digits: 0 };
                    i += 1;
                }
                State::Done => return Ok(()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(pieces: &[&[u8]]) -> Result<(Vec<u8>, bool), HttpError> {
        let mut decoder = ChunkedDecoder::new();
        let mut body = Vec::new();
        for piece in pieces {
            decoder.decode(piece, |data| body.extend_from_slice(data))?;
        }
        Ok((body, decoder.is_done()))
    }

    #[test]
    fn decodes_whole_and_split_input() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";
        let (body, done) = decode_all(&[wire]).unwrap();
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert!(done);
        // Byte by byte gives the same result.
        let singles: Vec<&[u8]> = wire.chunks(1).collect();
        let (body, done) = decode_all(&singles).unwrap();
        assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.");
        assert!(done);
        // Split at every position.
        for cut in 0..wire.len() {
            let (body, _) = decode_all(&[&wire[..cut], &wire[cut..]]).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "cut at {cut}");
        }
    }

    #[test]
    fn large_hex_sizes() {
        let mut wire = b"1A\r\n".to_vec();
        wire.extend_from_slice(&[7u8; 26]);
        wire.extend_from_slice(b"\r\nff\r\n");
        wire.extend_from_slice(&[8u8; 255]);
        wire.extend_from_slice(b"\r\n");
        let (body, done) = decode_all(&[&wire]).unwrap();
        assert_eq!(body.len(), 281);
        assert!(body[..26].iter().all(|&b| b == 7) && body[26..].iter().all(|&b| b == 8));
        assert!(!done);
    }

    #[test]
    fn rejects_malformed_chunks() {
        assert_eq!(decode_all(&[b"zz\r\n"]), Err(HttpError::BadChunkSize));
        assert_eq!(decode_all(&[b"\r\n"]), Err(HttpError::BadChunkSize));
        assert_eq!(decode_all(&[b"3\rX"]), Err(HttpError::BadChunkSize));
        assert_eq!(decode_all(&[b"3\r\nabcXY"]), Err(HttpError::BadChunkEnd));
        assert_eq!(decode_all(&[b"ffffffffffffffffff\r\n"]), Err(HttpError::BadChunkSize));
    }

    #[test]
    fn response_heads() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\nFLV";
        let parsed = parse_response_head(head).unwrap().unwrap();
        assert_eq!(
            parsed,
            ResponseHead {
                status: 200,
                chunked: true,
                content_length: None,
                close: false,
                head_len: head.len() - 3
            }
        );
        let sized = b"HTTP/1.1 404 Not Found\r\ncontent-length: 12\r\nConnection: close\r\n\r\n";
        let parsed = parse_head(sized).unwrap().unwrap();
        assert_eq!((parsed.status, parsed.content_length, parsed.close), (404, Some(12), true));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n"),
            Err(HttpError::BadContentLength)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"),
            Err(HttpError::BadContentLength)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(HttpError::BadContentLength)
        );
        let plain = b"HTTP/1.0 200 OK\r\nContent-Type: video/x-flv\r\n\r\n";
        let plain = parse_response_head(plain).unwrap().unwrap();
        assert!(!plain.chunked && plain.close, "HTTP/1.0 closes by default");
        assert_eq!(parse_response_head(b"HTTP/1.1 200 OK\r\n"), Ok(None));
        assert_eq!(
            parse_response_head(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Err(HttpError::Status(404))
        );
        assert_eq!(parse_response_head(b"SSH-2.0\r\n\r\n"), Err(HttpError::BadStatusLine));
        assert_eq!(parse_response_head(&[b'a'; MAX_HEAD + 1]), Err(HttpError::HeadTooLarge));
    }
}
