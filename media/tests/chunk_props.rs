//! Property tests for the RTMP chunk stream codec: encoder -> decoder round trips over random
//! chunk sizes, chunk stream ids, timestamps and split points; random input never panics.

use bytes::BytesMut;
use proptest::prelude::*;
use sluice_media::rtmp::chunk::{
    encode_type0, ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage, MAX_CHUNK_SIZE,
};

fn csid() -> impl Strategy<Value = u32> {
    prop_oneof![
        2u32..=63,
        64u32..=319,
        320u32..=65_599,
        Just(2),
        Just(63),
        Just(64),
        Just(319),
        Just(320),
        Just(65_599)
    ]
}

fn timestamp() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..100_000,
        0xFF_FF00u32..0x100_0100,
        any::<u32>(),
        Just(0xFF_FFFF),
        Just(u32::MAX),
    ]
}

fn chunk_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        1u32..=70_000,
        1u32..=300,
        Just(1),
        Just(128),
        Just(MAX_CHUNK_SIZE),
        Just(MAX_CHUNK_SIZE - 1)
    ]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..600),
        1 => prop::collection::vec(any::<u8>(), 0..5000),
    ]
}

/// A message: (csid, timestamp, type id, stream id, payload).
fn message() -> impl Strategy<Value = (u32, u32, u8, u32, Vec<u8>)> {
    (csid(), timestamp(), any::<u8>(), prop_oneof![Just(0u32), Just(1), any::<u32>()], payload())
}

/// A message stream where messages often share a chunk stream and have steady timestamps, so
/// every header type (0, 1, 2, 3) occurs.
fn sequence() -> impl Strategy<Value = Vec<(u32, u32, u8, u32, Vec<u8>)>> {
    (prop::collection::vec(message(), 1..16), prop::collection::vec(csid(), 1..4), any::<bool>())
        .prop_map(|(mut msgs, csids, steady)| {
            let mut ts = msgs[0].1;
            for (i, m) in msgs.iter_mut().enumerate() {
                if steady {
                    m.0 = csids[i % csids.len()];
                    ts = ts.wrapping_add(if i % 3 == 0 { 40 } else { 0x100_0000 });
                    m.1 = ts;
                    m.2 = 9;
                    m.3 = 1;
                    if i % 2 == 0 {
                        m.4.truncate(100);
                        m.4.resize(100, 0x5A);
                    }
                }
            }
            msgs
        })
}

/// Feed `wire` in pieces cut at `cuts` and collect every message.
fn decode_in_pieces(dec: &mut ChunkDecoder, wire: &[u8], cuts: &[usize]) -> Vec<RawMessage> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    let mut out = Vec::new();
    for pair in points.windows(2) {
        dec.push(&wire[pair[0]..pair[1]]);
        while let Some(m) = dec.next_message().expect("valid stream") {
            out.push(m);
        }
    }
    out
}

fn expected(msgs: &[(u32, u32, u8, u32, Vec<u8>)]) -> Vec<RawMessage> {
    msgs.iter()
        .map(|(csid, ts, t, sid, p)| RawMessage {
            csid: *csid,
            timestamp: *ts,
            type_id: *t,
            stream_id: *sid,
            payload: p.clone().into(),
        })
        .collect()
}

/// Split the output of `encode_type0` into its chunks (header included).
fn split_type0_chunks(
    wire: &[u8],
    csid: u32,
    ts: u32,
    len: usize,
    chunk_size: usize,
) -> Vec<&[u8]> {
    let basic = match csid {
        2..=63 => 1,
        64..=319 => 2,
        _ => 3,
    };
    let ext = if ts >= 0xFF_FFFF { 4 } else { 0 };
    let mut chunks = Vec::new();
    let first = basic + 11 + ext + len.min(chunk_size);
    chunks.push(&wire[..first]);
    let mut at = first;
    let mut left = len - len.min(chunk_size);
    while left > 0 {
        let n = left.min(chunk_size);
        chunks.push(&wire[at..at + basic + ext + n]);
        at += basic + ext + n;
        left -= n;
    }
    assert_eq!(at, wire.len());
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoder_decoder_round_trip(msgs in sequence(), size in chunk_size(), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(size).unwrap();
        let mut wire = BytesMut::new();
        for (csid, ts, t, sid, p) in &msgs {
            enc.encode(*csid, *ts, *t, *sid, p, &mut wire);
        }
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        dec.set_chunk_size(size).unwrap();
        let got = decode_in_pieces(&mut dec, &wire, &cuts);
        prop_assert_eq!(got, expected(&msgs));
        prop_assert_eq!(dec.bytes_received(), wire.len() as u64);
    }

    #[test]
    fn encode_type0_round_trip((csid, ts, t, sid, p) in message(), size in chunk_size(), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let mut wire = BytesMut::new();
        encode_type0(csid, ts, t, sid, &p, size, &mut wire);
        // A decoder that has seen other traffic on the same csid decodes it the same way.
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        dec.set_chunk_size(size).unwrap();
        let mut enc = ChunkEncoder::new();
        enc.set_chunk_size(size).unwrap();
        let mut before = BytesMut::new();
        enc.encode(csid, ts.wrapping_sub(7), t, sid, &[1, 2, 3], &mut before);
        dec.push(&before);
        prop_assert!(dec.next_message().unwrap().is_some());
        let got = decode_in_pieces(&mut dec, &wire, &cuts);
        prop_assert_eq!(got, expected(&[(csid, ts, t, sid, p)]));
    }

    #[test]
    fn interleaved_chunks_round_trip(
        msgs in prop::collection::vec((timestamp(), any::<u8>(), payload()), 1..6),
        size in 1u32..700,
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        // One message per chunk stream, chunks sent round-robin.
        let msgs: Vec<_> = msgs.into_iter().enumerate().map(|(i, (ts, t, p))| (3 + i as u32 * 100, ts, t, 1u32, p)).collect();
        let encoded: Vec<BytesMut> = msgs.iter().map(|(csid, ts, t, sid, p)| {
            let mut w = BytesMut::new();
            encode_type0(*csid, *ts, *t, *sid, p, size, &mut w);
            w
        }).collect();
        let mut queues: Vec<Vec<&[u8]>> = msgs.iter().zip(&encoded).map(|((csid, ts, _, _, p), w)| {
            let mut c = split_type0_chunks(w, *csid, *ts, p.len(), size as usize);
            c.reverse();
            c
        }).collect();
        let mut wire = Vec::new();
        while queues.iter().any(|q| !q.is_empty()) {
            for q in &mut queues {
                if let Some(c) = q.pop() {
                    wire.extend_from_slice(c);
                }
            }
        }
        let mut dec = ChunkDecoder::new(ChunkLimits::default());
        dec.set_chunk_size(size).unwrap();
        let mut got = decode_in_pieces(&mut dec, &wire, &cuts);
        got.sort_by_key(|m| m.csid);
        prop_assert_eq!(got, expected(&msgs));
    }

    #[test]
    fn random_bytes_never_panic(
        data in prop::collection::vec(any::<u8>(), 0..2048),
        size in chunk_size(),
        cut in any::<usize>(),
    ) {
        let limits = ChunkLimits { max_message_size: 4096, max_reassembly_bytes: 8192, max_chunk_streams: 4 };
        let mut dec = ChunkDecoder::new(limits);
        dec.set_chunk_size(size).unwrap();
        let cut = cut % (data.len() + 1);
        for piece in [&data[..cut], &data[cut..]] {
            dec.push(piece);
            loop {
                match dec.next_message() {
                    Ok(Some(m)) => {
                        prop_assert!(m.payload.len() <= 4096);
                        if m.type_id == 1 && m.payload.len() >= 4 {
                            let v = u32::from_be_bytes([m.payload[0], m.payload[1], m.payload[2], m.payload[3]]);
                            if dec.set_chunk_size(v).is_err() {
                                return Ok(());
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                }
                prop_assert!(dec.reassembly_bytes() <= 8192);
            }
        }
        prop_assert!(dec.bytes_received() <= data.len() as u64);
    }
}
