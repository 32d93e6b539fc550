//! Tests of the fMP4 scanner: hand-built boxes (edge cases, hostile sizes), and the real
//! output of Sluice's segmenter fed with the bench's synthetic stream.

use std::time::Duration;

use bytes::BytesMut;
use sluice_media::frame::MediaKind;
use sluice_media::hls::{HlsConfig, PlaylistOptions, Segmenter};

use super::*;
use crate::hls::playlist::parse_media;
use crate::sei::write_sei_nal;
use crate::synth::{StreamShape, Synth};

fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = ((u32::from(version) << 24) | flags).to_be_bytes().to_vec();
    b.extend_from_slice(body);
    bx(kind, &b)
}

fn trak(id: u32, handler: &[u8; 4], entry: &[u8]) -> Vec<u8> {
    let mut tkhd = vec![0u8; 8];
    tkhd.extend_from_slice(&id.to_be_bytes());
    tkhd.extend_from_slice(&[0u8; 68]);
    let mut hdlr = vec![0u8; 4];
    hdlr.extend_from_slice(handler);
    hdlr.extend_from_slice(&[0u8; 13]);
    let mut stsd = 1u32.to_be_bytes().to_vec();
    stsd.extend_from_slice(entry);
    let stbl = bx(b"stbl", &full(b"stsd", 0, 0, &stsd));
    let minf = bx(b"minf", &stbl);
    let mut mdia = full(b"hdlr", 0, 0, &hdlr);
    mdia.extend_from_slice(&minf);
    let mut t = full(b"tkhd", 0, 3, &tkhd);
    t.extend_from_slice(&bx(b"mdia", &mdia));
    bx(b"trak", &t)
}

fn avc1(length_size_minus_one: u8) -> Vec<u8> {
    let mut entry = vec![0u8; 78];
    entry.extend_from_slice(&bx(b"avcC", &[1, 0x42, 0xc0, 0x1f, 0xFC | length_size_minus_one]));
    bx(b"avc1", &entry)
}

fn init(video_id: u32, length_size_minus_one: u8) -> Vec<u8> {
    let mut moov = trak(2, b"soun", &bx(b"mp4a", &[0u8; 28]));
    moov.extend_from_slice(&trak(video_id, b"vide", &avc1(length_size_minus_one)));
    let mut out = bx(b"ftyp", b"iso6\0\0\0\0");
    out.extend_from_slice(&bx(b"moov", &moov));
    out
}

const TRACK: VideoTrack = VideoTrack { track_id: 1, hevc: false, nal_length_size: 4 };

/// A video sample: SEI stamp NAL then a filler slice of `filler` bytes.
fn sample(seq: u64, filler: usize) -> Vec<u8> {
    let mut sei = BytesMut::new();
    write_sei_nal(Stamp { time_us: 1_000_000 + seq, seq }, &mut sei);
    let mut out = (sei.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&sei);
    out.extend_from_slice(&((filler + 1) as u32).to_be_bytes());
    out.push(0x41);
    out.extend(std::iter::repeat_n(0x5A, filler));
    out
}

fn traf(track_id: u32, sizes: &[usize], data_offset: i32) -> Vec<u8> {
    let mut body = full(b"tfhd", 0, 0x02_0000, &track_id.to_be_bytes());
    let mut trun = (sizes.len() as u32).to_be_bytes().to_vec();
    trun.extend_from_slice(&data_offset.to_be_bytes());
    for &s in sizes {
        trun.extend_from_slice(&3000u32.to_be_bytes()); // duration
        trun.extend_from_slice(&(s as u32).to_be_bytes()); // size
    }
    body.extend_from_slice(&full(b"trun", 0, 0x301, &trun));
    bx(b"traf", &body)
}

/// A part: moof (video traf for `video`, audio traf for one 20-byte sample) + mdat, video
/// data first.
fn part(video: &[Vec<u8>]) -> Vec<u8> {
    let sizes: Vec<usize> = video.iter().map(Vec::len).collect();
    let audio = vec![0x21u8; 20];
    let build = |offset: i32| {
        let mut moof = full(b"mfhd", 0, 0, &1u32.to_be_bytes());
        moof.extend_from_slice(&traf(1, &sizes, offset));
        moof.extend_from_slice(&traf(
            2,
            &[audio.len()],
            offset + sizes.iter().sum::<usize>() as i32,
        ));
        bx(b"moof", &moof)
    };
    let moof_len = build(0).len() as i32;
    let mut out = build(moof_len + 8);
    let mut mdat: Vec<u8> = video.concat();
    mdat.extend_from_slice(&audio);
    out.extend_from_slice(&bx(b"mdat", &mdat));
    out
}

fn scan(pieces: &[&[u8]], track: VideoTrack) -> Result<(Vec<u64>, u64), Fmp4Error> {
    let mut s = PartScanner::new(track);
    for p in pieces {
        s.push(p)?;
    }
    s.finish()?;
    Ok((s.stamps.iter().map(|st| st.seq).collect(), s.video_samples))
}

#[test]
fn init_segment_video_track() {
    assert_eq!(
        parse_init(&init(1, 3)).unwrap(),
        VideoTrack { track_id: 1, hevc: false, nal_length_size: 4 }
    );
    assert_eq!(parse_init(&init(7, 1)).unwrap().nal_length_size, 2);
    assert_eq!(parse_init(&init(7, 2)), Err(Fmp4Error::Malformed("NAL length size 3")));
    assert_eq!(parse_init(&bx(b"ftyp", b"x")), Err(Fmp4Error::NoVideo));
    let moov_audio_only = bx(b"moov", &trak(2, b"soun", &bx(b"mp4a", &[0u8; 28])));
    assert_eq!(parse_init(&moov_audio_only), Err(Fmp4Error::NoVideo));
    // Lying sizes are errors, never panics.
    let mut bad = init(1, 3);
    bad[3] = 0xFF;
    assert!(parse_init(&bad).is_err());
    for cut in 0..init(1, 3).len() {
        let _ = parse_init(&init(1, 3)[..cut]);
    }
}

#[test]
fn stamps_found_in_every_split() {
    let video = vec![sample(10, 3000), sample(11, 10), sample(12, 500)];
    let bytes = part(&video);
    assert_eq!(scan(&[&bytes], TRACK).unwrap(), (vec![10, 11, 12], 3));
    for cut in 0..bytes.len() {
        assert_eq!(
            scan(&[&bytes[..cut], &bytes[cut..]], TRACK).unwrap(),
            (vec![10, 11, 12], 3),
            "cut at {cut}"
        );
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(scan(&singles, TRACK).unwrap().0, vec![10, 11, 12]);
    // Another track id: nothing scanned (the audio sample is never taken for video).
    let other = VideoTrack { track_id: 9, ..TRACK };
    assert_eq!(scan(&[&bytes], other).unwrap(), (vec![], 0));
}

#[test]
fn unstamped_and_short_samples() {
    // A sample whose first NAL is a slice, and a 2-byte sample.
    let mut slice_only = 5u32.to_be_bytes().to_vec();
    slice_only.extend_from_slice(&[0x65, 1, 2, 3, 4]);
    let bytes = part(&[slice_only, vec![0, 0], sample(3, 1)]);
    assert_eq!(scan(&[&bytes], TRACK).unwrap(), (vec![3], 3));
    // SEI after a NAL longer than the inspected prefix is not found (bounded inspection).
    let mut late = ((SAMPLE_PREFIX + 10) as u32).to_be_bytes().to_vec();
    late.extend(std::iter::repeat_n(0x41, SAMPLE_PREFIX + 10));
    late.extend_from_slice(&sample(4, 1));
    let bytes = part(&[late]);
    assert_eq!(scan(&[&bytes], TRACK).unwrap(), (vec![], 1));
}

#[test]
fn truncated_and_hostile_parts() {
    let bytes = part(&[sample(1, 100)]);
    assert_eq!(scan(&[&bytes[..bytes.len() - 1]], TRACK), Err(Fmp4Error::Truncated));
    assert_eq!(scan(&[&bytes[..3]], TRACK), Err(Fmp4Error::Truncated));
    // A moof claiming 2 GiB.
    let mut huge = 0x8000_0000u32.to_be_bytes().to_vec();
    huge.extend_from_slice(b"moof");
    assert_eq!(scan(&[&huge], TRACK), Err(Fmp4Error::TooLarge("moof")));
    // A box smaller than its header.
    assert_eq!(
        scan(&[&[0, 0, 0, 4, b'm', b'd', b'a', b't']], TRACK),
        Err(Fmp4Error::Malformed("box size below its header"))
    );
    // A trun announcing more samples than it holds.
    let mut trun = 1_000_000u32.to_be_bytes().to_vec();
    trun.extend_from_slice(&0i32.to_be_bytes());
    let mut traf_body = full(b"tfhd", 0, 0x02_0000, &1u32.to_be_bytes());
    traf_body.extend_from_slice(&full(b"trun", 0, 0x201, &trun));
    let moof = bx(b"moof", &bx(b"traf", &traf_body));
    assert_eq!(
        scan(&[&moof], TRACK),
        Err(Fmp4Error::Malformed("trun shorter than its sample count"))
    );
    // Sample ranges pointing before the data or far past it: counted, no stamp, no panic.
    let mut moof_body = full(b"mfhd", 0, 0, &1u32.to_be_bytes());
    moof_body.extend_from_slice(&traf(1, &[50, 60], i32::MIN));
    let mut weird = bx(b"moof", &moof_body);
    weird.extend_from_slice(&bx(b"mdat", &[0u8; 10]));
    assert!(scan(&[&weird], TRACK).is_err());
    let mut moof_body = full(b"mfhd", 0, 0, &1u32.to_be_bytes());
    moof_body.extend_from_slice(&traf(1, &[50, 60], 0));
    let mut weird = bx(b"moof", &moof_body);
    weird.extend_from_slice(&bx(b"mdat", &[0u8; 10]));
    assert_eq!(scan(&[&weird], TRACK).unwrap(), (vec![], 2));
    // Pseudo-random garbage never panics.
    let mut x = 0x1234_5678u32;
    for len in 0..400 {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        let _ = scan(&[&junk], TRACK);
        let _ = parse_init(&junk);
    }
}

#[test]
fn largesize_and_to_end_boxes() {
    let bytes = part(&[sample(5, 10)]);
    let moof_len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    // A size-0 ("to the end of the part") mdat.
    let mut to_end = bytes.clone();
    to_end[moof_len..moof_len + 4].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(scan(&[&to_end], TRACK).unwrap(), (vec![5], 1));
    // A 64-bit size free box before the part: offsets are moof-relative, so still found.
    let mut with_free = vec![0, 0, 0, 1, b'f', b'r', b'e', b'e'];
    with_free.extend_from_slice(&20u64.to_be_bytes());
    with_free.extend_from_slice(&[0u8; 4]);
    with_free.extend_from_slice(&bytes);
    assert_eq!(scan(&[&with_free], TRACK).unwrap(), (vec![5], 1));
}

/// The bench's synthetic stream through Sluice's real segmenter: the playlist parses, the init
/// names the video track, and every part yields the stamps of exactly its frames, in order.
#[test]
fn sluice_segmenter_output() {
    let shape = StreamShape::new(2_500_000, 30, Duration::from_secs(1), true);
    let synth = Synth::new(shape);
    let mut seg = Segmenter::new(HlsConfig {
        target_duration_ms: 1000,
        part_target_ms: 300,
        ..HlsConfig::default()
    });
    seg.push(&synth.metadata()).unwrap();
    seg.push(&synth.video_sequence_header()).unwrap();
    seg.push(&synth.audio_sequence_header()).unwrap();
    let mut audio = 0u64;
    for frame in 0..100u64 {
        while shape.audio_offset(audio) <= shape.frame_offset(frame) {
            seg.push(&synth.audio_frame(audio)).unwrap();
            audio += 1;
        }
        let msg = synth.video_frame(frame, 1_000_000 + frame);
        assert_eq!(msg.kind, MediaKind::Video);
        seg.push(&msg).unwrap();
    }
    let snap = seg.snapshot();
    let track = parse_init(&snap.current_init().unwrap().bytes).unwrap();
    assert_eq!(track, VideoTrack { track_id: 1, hevc: false, nal_length_size: 4 });
    let playlist = snap.media_playlist(&PlaylistOptions {
        query: "?sid=0011223344556677",
        ..PlaylistOptions::default()
    });
    let pl = parse_media(playlist.as_bytes()).unwrap();
    assert!(pl.parts.len() >= 6, "{playlist}");
    assert_eq!(pl.preload_hint.as_ref().unwrap().key, snap.next_part());
    let mut scanner = PartScanner::new(track);
    let mut seen = Vec::new();
    for p in &pl.parts {
        let part = snap.part(p.key.0, p.key.1).expect("listed part exists");
        assert_eq!(p.independent, part.independent);
        scanner.reset(track);
        for piece in part.bytes.chunks(1000) {
            scanner.push(piece).unwrap();
        }
        scanner.finish().unwrap();
        assert_eq!(scanner.video_samples, scanner.stamps.len() as u64);
        for st in &scanner.stamps {
            assert_eq!(st.time_us, 1_000_000 + st.seq);
            seen.push(st.seq);
        }
    }
    // Consecutive frames, none missing, ending with a recent one.
    assert!(!seen.is_empty());
    assert!(seen.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    assert!(*seen.last().unwrap() >= 90, "{seen:?}");
}
