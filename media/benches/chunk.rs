//! Chunk stream throughput: serialising a 64 KiB video message once with `encode_type0` at the
//! media chunk size (4096), and decoding a stream of such messages.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use sluice_media::rtmp::chunk::{encode_type0, ChunkDecoder, ChunkLimits};
use sluice_media::rtmp::{csid, msg_type};

const CHUNK_SIZE: u32 = 4096;
const MESSAGE_LEN: usize = 64 * 1024;
const MESSAGES: usize = 64;

fn video_payload() -> Vec<u8> {
    (0..MESSAGE_LEN).map(|i| (i * 31 % 251) as u8).collect()
}

fn bench_encode(c: &mut Criterion) {
    let payload = video_payload();
    let mut group = c.benchmark_group("chunk_encode");
    group.throughput(Throughput::Bytes(MESSAGE_LEN as u64));
    group.bench_function("encode_type0_64k_cs4096", |b| {
        let mut out = BytesMut::with_capacity(MESSAGE_LEN + 1024);
        b.iter(|| {
            out.clear();
            encode_type0(
                csid::VIDEO,
                40,
                msg_type::VIDEO,
                1,
                black_box(&payload),
                CHUNK_SIZE,
                &mut out,
            );
            black_box(out.len())
        });
    });
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let payload = video_payload();
    let mut wire = BytesMut::new();
    for i in 0..MESSAGES {
        encode_type0(
            csid::VIDEO,
            i as u32 * 40,
            msg_type::VIDEO,
            1,
            &payload,
            CHUNK_SIZE,
            &mut wire,
        );
    }
    let mut group = c.benchmark_group("chunk_decode");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    for read_size in [16 * 1024, 64 * 1024] {
        group.bench_function(
            format!("decode_{MESSAGES}x64k_cs4096_reads{}k", read_size / 1024),
            |b| {
                b.iter(|| {
                    let mut dec = ChunkDecoder::new(ChunkLimits::default());
                    dec.set_chunk_size(CHUNK_SIZE).unwrap();
                    let mut count = 0;
                    for piece in wire.chunks(read_size) {
                        dec.push(piece);
                        while let Some(m) = dec.next_message().unwrap() {
                            count += m.payload.len();
                        }
                    }
                    assert_eq!(count, MESSAGES * MESSAGE_LEN);
                    black_box(count)
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_encode, bench_decode);
criterion_main!(benches);
