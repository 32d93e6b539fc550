//! The builder on hand-made inputs: timing repairs, timescale changes, 64-bit offsets,
//! fragment forms our writer never produces, and the errors.

use super::tests::{assemble_file, read_file, recording};
use super::*;
use crate::hls::boxes::BoxWriter;

/// A builder with the recording's first init (video 1 at 90 kHz, audio 2 at 48 kHz).
fn builder() -> (Builder, InitInfo) {
    let init = parse_init(&recording().inits[0].1).unwrap();
    let mut b = Builder::new();
    b.push_init(0, &init).unwrap();
    (b, init)
}

fn run(track_id: u32, base_dts: u64, durations: &[u32], data_offset: u64, size: u32) -> Run {
    let samples = durations
        .iter()
        .map(|&duration| SampleInfo { duration, size, sync: true, cts_offset: 0 })
        .collect();
    Run { track_id, base_dts, samples, data_offset }
}

#[test]
fn gaps_lengthen_and_steps_back_shorten_the_previous_sample() {
    let (mut b, _) = builder();
    let runs = vec![
        run(1, 1000, &[100, 100, 100], 0, 10),
        run(1, 1400, &[100, 100], 30, 10), // a gap of 100
        run(1, 1500, &[100, 100], 50, 10), // back before the previous sample's start
        run(1, 1650, &[100], 70, 10),      // back into the previous sample
        run(1, 1750, &[100], 80, 10),      // exactly on time
    ];
    b.push_segment(0, 0, runs).unwrap();
    let layout = b.finish().unwrap();
    let (_, traks) = read_file(&assemble_file(&layout, &[&[0u8; 90]]));
    assert_eq!(traks[0].durations, [100, 100, 200, 100, 1, 100, 49, 100, 100]);
    assert_eq!(traks.len(), 1);
    assert_eq!(layout.pieces(), [Piece { source: 0, offset: 0, len: 90 }]);
}

#[test]
fn a_changed_timescale_is_rescaled() {
    let (mut b, init) = builder();
    let mut other = init.clone();
    other.tracks[1].timescale = 44_100;
    b.push_init(1, &other).unwrap();
    b.push_segment(0, 0, vec![run(2, 0, &[1024, 1024], 0, 4)]).unwrap();
    // 2048 at 48 kHz is 1881.6 at 44.1 kHz: starts a little early, then 1024 @ 44.1 kHz.
    b.push_segment(1, 1, vec![run(2, 1881, &[1024, 1024], 0, 4)]).unwrap();
    let layout = b.finish().unwrap();
    let (_, traks) = read_file(&assemble_file(&layout, &[&[0u8; 8], &[0u8; 8]]));
    assert_eq!(traks[0].durations, [1024, 1023, 1114, 1115]);
    assert_eq!(traks[0].entries, 1);
}

#[test]
fn huge_media_uses_co64_and_a_64_bit_mdat_header() {
    let (mut b, _) = builder();
    let big = 1u32 << 31;
    for source in 0..3 {
        b.push_segment(
            source,
            0,
            vec![run(1, u64::from(source as u32) * 6000, &[3000, 3000], 100, big)],
        )
        .unwrap();
    }
    let layout = b.finish().unwrap();
    let head = layout.head();
    let payload = 6 * u64::from(big);
    assert_eq!(layout.len(), head.len() as u64 + payload);
    assert_eq!(&head[head.len() - 16..head.len() - 8], [0, 0, 0, 1, b'm', b'd', b'a', b't']);
    assert_eq!(head[head.len() - 8..], (payload + 16).to_be_bytes());
    // Offsets past 4 GiB: co64 (the moov alone, without the mdat header).
    let moov_only = &head[..head.len() - 16];
    assert!(moov_only.windows(4).any(|w| w == b"co64"));
    assert!(!moov_only.windows(4).any(|w| w == b"stco"));
    let (_, traks) = read_file(moov_only);
    let offsets: Vec<u64> = traks[0].samples.iter().map(|s| s.0).collect();
    let expected: Vec<u64> = (0..6).map(|i| head.len() as u64 + i * u64::from(big)).collect();
    assert_eq!(offsets, expected);
    assert_eq!(layout.pieces().len(), 3);
    let tail: Vec<Slice> = layout.slices(layout.len() - 10, layout.len() + 10).collect();
    assert_eq!(tail, [Slice::Source { source: 2, offset: 100 + 2 * u64::from(big) - 10, len: 10 }]);
}

/// A fragment in forms our writer never uses: `styp`/`sidx` first, `tfhd` defaults, a trun
/// with only a first-sample flag, a second trun without data offset, a second traf without
/// base (its data follows the first's), a 32-bit `tfdt`, and a 64-bit `mdat` header.
#[test]
fn general_fragment_forms_parse() {
    let mut w = BoxWriter::default();
    let styp = w.open(b"styp");
    w.bytes(b"msdhmsdh");
    w.close(styp);
    let sidx = w.open_full(b"sidx", 0, 0);
    w.zeros(20);
    w.close(sidx);
    let moof_start = w.position();
    let moof = w.open(b"moof");
    let mfhd = w.open_full(b"mfhd", 0, 0);
    w.u32(1);
    w.close(mfhd);
    let traf = w.open(b"traf");
    let tfhd = w.open_full(b"tfhd", 0, 0x02_0000 | 0x08 | 0x10 | 0x20);
    w.u32(1);
    w.u32(3000);
    w.u32(5);
    w.u32(0x0101_0000);
    w.close(tfhd);
    let tfdt = w.open_full(b"tfdt", 0, 0);
    w.u32(9000);
    w.close(tfdt);
    let trun = w.open_full(b"trun", 0, 0x001 | 0x004);
    w.u32(3);
    let offset_field = w.position();
    w.u32(0);
    w.u32(0x0200_0000);
    w.close(trun);
    let trun = w.open_full(b"trun", 0, 0x200);
    w.u32(2);
    w.u32(7);
    w.u32(8);
    w.close(trun);
    w.close(traf);
    let traf = w.open(b"traf");
    let tfhd = w.open_full(b"tfhd", 0, 0);
    w.u32(2);
    w.close(tfhd);
    let tfdt = w.open_full(b"tfdt", 1, 0);
    w.u64(480);
    w.close(tfdt);
    let trun = w.open_full(b"trun", 0, 0x300);
    w.u32(2);
    for (d, s) in [(1024, 4), (1024, 6)] {
        w.u32(d);
        w.u32(s);
    }
    w.close(trun);
    w.close(traf);
    w.close(moof);
    let data_start = w.position() + 16;
    let rel = (data_start - moof_start) as u32;
    w.buf[offset_field..offset_field + 4].copy_from_slice(&rel.to_be_bytes());
    w.u32(1);
    w.bytes(b"mdat");
    w.u64(16 + 40);
    w.zeros(40);

    let init = parse_init(&recording().inits[0].1).unwrap();
    let runs = parse_segment(&w.buf, &init).unwrap();
    let s = |duration, size, sync| SampleInfo { duration, size, sync, cts_offset: 0 };
    let d = data_start as u64;
    assert_eq!(
        runs,
        [
            Run {
                track_id: 1,
                base_dts: 9000,
                samples: vec![s(3000, 5, true), s(3000, 5, false), s(3000, 5, false)],
                data_offset: d,
            },
            Run {
                track_id: 1,
                base_dts: 18_000,
                samples: vec![s(3000, 7, false), s(3000, 8, false)],
                data_offset: d + 15
            },
            Run {
                track_id: 2,
                base_dts: 480,
                samples: vec![s(1024, 4, true), s(1024, 6, true)],
                data_offset: d + 30
            },
        ]
    );
    // One byte short: the box runs past the end; an mdat one byte smaller leaves the audio
    // run's last byte outside.
    let mut short = w.buf.clone();
    short.pop();
    assert!(matches!(parse_segment(&short, &init), Err(Mp4Error::Truncated(_))));
    let n = short.len();
    short[n - 47..n - 39].copy_from_slice(&(16u64 + 39).to_be_bytes());
    assert_eq!(
        parse_segment(&short, &init),
        Err(Mp4Error::Malformed("sample data outside its fragment's mdat"))
    );
}

#[test]
fn refusals_are_errors() {
    let rec = recording();
    let (init_bytes, seg_bytes) = (&rec.inits[0].1, &rec.segments[0].1);
    let init = parse_init(init_bytes).unwrap();
    assert_eq!(init.tracks.len(), 2);
    assert_eq!(
        (init.tracks[0].track_id, init.tracks[0].timescale, &init.tracks[0].handler),
        (1, 90_000, b"vide")
    );
    assert_eq!(&init.tracks[0].sample_entry[4..8], b"avc1");
    assert_eq!(&init.tracks[1].sample_entry[4..8], b"mp4a");

    assert!(parse_init(seg_bytes).is_err());
    assert!(parse_init(b"garbage").is_err());
    assert!(parse_init(&[]).is_err());
    let replace = |from: &[u8], to: &[u8]| {
        let mut b = init_bytes.to_vec();
        let at = b.windows(from.len()).position(|w| w == from).unwrap();
        b[at..at + to.len()].copy_from_slice(to);
        b
    };
    assert_eq!(
        parse_init(&replace(b"avc1", b"encv")),
        Err(Mp4Error::Unsupported("encrypted or restricted track"))
    );
    assert_eq!(
        parse_init(&replace(b"stsd\0\0\0\0\0\0\0\x01", b"stsd\0\0\0\0\0\0\0\x02")),
        Err(Mp4Error::Unsupported("several sample descriptions in one init segment"))
    );
    assert_eq!(parse_segment(init_bytes, &init), Ok(Vec::new()));
    assert!(parse_segment(&seg_bytes[..seg_bytes.len() - 1], &init).is_err());
    let mut audio_only = init.clone();
    audio_only.tracks.remove(0);
    assert_eq!(parse_segment(seg_bytes, &audio_only), Err(Mp4Error::UnknownTrack(1)));

    let mut b = Builder::new();
    b.push_init(0, &init).unwrap();
    assert_eq!(b.push_init(0, &init), Err(Mp4Error::DuplicateInit(0)));
    assert_eq!(b.push_segment(0, 9, vec![run(1, 0, &[1], 0, 1)]), Err(Mp4Error::UnknownInit(9)));
    assert_eq!(b.push_segment(0, 0, vec![run(3, 0, &[1], 0, 1)]), Err(Mp4Error::UnknownTrack(3)));
    let mut swapped = init.clone();
    swapped.tracks[0].handler = *b"soun";
    b.push_init(1, &swapped).unwrap();
    b.push_segment(0, 0, vec![run(1, 0, &[10], 0, 1)]).unwrap();
    assert!(matches!(
        b.push_segment(1, 1, vec![run(1, 10, &[10], 0, 1)]),
        Err(Mp4Error::Unsupported(_))
    ));
    // Failed pushes changed nothing.
    let layout = b.finish().unwrap();
    assert_eq!(layout.pieces(), [Piece { source: 0, offset: 0, len: 1 }]);
    assert_eq!(Builder::new().finish(), Err(Mp4Error::NoSamples));
}

#[test]
fn a_track_that_starts_later_gets_an_empty_edit() {
    let (mut b, _) = builder();
    let mut v = run(1, 900_000, &[3000; 30], 0, 10);
    v.samples[0].cts_offset = 6000;
    b.push_segment(0, 0, vec![v, run(2, 480_000 + 24_000, &[1024; 10], 300, 4)]).unwrap();
    let layout = b.finish().unwrap();
    let (mvhd, traks) = read_file(&assemble_file(&layout, &[&[0u8; 340]]));
    // Video is shown from 10.066 s (its first composition time) to 11 s, audio from 10.5 s:
    // audio waits 434 ms.
    assert_eq!(traks[0].elst, [(933, 6000)]);
    assert_eq!(traks[1].elst, [(434, -1), (213, 0)]);
    assert_eq!(mvhd, 933);
}
