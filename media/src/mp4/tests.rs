//! The MP4 builder on real segmenter output: two periods (1280x720, then 640x360 with a new
//! init segment, after a one-second gap) of H.264 with composition offsets and AAC, several
//! segments and parts each. The assembled file is read back box by box.

use std::sync::OnceLock;

use bytes::Bytes;
use proptest::prelude::*;

use super::reader::{BoxRef, Boxes, Reader};
use super::*;
use crate::codec::test_samples::X264_720P30;
use crate::frame::{MediaKind, MediaMessage};
use crate::hls::{HlsConfig, Segmenter};

/// `avcC` of `ffmpeg -f lavfi -i testsrc2=size=640x360:rate=30 -c:v libx264 -f flv`.
const X264_360P: [u8; 47] = [
    0x01, 0x64, 0x00, 0x1e, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0,
    0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x16,
    0x2d, 0x96, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];
/// AAC-LC, 48 kHz, stereo.
const AAC_ASC: [u8; 2] = [0x11, 0x90];

fn msg(kind: MediaKind, timestamp: u32, payload: Vec<u8>) -> MediaMessage {
    MediaMessage { kind, timestamp, payload: Bytes::from(payload) }
}

/// Synthetic FLV messages of one publish: 30 fps video (a keyframe a second, composition
/// offsets of 33/100/0 ms) and 48 kHz AAC, interleaved by timestamp.
fn period(start_ms: u32, frames: u32, avcc: &[u8]) -> Vec<MediaMessage> {
    period_of(start_ms, frames, Some(avcc), true)
}

/// [`period`] with video (when `avcc` is given) and/or audio, for `frames` thirtieths of a
/// second.
fn period_of(start_ms: u32, frames: u32, avcc: Option<&[u8]>, audio: bool) -> Vec<MediaMessage> {
    let mut out = Vec::new();
    if let Some(avcc) = avcc {
        out.push(msg(MediaKind::Video, start_ms, [&[0x17, 0, 0, 0, 0][..], avcc].concat()));
    }
    if audio {
        out.push(msg(MediaKind::Audio, start_ms, [&[0xAF, 0][..], &AAC_ASC].concat()));
    }
    let mut media = Vec::new();
    for n in (0..frames).filter(|_| avcc.is_some()) {
        let ts = start_ms + (n * 1000 + 15) / 30;
        let key = n % 30 == 0;
        let cts: i32 = [33, 100, 0][n as usize % 3];
        let c = cts.to_be_bytes();
        let size = 300 + (n as usize * 37) % 500;
        let mut p = vec![if key { 0x17 } else { 0x27 }, 1, c[1], c[2], c[3]];
        p.extend_from_slice(&(size as u32).to_be_bytes());
        p.push(if key { 0x65 } else { 0x41 });
        p.extend_from_slice(&(start_ms + n).to_be_bytes());
        p.resize(9 + size, (n % 251) as u8);
        media.push((ts, 0, msg(MediaKind::Video, ts, p)));
    }
    let end = start_ms + frames * 1000 / 30;
    for k in (0u32..).take_while(|_| audio) {
        let ts = start_ms + ((u64::from(k) * 1024 * 1000 + 24_000) / 48_000) as u32;
        if ts >= end {
            break;
        }
        let mut p = vec![0xAF, 1, 0x21];
        p.extend_from_slice(&k.to_be_bytes());
        p.resize(2 + 200 + k as usize % 50, 0x5A);
        media.push((ts, 1, msg(MediaKind::Audio, ts, p)));
    }
    media.sort_by_key(|(ts, kind, _)| (*ts, *kind));
    out.extend(media.into_iter().map(|(_, _, m)| m));
    out
}

/// What a recording holds and what was fed to make it.
pub(super) struct Recording {
    /// (id, bytes) of every init segment.
    pub inits: Vec<(u32, Bytes)>,
    /// (init id, bytes) of every segment, in order.
    pub segments: Vec<(u32, Bytes)>,
    /// Coded frames fed, in decode order.
    pub video: Vec<Bytes>,
    pub video_keys: Vec<bool>,
    /// Composition offsets fed, 90 kHz.
    pub video_cts: Vec<i32>,
    pub audio: Vec<Bytes>,
}

/// Segment `periods` (each followed by the end of the stream) into a recording.
pub(super) fn record(periods: &[Vec<MediaMessage>]) -> Recording {
    let config = HlsConfig { window_segments: 10_000, ..HlsConfig::default() };
    let mut seg = Segmenter::new(config);
    let mut rec = Recording {
        inits: Vec::new(),
        segments: Vec::new(),
        video: Vec::new(),
        video_keys: Vec::new(),
        video_cts: Vec::new(),
        audio: Vec::new(),
    };
    for msgs in periods {
        for m in msgs {
            seg.push(m).unwrap();
            let p = &m.payload;
            match m.kind {
                MediaKind::Video if p[1] == 1 => {
                    rec.video.push(p.slice(5..));
                    rec.video_keys.push(p[0] >> 4 == 1);
                    let cts = i32::from_be_bytes([0, p[2], p[3], p[4]]) << 8 >> 8;
                    rec.video_cts.push(cts * 90);
                }
                MediaKind::Audio if p[1] == 1 => rec.audio.push(p.slice(2..)),
                _ => {}
            }
        }
        seg.end_of_stream();
    }
    assert_eq!(seg.dropped_samples(), 0);
    let snap = seg.snapshot();
    assert!(snap.open_segment().is_none());
    rec.inits = snap.inits().iter().map(|i| (i.id, i.bytes.clone())).collect();
    rec.segments = snap.segments().iter().map(|s| (s.init_id, s.to_bytes())).collect();
    rec
}

/// Two periods: 4 s at 720p from 0, then 3 s at 360p from 5 s.
pub(super) fn recording() -> &'static Recording {
    static REC: OnceLock<Recording> = OnceLock::new();
    REC.get_or_init(|| record(&[period(0, 120, &X264_720P30), period(5000, 90, &X264_360P)]))
}

pub(super) struct Assembled {
    pub layout: Layout,
    pub runs: Vec<Vec<Run>>,
    pub file: Vec<u8>,
}

pub(super) fn assemble(rec: &Recording) -> Assembled {
    let mut b = Builder::new();
    let mut inits = Vec::new();
    for (id, bytes) in &rec.inits {
        let info = parse_init(bytes).unwrap();
        b.push_init(*id, &info).unwrap();
        inits.push((*id, info));
    }
    let mut all = Vec::new();
    for (i, (init_id, bytes)) in rec.segments.iter().enumerate() {
        let init = &inits.iter().find(|(id, _)| id == init_id).unwrap().1;
        let runs = parse_segment(bytes, init).unwrap();
        b.push_segment(i, *init_id, runs.clone()).unwrap();
        all.push(runs);
    }
    let layout = b.finish().unwrap();
    let sources: Vec<&[u8]> = rec.segments.iter().map(|s| &s.1[..]).collect();
    let file = assemble_file(&layout, &sources);
    Assembled { layout, runs: all, file }
}

pub(super) fn assemble_file(layout: &Layout, sources: &[&[u8]]) -> Vec<u8> {
    let mut file = layout.head().to_vec();
    for p in layout.pieces() {
        file.extend_from_slice(&sources[p.source][p.offset as usize..(p.offset + p.len) as usize]);
    }
    file
}

/// A track of the output, as read back.
#[derive(Debug, Default)]
pub(super) struct TrakView {
    pub id: u32,
    pub handler: [u8; 4],
    pub timescale: u32,
    pub mdhd_duration: u64,
    pub tkhd_duration: u64,
    pub entries: u32,
    pub elst: Vec<(u64, i64)>,
    pub durations: Vec<u32>,
    pub cts: Vec<i32>,
    pub stss: Option<Vec<u32>>,
    pub sizes: Vec<u32>,
    /// (sample offset in the file, stsd index) of every sample.
    pub samples: Vec<(u64, u32)>,
}

fn child<'a>(b: &BoxRef<'a>, kind: &[u8; 4]) -> Option<BoxRef<'a>> {
    Boxes::children(b).map(Result::unwrap).find(|c| &c.kind == kind)
}

fn table(b: &BoxRef<'_>, fields: usize) -> Vec<Vec<u64>> {
    let mut r = Reader::new(b.body, "test");
    let (version, _) = r.full_header().unwrap();
    let n = r.u32().unwrap();
    (0..n)
        .map(|_| {
            (0..fields)
                .map(|_| {
                    if version == 1 && &b.kind == b"elst" {
                        r.u64()
                    } else {
                        r.u32().map(u64::from)
                    }
                })
                .collect::<Result<_, _>>()
                .unwrap()
        })
        .collect()
}

/// (mvhd duration, tracks) of an assembled file.
pub(super) fn read_file(file: &[u8]) -> (u64, Vec<TrakView>) {
    let top: Vec<BoxRef> = Boxes::new(file, 0).map(Result::unwrap).collect();
    let kinds: Vec<&[u8; 4]> = top.iter().map(|b| &b.kind).collect();
    assert_eq!(kinds[..2], [b"ftyp", b"moov"]);
    assert!(kinds.len() == 2 || kinds[2..] == [b"mdat"], "{kinds:?}");
    let moov = &top[1];
    assert!(child(moov, b"mvex").is_none());
    let mut r = Reader::new(child(moov, b"mvhd").unwrap().body, "mvhd");
    let (v, _) = r.full_header().unwrap();
    r.skip(if v == 1 { 16 } else { 8 }).unwrap();
    assert_eq!(r.u32().unwrap(), 1000);
    let mvhd_duration = r.time(v).unwrap();
    let mut traks = Vec::new();
    for trak in Boxes::children(moov).map(Result::unwrap).filter(|b| &b.kind == b"trak") {
        let mut t = TrakView::default();
        let mut r = Reader::new(child(&trak, b"tkhd").unwrap().body, "tkhd");
        let (v, _) = r.full_header().unwrap();
        r.skip(if v == 1 { 16 } else { 8 }).unwrap();
        t.id = r.u32().unwrap();
        r.u32().unwrap();
        t.tkhd_duration = r.time(v).unwrap();
        if let Some(edts) = child(&trak, b"edts") {
            let elst = table(&child(&edts, b"elst").unwrap(), 3);
            let v1 = child(&edts, b"elst").unwrap().body[0] == 1;
            t.elst = elst
                .iter()
                .map(|e| (e[0], if v1 { e[1] as i64 } else { i64::from(e[1] as u32 as i32) }))
                .collect();
        }
        let mdia = child(&trak, b"mdia").unwrap();
        let mut r = Reader::new(child(&mdia, b"mdhd").unwrap().body, "mdhd");
        let (v, _) = r.full_header().unwrap();
        r.skip(if v == 1 { 16 } else { 8 }).unwrap();
        t.timescale = r.u32().unwrap();
        t.mdhd_duration = r.time(v).unwrap();
        t.handler.copy_from_slice(&child(&mdia, b"hdlr").unwrap().body[8..12]);
        let stbl = child(&child(&mdia, b"minf").unwrap(), b"stbl").unwrap();
        t.entries =
            u32::from_be_bytes(child(&stbl, b"stsd").unwrap().body[4..8].try_into().unwrap());
        for e in table(&child(&stbl, b"stts").unwrap(), 2) {
            t.durations.extend(std::iter::repeat_n(e[1] as u32, e[0] as usize));
        }
        match child(&stbl, b"ctts") {
            Some(ctts) => {
                for e in table(&ctts, 2) {
                    t.cts.extend(std::iter::repeat_n(e[1] as u32 as i32, e[0] as usize));
                }
            }
            None => t.cts = vec![0; t.durations.len()],
        }
        t.stss =
            child(&stbl, b"stss").map(|b| table(&b, 1).into_iter().map(|e| e[0] as u32).collect());
        let stsz = child(&stbl, b"stsz").unwrap();
        let mut r = Reader::new(stsz.body, "stsz");
        r.full_header().unwrap();
        let (size, count) = (r.u32().unwrap(), r.u32().unwrap());
        t.sizes = (0..count).map(|_| if size == 0 { r.u32().unwrap() } else { size }).collect();
        let offsets: Vec<u64> = match child(&stbl, b"stco") {
            Some(b) => table(&b, 1).into_iter().map(|e| e[0]).collect(),
            None => {
                let b = child(&stbl, b"co64").unwrap();
                let mut r = Reader::new(b.body, "co64");
                r.full_header().unwrap();
                (0..r.u32().unwrap()).map(|_| r.u64().unwrap()).collect()
            }
        };
        let stsc = table(&child(&stbl, b"stsc").unwrap(), 3);
        let mut sample = 0usize;
        for (c, offset) in offsets.iter().enumerate() {
            let e = stsc.iter().rev().find(|e| e[0] as usize <= c + 1).unwrap();
            let mut at = *offset;
            for _ in 0..e[1] {
                t.samples.push((at, e[2] as u32));
                at += u64::from(t.sizes[sample]);
                sample += 1;
            }
        }
        assert_eq!(t.samples.len(), t.sizes.len());
        assert_eq!(t.durations.len(), t.sizes.len());
        assert_eq!(t.cts.len(), t.sizes.len());
        traks.push(t);
    }
    (mvhd_duration, traks)
}

/// (first decode time, end) of a track over all runs.
fn span(runs: &[Vec<Run>], track: u32) -> (u64, u64) {
    let runs: Vec<&Run> = runs.iter().flatten().filter(|r| r.track_id == track).collect();
    let (first, last) = (runs[0].base_dts, runs[runs.len() - 1]);
    (first, last.base_dts + last.samples.iter().map(|s| u64::from(s.duration)).sum::<u64>())
}

#[test]
fn two_periods_make_one_file_with_every_sample() {
    let rec = recording();
    assert_eq!(rec.inits.len(), 2);
    assert!(rec.segments.len() >= 4);
    let a = assemble(rec);
    assert_eq!(a.layout.len(), a.file.len() as u64);
    let (mvhd_duration, traks) = read_file(&a.file);
    assert_eq!(
        traks.iter().map(|t| (t.id, &t.handler)).collect::<Vec<_>>(),
        [(1, b"vide"), (2, b"soun")]
    );
    let (v, au) = (&traks[0], &traks[1]);
    assert_eq!((v.timescale, au.timescale), (90_000, 48_000));

    // Every sample, in order, with its own bytes at its offset.
    for (t, fed) in [(v, &rec.video), (au, &rec.audio)] {
        assert_eq!(t.samples.len(), fed.len(), "track {}", t.id);
        for (i, ((at, _), data)) in t.samples.iter().zip(fed.iter()).enumerate() {
            let at = *at as usize;
            assert_eq!(&a.file[at..at + data.len()], &data[..], "track {} sample {i}", t.id);
            assert_eq!(t.sizes[i] as usize, data.len());
        }
    }
    // The second period's video uses a second sample entry; audio did not change.
    assert_eq!((v.entries, au.entries), (2, 1));
    let first_period = 120;
    assert!(v.samples[..first_period].iter().all(|s| s.1 == 1));
    assert!(v.samples[first_period..].iter().all(|s| s.1 == 2));
    assert!(au.samples.iter().all(|s| s.1 == 1));
    // Keyframes and composition offsets as fed.
    let keys: Vec<u32> = (1..).zip(&rec.video_keys).filter(|(_, k)| **k).map(|(i, _)| i).collect();
    assert_eq!(v.stss.as_ref(), Some(&keys));
    assert_eq!(au.stss, None);
    assert_eq!(v.cts, rec.video_cts);

    // Durations fill the timeline from the first sample to the end of the last (the gap
    // between the periods lengthens the last sample before it).
    for t in [v, au] {
        let (first, end) = span(&a.runs, t.id);
        let sum: u64 = t.durations.iter().map(|&d| u64::from(d)).sum();
        assert_eq!(sum, end - first, "track {}", t.id);
        assert_eq!(t.mdhd_duration, sum);
        assert!(t.durations.iter().all(|&d| d > 0));
    }
    assert!(v.durations[first_period - 1] > 90_000, "{:?}", &v.durations[115..125]);
    // Both start at decode time 0; video is presented from its first composition time,
    // 33 ms later, the same as in the source, until the end of the frame shown last (frames
    // are shown up to 100 ms after their decode time).
    assert_eq!(span(&a.runs, 1).0, 0);
    assert_eq!(span(&a.runs, 2).0, 0);
    let mut dts_end = 0;
    let shown_end = v
        .durations
        .iter()
        .zip(&v.cts)
        .map(|(&d, &c)| {
            dts_end += u64::from(d);
            dts_end + c as u64
        })
        .max()
        .unwrap();
    assert!(shown_end > v.mdhd_duration);
    let shown = ((shown_end - 2970) * 1000 + 45_000) / 90_000;
    assert_eq!(v.elst, [(33, -1), (shown, 2970)]);
    assert!(au.elst.is_empty());
    assert_eq!(v.tkhd_duration, 33 + shown);
    assert_eq!(au.tkhd_duration, (au.mdhd_duration * 1000).div_ceil(48_000));
    assert_eq!(mvhd_duration, v.tkhd_duration.max(au.tkhd_duration));
    assert_eq!(a.layout.duration_s(), mvhd_duration as f64 / 1000.0);
    assert!((a.layout.duration_s() - 8.0).abs() < 0.1, "{}", a.layout.duration_s());

    // One piece per fragment (its mdat payload), mdat header sized for them.
    let frags: usize =
        rec.segments.iter().map(|s| s.1.windows(4).filter(|w| w == b"moof").count()).sum();
    assert_eq!(a.layout.pieces().len(), frags);
    let head = a.layout.head();
    let mdat_len = a.file.len() - head.len() + 8;
    assert_eq!(&head[head.len() - 8..], [&(mdat_len as u32).to_be_bytes()[..], b"mdat"].concat());
    assert_eq!(&head[4..12], b"ftypisom");
}

#[test]
fn layout_round_trips_and_slices_stream_the_file() {
    let a = assemble(recording());
    assert_eq!(Layout::decode(&a.layout.encode()).unwrap(), a.layout);
    let whole: Vec<Slice> = a.layout.slices(0, u64::MAX).collect();
    assert_eq!(whole.len(), 1 + a.layout.pieces().len());
    // Deterministic: the same inputs give the same bytes.
    assert_eq!(assemble(recording()).file, a.file);
}

fn assembled() -> &'static Assembled {
    static A: OnceLock<Assembled> = OnceLock::new();
    A.get_or_init(|| assemble(recording()))
}

fn mutate(bytes: &[u8], flips: &[(prop::sample::Index, u8)], cut: &prop::sample::Index) -> Vec<u8> {
    let mut b = bytes.to_vec();
    for (i, x) in flips {
        let at = i.index(b.len());
        b[at] ^= x | 1;
    }
    b.truncate(b.len() - cut.index(b.len() / 4 + 1));
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn slices_are_the_file_bytes(a in any::<prop::sample::Index>(), b in any::<prop::sample::Index>()) {
        let asm = assembled();
        let rec = recording();
        let n = asm.file.len() + 1;
        let (mut s, mut e) = (a.index(n), b.index(n));
        if s > e {
            std::mem::swap(&mut s, &mut e);
        }
        let mut out = Vec::new();
        for slice in asm.layout.slices(s as u64, e as u64) {
            match slice {
                Slice::Head(r) => out.extend_from_slice(&asm.layout.head()[r]),
                Slice::Source { source, offset, len } => {
                    prop_assert!(len > 0);
                    out.extend_from_slice(&rec.segments[source].1[offset as usize..(offset + len) as usize]);
                }
            }
        }
        prop_assert_eq!(&out[..], &asm.file[s..e]);
    }

    /// Bit flips and truncation of a real init, segment or stored layout: an error or a
    /// result, never a panic (and a parsed segment still builds or fails cleanly).
    #[test]
    fn corrupted_inputs_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        which in 0..3u8,
        seg in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let rec = recording();
        let init = parse_init(&rec.inits[0].1).unwrap();
        match which {
            0 => {
                if let Ok(info) = parse_init(&mutate(&rec.inits[0].1, &flips, &cut)) {
                    let mut b = Builder::new();
                    b.push_init(0, &info).unwrap();
                    let runs = parse_segment(&rec.segments[0].1, &info).unwrap_or_default();
                    let _ = b.push_segment(0, 0, runs);
                    let _ = b.finish();
                }
            }
            1 => {
                let (init_id, bytes) = &rec.segments[seg.index(rec.segments.len())];
                let init = if *init_id == rec.inits[0].0 { init } else { parse_init(&rec.inits[1].1).unwrap() };
                if let Ok(runs) = parse_segment(&mutate(bytes, &flips, &cut), &init) {
                    let mut b = Builder::new();
                    b.push_init(*init_id, &init).unwrap();
                    if b.push_segment(0, *init_id, runs).is_ok() {
                        let _ = b.finish();
                    }
                }
            }
            _ => {
                let stored = assembled().layout.encode();
                if let Ok(l) = Layout::decode(&mutate(&stored, &flips, &cut)) {
                    let _ = l.slices(0, u64::MAX).count();
                }
            }
        }
    }
}

#[test]
fn audio_only_and_video_only_recordings() {
    for (video, audio) in [(false, true), (true, false)] {
        let avcc = video.then_some(&X264_720P30[..]);
        let rec = record(&[period_of(1000, 75, avcc, audio)]);
        let a = assemble(&rec);
        let (_, traks) = read_file(&a.file);
        assert_eq!(traks.len(), 1);
        let t = &traks[0];
        let fed = if video { &rec.video } else { &rec.audio };
        assert!(!fed.is_empty());
        assert_eq!(t.handler, if video { *b"vide" } else { *b"soun" });
        assert_eq!(t.samples.len(), fed.len());
        for ((at, _), data) in t.samples.iter().zip(fed) {
            assert_eq!(&a.file[*at as usize..*at as usize + data.len()], &data[..]);
        }
        // Alone, each track starts the movie at its first composition time.
        let media_time = if video { 2970 } else { 0 };
        assert_eq!(t.elst.first().map_or(0, |e| e.1), media_time);
        assert!(t.elst.iter().all(|e| e.1 >= 0));
        assert!((a.layout.duration_s() - 2.5).abs() < 0.1, "{}", a.layout.duration_s());
    }
}
