//! Tests for the incremental FLV reader.

use super::*;
use crate::flv::{file_header, tag_header};

fn tag(kind: MediaKind, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = tag_header(kind, ts, payload.len()).to_vec();
    v.extend_from_slice(payload);
    v.extend_from_slice(&((TAG_HEADER_LEN + payload.len()) as u32).to_be_bytes());
    v
}

fn sample_stream() -> Vec<u8> {
    let mut v = file_header(true, true).to_vec();
    v.extend(tag(MediaKind::Data, 0, b"\x02\x00\x0aonMetaData"));
    v.extend(tag(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1, 2, 3]));
    v.extend(tag(MediaKind::Audio, 23, &[0xAF, 1, 0x21]));
    v.extend(tag(MediaKind::Video, 0x1234_5678, &[0x27, 1, 0, 0, 0]));
    v.extend(tag(MediaKind::Audio, 50, &[]));
    v
}

fn expected() -> Vec<FlvTag> {
    let t =
        |kind, timestamp, p: &[u8]| FlvTag { kind, timestamp, payload: Bytes::copy_from_slice(p) };
    vec![
        t(MediaKind::Data, 0, b"\x02\x00\x0aonMetaData"),
        t(MediaKind::Video, 0, &[0x17, 0, 0, 0, 0, 1, 2, 3]),
        t(MediaKind::Audio, 23, &[0xAF, 1, 0x21]),
        t(MediaKind::Video, 0x1234_5678, &[0x27, 1, 0, 0, 0]),
        t(MediaKind::Audio, 50, &[]),
    ]
}

fn drain(r: &mut FlvReader, out: &mut Vec<FlvTag>) {
    while let Some(t) = r.next_tag().unwrap() {
        out.push(t);
    }
}

#[test]
fn reads_all_at_once_and_byte_by_byte() {
    let data = sample_stream();
    for step in [data.len(), 1, 2, 7, 13] {
        let mut r = FlvReader::new(1 << 20);
        let mut got = Vec::new();
        for chunk in data.chunks(step) {
            r.push(chunk);
            drain(&mut r, &mut got);
        }
        assert_eq!(got, expected(), "step {step}");
    }
}

#[test]
fn previous_tag_sizes_are_not_buffered() {
    let data = sample_stream();
    let mut r = FlvReader::new(1 << 20);
    r.push(&data);
    drain(&mut r, &mut Vec::new());
    assert!(r.buf.is_empty());
}

#[test]
fn header_data_offset_is_honoured_and_bounded() {
    let mut data = b"FLV\x01\x05\x00\x00\x00\x0c".to_vec();
    data.extend_from_slice(&[0xEE; 3]); // 3 extra header bytes
    data.extend_from_slice(&[0; 4]); // PreviousTagSize0
    data.extend(tag(MediaKind::Audio, 5, b"ab"));
    let mut r = FlvReader::new(100);
    r.push(&data);
    assert_eq!(r.next_tag().unwrap().unwrap().payload, Bytes::from_static(b"ab"));

    for offset in [0u32, 8, MAX_HEADER_LEN + 1, u32::MAX] {
        let mut h = b"FLV\x01\x05".to_vec();
        h.extend_from_slice(&offset.to_be_bytes());
        let mut r = FlvReader::new(100);
        r.push(&h);
        assert_eq!(r.next_tag(), Err(FlvError::BadSignature), "offset {offset}");
    }
}

#[test]
fn bad_signature_detected_early() {
    let mut r = FlvReader::new(100);
    r.push(b"F");
    assert_eq!(r.next_tag(), Ok(None));
    r.push(b"X");
    assert_eq!(r.next_tag(), Err(FlvError::BadSignature));
    // Sticky.
    r.push(b"V\x01\x05\x00\x00\x00\x09");
    assert_eq!(r.next_tag(), Err(FlvError::BadSignature));
    let mut r = FlvReader::new(100);
    r.push(b"HTTP/1.1 404");
    assert_eq!(r.next_tag(), Err(FlvError::BadSignature));
}

#[test]
fn oversized_tag_refused_from_its_header() {
    let mut data = file_header(true, true).to_vec();
    data.extend_from_slice(&tag_header(MediaKind::Video, 0, 1001));
    let mut r = FlvReader::new(1000);
    r.push(&data); // only the header, not the body
    assert_eq!(r.next_tag(), Err(FlvError::TagTooLarge { size: 1001, limit: 1000 }));
    // Exactly at the limit is fine.
    let mut data = file_header(true, true).to_vec();
    data.extend(tag(MediaKind::Video, 0, &[7; 1000]));
    let mut r = FlvReader::new(1000);
    r.push(&data);
    assert_eq!(r.next_tag().unwrap().unwrap().payload.len(), 1000);
}

#[test]
fn filtered_and_unknown_tags() {
    let mut data = file_header(true, true).to_vec();
    let mut t = tag(MediaKind::Audio, 0, b"x");
    t[0] |= 0x20;
    data.extend(t);
    let mut r = FlvReader::new(100);
    r.push(&data);
    assert_eq!(r.next_tag(), Err(FlvError::Filtered));

    let mut data = file_header(true, true).to_vec();
    let mut t = tag(MediaKind::Audio, 0, b"x");
    t[0] = 15;
    data.extend(t);
    let mut r = FlvReader::new(100);
    r.push(&data);
    assert_eq!(r.next_tag(), Err(FlvError::UnknownTagType(15)));
}

#[test]
fn incomplete_tag_waits() {
    let data = sample_stream();
    let mut r = FlvReader::new(100);
    r.push(&data[..13 + 11 + 5]);
    assert_eq!(r.next_tag(), Ok(None));
    r.push(&data[13 + 11 + 5..]);
    let mut got = Vec::new();
    drain(&mut r, &mut got);
    assert_eq!(got.len(), 5);
}
