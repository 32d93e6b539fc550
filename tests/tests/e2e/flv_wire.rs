//! HTTP-FLV on the wire, as a player's socket sees it. A request that arrives whole is answered
//! by the node's own writer (chunked, `Connection: close`; close-delimited for HTTP/1.0); one
//! split over packets, or a second request on a kept-alive connection, by hyper (chunked,
//! kept alive). All carry the same headers and a well-formed FLV stream whose end is clean,
//! refusals carry their reason, and a viewer that hangs up is noticed at once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

/// Read a response head; returns it (lower-cased) and the body bytes read past it.
fn read_head(sock: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            return (head, buf[end + 4..].to_vec());
        }
        let n = sock.read(&mut chunk).expect("read the response head");
        assert!(
            n > 0,
            "connection closed before the head ended: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Read until `body` holds at least `want` bytes.
fn read_at_least(sock: &mut TcpStream, body: &mut Vec<u8>, want: usize) {
    let mut chunk = [0u8; 16384];
    while body.len() < want {
        let n = sock.read(&mut chunk).expect("read the body");
        assert!(n > 0, "body ended after {} bytes", body.len());
        body.extend_from_slice(&chunk[..n]);
    }
}

/// Undo chunked framing over what was read so far (a partial last chunk is kept as is).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16)
            .expect("chunk size");
        let start = eol + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        if start + size + 2 > data.len() {
            break;
        }
        data = &data[start + size + 2..];
    }
    out
}

/// Walk an FLV byte stream: the file header, then tags whose back-pointers match their sizes.
/// Returns (tags, video keyframes) in the complete tags.
fn walk_flv(data: &[u8]) -> (usize, usize) {
    assert!(
        data.starts_with(b"FLV\x01"),
        "not an FLV stream: {:02x?}",
        &data[..16.min(data.len())]
    );
    let header_len = u32::from_be_bytes(data[5..9].try_into().unwrap()) as usize;
    let mut at = header_len + 4; // the header, then PreviousTagSize0
    assert_eq!(&data[header_len..at], &[0, 0, 0, 0], "PreviousTagSize0");
    let (mut tags, mut keyframes) = (0, 0);
    while at + 11 <= data.len() {
        let kind = data[at] & 0x1f;
        let size = u32::from_be_bytes([0, data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let end = at + 11 + size;
        if end + 4 > data.len() {
            break;
        }
        assert!(matches!(kind, 8 | 9 | 18), "tag type {kind} at byte {at}");
        let back = u32::from_be_bytes(data[end..end + 4].try_into().unwrap()) as usize;
        assert_eq!(back, size + 11, "PreviousTagSize after the tag at byte {at}");
        if kind == 9 && data[at + 11] >> 4 == 1 {
            keyframes += 1;
        }
        tags += 1;
        at = end + 4;
    }
    (tags, keyframes)
}

fn connect(origin: &Origin) -> TcpStream {
    let sock = TcpStream::connect(origin.http).expect("connect");
    sock.set_read_timeout(Some(secs(10))).unwrap();
    sock.set_nodelay(true).unwrap();
    sock
}

fn flv_viewers(origin: &Origin) -> f64 {
    origin.metrics().get("sluice_viewers", &[("protocol", "flv")]).unwrap_or(0.0)
}

#[test]
fn http_flv_plays_whether_the_request_comes_whole_split_or_second_and_refusals_say_why() {
    let fixture = h264_aac();
    let origin = Origin::start(&["--play-wait-timeout", "1s"]);
    let _publisher = Publisher::start_looped(&origin.rtmp_url("live", "wire"), &fixture.path);
    wait_for(secs(20), || origin.stream_info("live", "wire").filter(|s| !s["video"].is_null()))
        .expect("live/wire never went live");
    let bytes_before =
        origin.metrics().get("sluice_bytes_out_total", &[("protocol", "flv")]).unwrap_or(0.0);

    // Whole: the node's own writer, which closes the connection after this response. CORS as
    // on every other answer.
    let mut whole = connect(&origin);
    whole
        .write_all(b"GET /live/wire.flv?player=1 HTTP/1.1\r\nHost: t\r\nOrigin: http://page.example\r\n\r\n")
        .unwrap();
    let (head, mut body) = read_head(&mut whole);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: video/x-flv"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    read_at_least(&mut whole, &mut body, 512 * 1024);
    let flv = dechunk(&body);
    let (tags, keyframes) = walk_flv(&flv);
    assert!(tags > 50 && keyframes >= 1, "{tags} tags, {keyframes} keyframes");
    assert_eq!(flv_viewers(&origin), 1.0, "the direct viewer is counted");
    let sent = origin.metrics().value("sluice_bytes_out_total", &[("protocol", "flv")]);
    assert!(sent - bytes_before >= flv.len() as f64, "bytes_out {sent} after {} read", flv.len());

    // Split over two packets: hyper's, chunked, the same stream.
    let mut split = connect(&origin);
    split.write_all(b"GET /live/wire.flv HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    split.write_all(b"st: t\r\n\r\n").unwrap();
    let (head, mut raw) = read_head(&mut split);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: video/x-flv"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("connection: close"), "hyper keeps the connection: {head}");
    read_at_least(&mut split, &mut raw, 512 * 1024);
    let (tags, keyframes) = walk_flv(&dechunk(&raw));
    assert!(tags > 50 && keyframes >= 1, "chunked: {tags} tags, {keyframes} keyframes");

    // Second on a kept-alive connection: hyper's too.
    let mut second = connect(&origin);
    second.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (head, rest) = read_head(&mut second);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(rest.is_empty() || rest == b"ok\n", "{rest:?}");
    if rest.is_empty() {
        let mut ok = [0u8; 3];
        second.read_exact(&mut ok).unwrap();
    }
    second.write_all(b"GET /live/wire.flv HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (head, mut raw) = read_head(&mut second);
    assert!(head.starts_with("http/1.1 200") && head.contains("chunked"), "{head}");
    read_at_least(&mut second, &mut raw, 64 * 1024);
    walk_flv(&dechunk(&raw));
    // HTTP/1.0: no chunks, the body ends with the connection.
    let mut old = connect(&origin);
    old.write_all(b"GET /live/wire.flv HTTP/1.0\r\n\r\n").unwrap();
    let (head, mut raw) = read_head(&mut old);
    assert!(head.starts_with("http/1.1 200") && head.contains("connection: close"), "{head}");
    assert!(!head.contains("transfer-encoding") && !head.contains("content-length"), "{head}");
    read_at_least(&mut old, &mut raw, 64 * 1024);
    let (tags, _) = walk_flv(&raw);
    assert!(tags > 10, "HTTP/1.0: {tags} tags");
    assert_eq!(flv_viewers(&origin), 4.0, "four viewers");

    // Hanging up is noticed without waiting for a write to fail.
    drop((whole, split, second, old));
    wait_for(secs(5), || (flv_viewers(&origin) == 0.0).then_some(()))
        .unwrap_or_else(|| panic!("{} flv viewers left after they hung up", flv_viewers(&origin)));

    // A refusal from the direct path: the reason, with its length, then the close.
    let mut missing = connect(&origin);
    let asked = Instant::now();
    missing.write_all(b"GET /live/nothing.flv HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (head, mut body) = read_head(&mut missing);
    assert!(head.starts_with("http/1.1 404"), "{head}");
    assert!(asked.elapsed() >= Duration::from_millis(900), "answered before --play-wait-timeout");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("content-length")
        .parse()
        .unwrap();
    missing.read_to_end(&mut body).unwrap();
    assert_eq!(body.len(), len);
    assert_eq!(String::from_utf8_lossy(&body), "stream live/nothing is not published\n");
}
