//! Unit tests for the chunk codec with hand-made byte vectors.

use bytes::BytesMut;

use super::*;

fn decode_all(dec: &mut ChunkDecoder) -> Vec<RawMessage> {
    let mut out = Vec::new();
    while let Some(m) = dec.next_message().unwrap() {
        out.push(m);
    }
    out
}

fn msg(csid: u32, timestamp: u32, type_id: u8, stream_id: u32, payload: &[u8]) -> RawMessage {
    RawMessage { csid, timestamp, type_id, stream_id, payload: Bytes::copy_from_slice(payload) }
}

fn new_decoder() -> ChunkDecoder {
    ChunkDecoder::new(ChunkLimits::default())
}

/// RTMP 1.0 section 5.3.2.1, example 1: four audio messages, headers type 0, 2, 3, 3.
#[test]
fn spec_example_1_audio_header_compression() {
    let payload = [0xAAu8; 32];
    let mut expected = vec![0x03, 0x00, 0x03, 0xE8, 0x00, 0x00, 0x20, 0x08, 0x39, 0x30, 0x00, 0x00];
    expected.extend_from_slice(&payload);
    expected.extend_from_slice(&[0x83, 0x00, 0x00, 0x14]);
    expected.extend_from_slice(&payload);
    expected.push(0xC3);
    expected.extend_from_slice(&payload);
    expected.push(0xC3);
    expected.extend_from_slice(&payload);

    let mut enc = ChunkEncoder::new();
    let mut out = BytesMut::new();
    for ts in [1000, 1020, 1040, 1060] {
        enc.encode(3, ts, 8, 12345, &payload, &mut out);
    }
    assert_eq!(&out[..], &expected[..]);

    let mut dec = new_decoder();
    dec.push(&expected);
    let got = decode_all(&mut dec);
    let want: Vec<_> =
        [1000, 1020, 1040, 1060].iter().map(|&ts| msg(3, ts, 8, 12345, &payload)).collect();
    assert_eq!(got, want);
    assert_eq!(dec.bytes_received(), expected.len() as u64);
    assert_eq!(dec.buffered(), 0);
}

/// RTMP 1.0 section 5.3.2.2, example 2: a 307-byte video message in 128-byte chunks.
#[test]
fn spec_example_2_message_split_into_chunks() {
    let payload: Vec<u8> = (0..307u32).map(|i| i as u8).collect();
    let mut expected = vec![0x04, 0x00, 0x03, 0xE8, 0x00, 0x01, 0x33, 0x09, 0x3A, 0x30, 0x00, 0x00];
    expected.extend_from_slice(&payload[..128]);
    expected.push(0xC4);
    expected.extend_from_slice(&payload[128..256]);
    expected.push(0xC4);
    expected.extend_from_slice(&payload[256..]);

    let mut out = BytesMut::new();
    ChunkEncoder::new().encode(4, 1000, 9, 12346, &payload, &mut out);
    assert_eq!(&out[..], &expected[..]);
    let mut out0 = BytesMut::new();
    encode_type0(4, 1000, 9, 12346, &payload, 128, &mut out0);
    assert_eq!(&out0[..], &expected[..]);

    // Byte by byte: nothing comes out until the last byte.
    let mut dec = new_decoder();
    for (i, b) in expected.iter().enumerate() {
        dec.push(&[*b]);
        let m = dec.next_message().unwrap();
        if i + 1 < expected.len() {
            assert_eq!(m, None, "early message at byte {i}");
        } else {
            assert_eq!(m, Some(msg(4, 1000, 9, 12346, &payload)));
        }
    }
}

#[test]
fn type1_header_changes_length_and_type() {
    let mut wire = vec![0x06, 0, 0, 10, 0, 0, 2, 8, 1, 0, 0, 0, 0xA1, 0xA2];
    // fmt 1, csid 6: delta 5, length 3, type 9.
    wire.extend_from_slice(&[0x46, 0, 0, 5, 0, 0, 3, 9, 0xB1, 0xB2, 0xB3]);
    let mut dec = new_decoder();
    dec.push(&wire);
    assert_eq!(
        decode_all(&mut dec),
        vec![msg(6, 10, 8, 1, &[0xA1, 0xA2]), msg(6, 15, 9, 1, &[0xB1, 0xB2, 0xB3])]
    );
}

#[test]
fn type3_new_message_after_type0_reuses_timestamp_as_delta() {
    // Spec 5.3.1.2.4: after a type-0 header, a type-3 header's delta is the type-0 timestamp.
    let wire = [0x05, 0, 0, 40, 0, 0, 1, 18, 1, 0, 0, 0, 0x11, 0xC5, 0x22, 0xC5, 0x33];
    let mut dec = new_decoder();
    dec.push(&wire);
    let got = decode_all(&mut dec);
    assert_eq!(
        got,
        vec![msg(5, 40, 18, 1, &[0x11]), msg(5, 80, 18, 1, &[0x22]), msg(5, 120, 18, 1, &[0x33])]
    );
}

#[test]
fn basic_header_csid_encodings() {
    let cases: [(u32, &[u8]); 6] = [
        (2, &[0x02]),
        (63, &[0x3F]),
        (64, &[0x00, 0x00]),
        (319, &[0x00, 0xFF]),
        (320, &[0x01, 0x00, 0x01]),
        (65_599, &[0x01, 0xFF, 0xFF]),
    ];
    for (csid, basic) in cases {
        let mut out = BytesMut::new();
        encode_type0(csid, 7, 20, 0, &[0x42], 128, &mut out);
        let mut expected = basic.to_vec();
        expected.extend_from_slice(&[0, 0, 7, 0, 0, 1, 20, 0, 0, 0, 0, 0x42]);
        assert_eq!(&out[..], &expected[..], "csid {csid}");
        let mut dec = new_decoder();
        dec.push(&expected);
        assert_eq!(dec.next_message().unwrap(), Some(msg(csid, 7, 20, 0, &[0x42])));
    }
    // The 3-byte form may also carry small ids (64 here).
    let mut dec = new_decoder();
    dec.push(&[0x01, 0x00, 0x00, 0, 0, 1, 0, 0, 1, 8, 0, 0, 0, 0, 0x99]);
    assert_eq!(dec.next_message().unwrap(), Some(msg(64, 1, 8, 0, &[0x99])));
}

#[test]
fn extended_timestamp_repeated_on_type3_continuations() {
    let ts = 0x0100_0000u32;
    let mut expected =
        vec![0x07, 0xFF, 0xFF, 0xFF, 0, 0, 6, 9, 1, 0, 0, 0, 0x01, 0x00, 0x00, 0x00, 1, 2, 3, 4];
    expected.extend_from_slice(&[0xC7, 0x01, 0x00, 0x00, 0x00, 5, 6]);
    let mut out = BytesMut::new();
    encode_type0(7, ts, 9, 1, &[1, 2, 3, 4, 5, 6], 4, &mut out);
    assert_eq!(&out[..], &expected[..]);

    let mut dec = new_decoder();
    dec.set_chunk_size(4).unwrap();
    dec.push(&expected);
    assert_eq!(decode_all(&mut dec), vec![msg(7, ts, 9, 1, &[1, 2, 3, 4, 5, 6])]);

    // Old encoders omit the 4 bytes on continuation chunks: still decoded.
    let mut omitted = expected[..20].to_vec();
    omitted.extend_from_slice(&[0xC7, 5, 6]);
    let mut dec = new_decoder();
    dec.set_chunk_size(4).unwrap();
    dec.push(&omitted);
    assert_eq!(dec.next_message().unwrap(), None, "needs 4 bytes to tell");
    dec.push(&[0x07, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0xEE]);
    assert_eq!(
        decode_all(&mut dec),
        vec![msg(7, ts, 9, 1, &[1, 2, 3, 4, 5, 6]), msg(7, 0, 9, 1, &[0xEE])]
    );
}

#[test]
fn extended_timestamp_on_type3_new_message_gives_delta() {
    // Type 1 with an extended delta, then a type-3 header starting a new message whose 4
    // extra bytes hold its own delta (FFmpeg writes a different one).
    let mut wire = vec![0x08, 0, 0, 100, 0, 0, 1, 9, 1, 0, 0, 0, 0xA0];
    wire.extend_from_slice(&[0x48, 0xFF, 0xFF, 0xFF, 0, 0, 1, 9, 0x01, 0x00, 0x00, 0x00, 0xA1]);
    wire.extend_from_slice(&[0xC8, 0x01, 0x00, 0x00, 0x05, 0xA2]);
    let mut dec = new_decoder();
    dec.push(&wire);
    let got = decode_all(&mut dec);
    let t1 = 100 + 0x0100_0000;
    assert_eq!(
        got,
        vec![
            msg(8, 100, 9, 1, &[0xA0]),
            msg(8, t1, 9, 1, &[0xA1]),
            msg(8, t1 + 0x0100_0005, 9, 1, &[0xA2])
        ]
    );
}

#[test]
fn timestamps_wrap_around() {
    let mut enc = ChunkEncoder::new();
    let mut out = BytesMut::new();
    enc.encode(6, u32::MAX - 10, 8, 1, &[1], &mut out);
    enc.encode(6, u32::MAX - 5, 8, 1, &[2], &mut out);
    let mut dec = new_decoder();
    dec.push(&out);
    // fmt 2 header with delta 0xFFFFFFF0 wraps the timestamp.
    dec.push(&[0x86, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF0, 3]);
    let got = decode_all(&mut dec);
    assert_eq!(got[0].timestamp, u32::MAX - 10);
    assert_eq!(got[1].timestamp, u32::MAX - 5);
    assert_eq!(got[2].timestamp, (u32::MAX - 5).wrapping_add(0xFFFF_FFF0));
}

#[test]
fn encoder_header_choice() {
    let mut enc = ChunkEncoder::new();
    let mut out = BytesMut::new();
    let mut first_byte = |enc: &mut ChunkEncoder, ts, len: usize, type_id, sid| {
        out.clear();
        enc.encode(9, ts, type_id, sid, &vec![0u8; len], &mut out);
        out[0] >> 6
    };
    assert_eq!(first_byte(&mut enc, 100, 10, 9, 1), 0, "first message");
    assert_eq!(first_byte(&mut enc, 100, 10, 9, 1), 2, "delta 0 differs from type-0 timestamp");
    assert_eq!(first_byte(&mut enc, 100, 10, 9, 1), 3, "same delta");
    assert_eq!(first_byte(&mut enc, 140, 10, 9, 1), 2, "delta changed");
    assert_eq!(first_byte(&mut enc, 180, 10, 9, 1), 3, "same delta 40");
    assert_eq!(first_byte(&mut enc, 220, 11, 9, 1), 1, "length changed");
    assert_eq!(first_byte(&mut enc, 260, 11, 8, 1), 1, "type changed");
    assert_eq!(first_byte(&mut enc, 200, 11, 8, 1), 0, "timestamp went backwards");
    assert_eq!(first_byte(&mut enc, 240, 11, 8, 2), 0, "stream id changed");
    enc.reset_headers();
    assert_eq!(first_byte(&mut enc, 240, 11, 8, 2), 0, "after reset");
}

#[test]
fn chunk_size_extremes_round_trip() {
    let payload: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    for size in [1, 2, 127, 128, MAX_CHUNK_SIZE] {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(size).unwrap();
        let mut out = BytesMut::new();
        enc.encode(3, 5, 9, 1, &payload, &mut out);
        enc.encode(3, 10, 9, 1, &payload[..3], &mut out);
        let mut dec = new_decoder();
        dec.set_chunk_size(size).unwrap();
        dec.push(&out);
        assert_eq!(
            decode_all(&mut dec),
            vec![msg(3, 5, 9, 1, &payload), msg(3, 10, 9, 1, &payload[..3])]
        );
    }
}

#[test]
fn invalid_chunk_sizes_rejected() {
    let mut dec = new_decoder();
    assert_eq!(dec.set_chunk_size(0), Err(ChunkError::InvalidChunkSize(0)));
    assert_eq!(dec.set_chunk_size(0x8000_0000), Err(ChunkError::InvalidChunkSize(0x8000_0000)));
    assert_eq!(dec.chunk_size(), DEFAULT_CHUNK_SIZE);
    assert_eq!(dec.set_chunk_size(MAX_CHUNK_SIZE), Ok(()));
    assert_eq!(dec.chunk_size(), MAX_CHUNK_SIZE);
    let mut enc = ChunkEncoder::new();
    assert_eq!(enc.set_chunk_size(0), Err(ChunkError::InvalidChunkSize(0)));
    assert_eq!(enc.set_chunk_size(u32::MAX), Err(ChunkError::InvalidChunkSize(u32::MAX)));
    assert_eq!(enc.chunk_size(), DEFAULT_CHUNK_SIZE);
}

#[test]
fn huge_chunk_size_large_message_in_small_pieces_stays_bounded() {
    let limits = ChunkLimits {
        max_message_size: 1 << 20,
        max_reassembly_bytes: 1 << 20,
        max_chunk_streams: 4,
    };
    let payload: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut wire = BytesMut::new();
    encode_type0(6, 0, 9, 1, &payload, MAX_CHUNK_SIZE, &mut wire);
    assert_eq!(wire.len(), payload.len() + 12, "one chunk");
    let mut dec = ChunkDecoder::new(limits);
    dec.set_chunk_size(MAX_CHUNK_SIZE).unwrap();
    let mut got = None;
    for piece in wire.chunks(1000) {
        dec.push(piece);
        if let Some(m) = dec.next_message().unwrap() {
            got = Some(m);
        }
        // Payload is moved out of the input buffer as it arrives.
        assert_eq!(dec.buffered(), 0);
        assert!(dec.reassembly_bytes() <= payload.len());
    }
    assert_eq!(got, Some(msg(6, 0, 9, 1, &payload)));
    assert_eq!(dec.reassembly_bytes(), 0);
    assert_eq!(dec.bytes_received(), wire.len() as u64);
}

#[test]
fn reassembly_buffer_grows_with_received_bytes() {
    let mut dec = new_decoder();
    dec.set_chunk_size(MAX_CHUNK_SIZE).unwrap();
    // Claims 16 MiB - 1 (over the 8 MiB default limit) -> rejected before allocating.
    dec.push(&[0x06, 0, 0, 0, 0xFF, 0xFF, 0xFF, 9, 1, 0, 0, 0]);
    assert_eq!(
        dec.next_message(),
        Err(ChunkError::MessageTooLarge { size: 0xFF_FFFF, limit: 8 << 20 })
    );
    // Claims 8 MiB, sends 10 bytes: only the bytes received are held.
    let mut dec = new_decoder();
    dec.set_chunk_size(MAX_CHUNK_SIZE).unwrap();
    dec.push(&[0x06, 0, 0, 0, 0x80, 0x00, 0x00, 9, 1, 0, 0, 0]);
    dec.push(&[7; 10]);
    assert_eq!(dec.next_message(), Ok(None));
    assert_eq!(dec.reassembly_bytes(), 10);
}

#[test]
fn reassembly_limit_across_chunk_streams() {
    let limits =
        ChunkLimits { max_message_size: 100, max_reassembly_bytes: 150, max_chunk_streams: 8 };
    let mut dec = ChunkDecoder::new(limits);
    dec.set_chunk_size(2).unwrap();
    dec.push(&[0x04, 0, 0, 0, 0, 0, 100, 9, 1, 0, 0, 0, 1, 2]);
    assert_eq!(dec.next_message(), Ok(None));
    dec.push(&[0x05, 0, 0, 0, 0, 0, 60, 9, 1, 0, 0, 0, 1, 2]);
    assert_eq!(dec.next_message(), Err(ChunkError::ReassemblyLimit { size: 160, limit: 150 }));
    let mut dec = ChunkDecoder::new(limits);
    dec.push(&[0x04, 0, 0, 0, 0, 0, 101, 9, 1, 0, 0, 0]);
    assert_eq!(dec.next_message(), Err(ChunkError::MessageTooLarge { size: 101, limit: 100 }));
}

#[test]
fn too_many_chunk_streams() {
    let limits = ChunkLimits { max_chunk_streams: 3, ..ChunkLimits::default() };
    let mut dec = ChunkDecoder::new(limits);
    for csid in [3u8, 4, 5, 3] {
        dec.push(&[csid, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA]);
        assert!(dec.next_message().unwrap().is_some());
    }
    dec.push(&[6, 0, 0, 0, 0, 0, 1, 8, 1, 0, 0, 0, 0xAA]);
    assert_eq!(dec.next_message(), Err(ChunkError::TooManyChunkStreams(3)));
}

#[test]
fn compressed_header_without_previous() {
    for (byte, fmt) in [(0x83u8, 2u8), (0xC3, 3)] {
        let mut dec = new_decoder();
        dec.push(&[byte, 0, 0, 0]);
        assert_eq!(dec.next_message(), Err(ChunkError::NoPreviousHeader { csid: 3, fmt }));
    }
    // librtmp starts its ping chunk stream with type 1: accepted, stream id 0.
    let mut dec = new_decoder();
    dec.push(&[0x42, 0, 0, 0, 0, 0, 6, 4, 0, 6, 0, 0, 0x0D, 0x0F]);
    assert_eq!(dec.next_message().unwrap(), Some(msg(2, 0, 4, 0, &[0, 6, 0, 0, 0x0D, 0x0F])));
}

#[test]
fn header_change_mid_message_rejected() {
    let mut dec = new_decoder();
    dec.set_chunk_size(2).unwrap();
    dec.push(&[0x04, 0, 0, 0, 0, 0, 4, 9, 1, 0, 0, 0, 1, 2, 0x84, 0, 0, 1]);
    assert_eq!(dec.next_message(), Err(ChunkError::HeaderChangedMidMessage(4)));
}

#[test]
fn abort_discards_partial_message() {
    let mut dec = new_decoder();
    dec.set_chunk_size(2).unwrap();
    dec.push(&[0x04, 0, 0, 9, 0, 0, 4, 9, 1, 0, 0, 0, 1, 2]);
    assert_eq!(dec.next_message(), Ok(None));
    assert_eq!(dec.reassembly_bytes(), 2);
    dec.abort(4);
    assert_eq!(dec.reassembly_bytes(), 0);
    // The next type-3 chunk starts a new 4-byte message (timestamp 9 + 9).
    dec.push(&[0xC4, 5, 6, 0xC4, 7, 8]);
    assert_eq!(decode_all(&mut dec), vec![msg(4, 18, 9, 1, &[5, 6, 7, 8])]);
    dec.abort(99);
}

#[test]
fn zero_length_message() {
    let mut out = BytesMut::new();
    let mut enc = ChunkEncoder::new();
    enc.encode(3, 1, 20, 0, &[], &mut out);
    enc.encode(3, 2, 20, 0, &[], &mut out);
    assert_eq!(&out[..], &[0x03, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 0, 0xC3]);
    let mut dec = new_decoder();
    dec.push(&out);
    assert_eq!(decode_all(&mut dec), vec![msg(3, 1, 20, 0, &[]), msg(3, 2, 20, 0, &[])]);
}

#[test]
fn single_chunk_message_is_not_copied() {
    let mut wire = BytesMut::new();
    encode_type0(6, 0, 8, 1, &[7; 100], 128, &mut wire);
    let mut dec = new_decoder();
    dec.push(&wire);
    let start = dec.buf_ptr_for_test();
    let m = dec.next_message().unwrap().unwrap();
    assert_eq!(m.payload.as_ptr(), start.wrapping_add(12));
}

/// A small frame from a large read is copied out: kept in a stream buffer, a shared slice
/// would pin the whole read allocation.
#[test]
fn small_message_in_a_large_read_is_copied() {
    let mut wire = BytesMut::new();
    encode_type0(6, 0, 8, 1, &[1, 2, 3, 4], 128, &mut wire);
    wire.extend_from_slice(&vec![0xC6; 60_000]);
    let mut dec = new_decoder();
    dec.push(&wire);
    let start = dec.buf_ptr_for_test();
    let end = start.wrapping_add(wire.len());
    let m = dec.next_message().unwrap().unwrap();
    assert_eq!(&m.payload[..], &[1, 2, 3, 4]);
    let p = m.payload.as_ptr();
    assert!(p < start || p >= end, "payload shares the 60 KB read buffer");
}

#[test]
fn encoder_type3_new_message_with_extended_delta() {
    let mut enc = ChunkEncoder::new();
    let mut out = BytesMut::new();
    let big = 0x0100_0000u32;
    enc.encode(5, 0, 9, 1, &[1], &mut out);
    enc.encode(5, big, 9, 1, &[2], &mut out);
    enc.encode(5, 2 * big, 9, 1, &[3], &mut out);
    let mut expected = vec![0x05, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 1];
    expected.extend_from_slice(&[0x85, 0xFF, 0xFF, 0xFF, 0x01, 0, 0, 0, 2]);
    expected.extend_from_slice(&[0xC5, 0x01, 0, 0, 0, 3]);
    assert_eq!(&out[..], &expected[..]);
    let mut dec = new_decoder();
    dec.push(&out);
    let got = decode_all(&mut dec);
    assert_eq!(
        got,
        vec![msg(5, 0, 9, 1, &[1]), msg(5, big, 9, 1, &[2]), msg(5, 2 * big, 9, 1, &[3])]
    );
}
