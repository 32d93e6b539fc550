//! Shared helpers of the HLS tests: synthetic FLV tag bodies, a stream generator, a minimal
//! fragment parser and a playlist checker.
#![allow(dead_code)]

use bytes::Bytes;
use sluice_media::frame::{MediaKind, MediaMessage};
use sluice_media::hls::{HlsConfig, HlsSnapshot, Segmenter, Update};

/// AVC sequence header body from ffmpeg/x264, 1280x720, 30 fps, High@3.1.
pub const AVC_RECORD: [u8; 47] = [
    0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
    0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
    0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
];

/// HEVCDecoderConfigurationRecord from ffmpeg/x265, 1280x720, Main@3.1.
pub const HEVC_RECORD: [u8; 112] = [
    0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5d, 0xf0, 0x00, 0xfc,
    0xfd, 0xf8, 0xf8, 0x00, 0x00, 0x0f, 0x03, 0x20, 0x00, 0x01, 0x00, 0x18, 0x40, 0x01, 0x0c, 0x01,
    0xff, 0xff, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00,
    0x5d, 0x95, 0x98, 0x09, 0x21, 0x00, 0x01, 0x00, 0x2b, 0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00,
    0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00, 0x03, 0x00, 0x5d, 0xa0, 0x02, 0x80, 0x80, 0x2d,
    0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00,
    0x03, 0x00, 0x3c, 0x10, 0x22, 0x00, 0x01, 0x00, 0x07, 0x44, 0x01, 0xc1, 0x72, 0xb4, 0x62, 0x40,
];

/// AudioSpecificConfig: AAC-LC, 48 kHz, stereo.
pub const AAC_ASC: [u8; 2] = [0x11, 0x90];

pub fn msg(kind: MediaKind, timestamp: u32, payload: Vec<u8>) -> MediaMessage {
    MediaMessage { kind, timestamp, payload: Bytes::from(payload) }
}

pub fn avc_seq(ts: u32, record: &[u8]) -> MediaMessage {
    let mut p = vec![0x17, 0x00, 0, 0, 0];
    p.extend_from_slice(record);
    msg(MediaKind::Video, ts, p)
}

/// A coded AVC frame: one length-prefixed NAL unit of `size` bytes tagged with its timestamp.
pub fn avc_frame(ts: u32, key: bool, cts_ms: i32, size: usize) -> MediaMessage {
    let c = cts_ms.to_be_bytes();
    let mut p = vec![if key { 0x17 } else { 0x27 }, 0x01, c[1], c[2], c[3]];
    p.extend_from_slice(&(size as u32).to_be_bytes());
    p.push(if key { 0x65 } else { 0x41 });
    p.extend_from_slice(&ts.to_be_bytes());
    p.resize(5 + 4 + size, 0xAB);
    msg(MediaKind::Video, ts, p)
}

pub fn hevc_seq(ts: u32) -> MediaMessage {
    let mut p = vec![0x90, b'h', b'v', b'c', b'1'];
    p.extend_from_slice(&HEVC_RECORD);
    msg(MediaKind::Video, ts, p)
}

pub fn hevc_frame(ts: u32, key: bool, size: usize) -> MediaMessage {
    let mut p = vec![if key { 0x91 } else { 0xA1 }, b'h', b'v', b'c', b'1', 0, 0, 0];
    p.extend_from_slice(&(size as u32).to_be_bytes());
    p.resize(8 + 4 + size, 0x26);
    msg(MediaKind::Video, ts, p)
}

pub fn aac_seq(ts: u32) -> MediaMessage {
    let mut p = vec![0xAF, 0x00];
    p.extend_from_slice(&AAC_ASC);
    msg(MediaKind::Audio, ts, p)
}

pub fn aac_frame(ts: u32, size: usize) -> MediaMessage {
    let mut p = vec![0xAF, 0x01, 0x21];
    p.resize(2 + size, 0x5A);
    msg(MediaKind::Audio, ts, p)
}

/// A synthetic publish: 30 fps video (keyframe every `gop` frames, IBBP-like composition
/// offsets), optional 48 kHz AAC, interleaved by timestamp like an FLV muxer would, starting
/// at `start_ms`, for `frames` video frames.
#[derive(Debug, Clone)]
pub struct Stream {
    pub start_ms: u32,
    pub frames: u32,
    pub gop: u32,
    pub audio: bool,
    pub video: bool,
    pub fps: u32,
}

impl Default for Stream {
    fn default() -> Self {
        Stream { start_ms: 0, frames: 300, gop: 60, audio: true, video: true, fps: 30 }
    }
}

impl Stream {
    pub fn messages(&self) -> Vec<MediaMessage> {
        let mut out = Vec::new();
        if self.video {
            out.push(avc_seq(self.start_ms, &AVC_RECORD));
        }
        if self.audio {
            out.push(aac_seq(self.start_ms));
        }
        let mut media: Vec<(u32, u8, MediaMessage)> = Vec::new();
        let duration_ms = self.frames * 1000 / self.fps;
        if self.video {
            for n in 0..self.frames {
                let ts = self.start_ms + (n * 1000 + self.fps / 2) / self.fps;
                let key = n % self.gop == 0;
                // Decode order I P B B P B B ...: P frames shown 3 frames later, B frames
                // shown in between (offsets in ms, as FLV carries them).
                let frame_ms = 1000 / self.fps as i32;
                let cts = match n % 3 {
                    0 => frame_ms,
                    1 => 3 * frame_ms,
                    _ => 0,
                };
                media.push((ts, 0, avc_frame(ts, key, cts, 2000 + (n as usize % 7) * 100)));
            }
        }
        if self.audio {
            let mut k = 0u64;
            loop {
                let ts = self.start_ms as u64 + (k * 1024 * 1000 + 24_000) / 48_000;
                if ts >= (self.start_ms + duration_ms) as u64 {
                    break;
                }
                media.push((ts as u32, 1, aac_frame(ts as u32, 300)));
                k += 1;
            }
        }
        media.sort_by_key(|(ts, kind, _)| (*ts, *kind));
        out.extend(media.into_iter().map(|(_, _, m)| m));
        out
    }
}

/// Push everything; panic on error; return the merged update.
pub fn feed(seg: &mut Segmenter, msgs: &[MediaMessage]) -> Update {
    let mut total = Update::default();
    for m in msgs {
        let u = seg.push(m).unwrap();
        total.init |= u.init;
        total.parts += u.parts;
        total.segments += u.segments;
    }
    total
}

pub fn segmented(stream: &Stream, config: HlsConfig) -> (Segmenter, HlsSnapshot) {
    let mut seg = Segmenter::new(config);
    feed(&mut seg, &stream.messages());
    let snap = seg.snapshot();
    (seg, snap)
}

/// One `traf` of a fragment, as parsed back.
#[derive(Debug, Clone, PartialEq)]
pub struct Traf {
    pub track_id: u32,
    pub tfdt: u64,
    pub trun_version: u8,
    /// (duration, size, flags, composition offset)
    pub samples: Vec<(u32, u32, u32, i32)>,
    pub data_offset: i32,
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Parse a part: one `moof`+`mdat` fragment per track, back to back. Returns (the first
/// fragment's mfhd sequence, the trafs in order, total mdat payload length). Each fragment
/// has one traf whose data offset points just past its own mdat header, and the sequence
/// numbers of a part's fragments are consecutive.
pub fn parse_fragment(b: &[u8]) -> (u32, Vec<Traf>, usize) {
    let mut at = 0;
    let mut first_seq = None;
    let mut trafs = Vec::new();
    let mut payload = 0;
    while at < b.len() {
        let moof_len = be32(b, at) as usize;
        let mdat_len = be32(b, at + moof_len) as usize;
        let frag = &b[at..at + moof_len + mdat_len];
        let (seq, mut t, len) = parse_one_fragment(frag);
        assert_eq!(t.len(), 1, "one track per fragment");
        assert_eq!(t[0].data_offset as usize, moof_len + 8, "data offset into its own mdat");
        let first = *first_seq.get_or_insert(seq);
        assert_eq!(seq, first + trafs.len() as u32, "consecutive sequence numbers");
        trafs.append(&mut t);
        payload += len;
        at += frag.len();
    }
    (first_seq.unwrap_or(0), trafs, payload)
}

fn parse_one_fragment(b: &[u8]) -> (u32, Vec<Traf>, usize) {
    let moof_len = be32(b, 0) as usize;
    assert_eq!(&b[4..8], b"moof");
    assert_eq!(&b[moof_len + 4..moof_len + 8], b"mdat");
    let mdat_len = be32(b, moof_len) as usize;
    assert_eq!(moof_len + mdat_len, b.len(), "fragment length");
    let mut pos = 8;
    let mut seq = 0;
    let mut trafs = Vec::new();
    while pos < moof_len {
        let size = be32(b, pos) as usize;
        let kind = &b[pos + 4..pos + 8];
        if kind == b"mfhd" {
            seq = be32(b, pos + 12);
        } else if kind == b"traf" {
            let mut t =
                Traf { track_id: 0, tfdt: 0, trun_version: 0, samples: Vec::new(), data_offset: 0 };
            let mut p = pos + 8;
            while p < pos + size {
                let s = be32(b, p) as usize;
                match &b[p + 4..p + 8] {
                    b"tfhd" => t.track_id = be32(b, p + 12),
                    b"tfdt" => {
                        assert_eq!(b[p + 8], 1);
                        t.tfdt = u64::from_be_bytes(b[p + 12..p + 20].try_into().unwrap());
                    }
                    b"trun" => {
                        t.trun_version = b[p + 8];
                        let flags = be32(b, p + 8) & 0xFF_FFFF;
                        let count = be32(b, p + 12);
                        t.data_offset = be32(b, p + 16) as i32;
                        let mut q = p + 20;
                        for _ in 0..count {
                            let d = be32(b, q);
                            let sz = be32(b, q + 4);
                            let fl = be32(b, q + 8);
                            q += 12;
                            let cts = if flags & 0x800 != 0 {
                                q += 4;
                                be32(b, q - 4) as i32
                            } else {
                                0
                            };
                            t.samples.push((d, sz, fl, cts));
                        }
                    }
                    _ => {}
                }
                p += s;
            }
            trafs.push(t);
        }
        pos += size;
    }
    (seq, trafs, mdat_len - 8)
}

/// (msn, EXTINF seconds, PDT ms, discontinuity, EXT-X-MAP URI) of a listed segment.
pub type SegmentEntry = (u64, f64, Option<u64>, bool, Option<String>);

/// The parsed entries of a media playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    pub version: u32,
    pub target: u64,
    pub part_target: f64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub skipped: u64,
    /// Each complete segment listed.
    pub segments: Vec<SegmentEntry>,
    /// (uri, duration, independent) of each part, in order.
    pub parts: Vec<(String, f64, bool)>,
    pub preload_hint: Option<String>,
    /// Lines after the EXT-X-SKIP tag (or after the header for a full playlist).
    pub body: Vec<String>,
}

fn attr<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    let i = if line.starts_with(&key) {
        key.len()
    } else {
        line.find(&format!(",{key}"))? + key.len() + 1
    };
    let rest = &line[i..];
    if let Some(r) = rest.strip_prefix('"') {
        return r.split('"').next();
    }
    rest.split(',').next()
}

fn parse_pdt(s: &str) -> u64 {
    // 2023-11-14T22:13:20.000Z: compare relative values only, so days of a fixed month suffice.
    let (date, time) = s.split_once('T').unwrap();
    let day: u64 = date[8..10].parse().unwrap();
    let h: u64 = time[0..2].parse().unwrap();
    let m: u64 = time[3..5].parse().unwrap();
    let sec: u64 = time[6..8].parse().unwrap();
    let ms: u64 = time[9..12].parse().unwrap();
    (((day * 24 + h) * 60 + m) * 60 + sec) * 1000 + ms
}

/// Parse a media playlist and check the RFC 8216bis / LL-HLS rules that hold for any
/// playlist: part durations <= PART-TARGET, EXTINF rounded <= TARGETDURATION, PDT
/// continuous within a discontinuity run, the preload hint names the next part, hold-backs.
pub fn check_playlist(text: &str) -> Parsed {
    let mut p = Parsed::default();
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    let mut msn = None;
    let mut pdt: Option<(u64, f64)> = None;
    let mut disc = false;
    let mut map = None;
    let mut in_body = false;
    let mut pending_parts: Vec<(String, f64, bool)> = Vec::new();
    let mut expect_uri = false;
    let mut extinf: f64 = 0.0;
    let mut can_skip_until: f64 = 0.0;
    let mut hold_backs: (f64, f64) = (0.0, 0.0);
    for line in text.lines() {
        if in_body {
            p.body.push(line.to_string());
        }
        if let Some(v) = line.strip_prefix("#EXT-X-VERSION:") {
            p.version = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target = attr(v, "PART-TARGET").unwrap().parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-SERVER-CONTROL:") {
            assert_eq!(attr(v, "CAN-BLOCK-RELOAD"), Some("YES"));
            let phb: f64 = attr(v, "PART-HOLD-BACK").unwrap().parse().unwrap();
            let hb: f64 = attr(v, "HOLD-BACK").unwrap().parse().unwrap();
            can_skip_until = attr(v, "CAN-SKIP-UNTIL").unwrap().parse().unwrap();
            hold_backs = (phb, hb);
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().unwrap();
            msn = Some(p.media_sequence);
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v.parse().unwrap();
            in_body = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
            p.skipped = attr(v, "SKIPPED-SEGMENTS").unwrap().parse().unwrap();
            msn = msn.map(|m| m + p.skipped);
            p.body.clear();
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
            pdt = None;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MAP:") {
            map = attr(v, "URI").map(str::to_string);
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let t = parse_pdt(v);
            if let Some((prev_t, prev_d)) = pdt {
                let expected = prev_t as f64 + prev_d * 1000.0;
                assert!(
                    (t as f64 - expected).abs() <= 1.0,
                    "PDT {v} not continuous (expected {expected}, got {t})"
                );
            }
            pdt = Some((t, 0.0));
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let d: f64 = attr(v, "DURATION").unwrap().parse().unwrap();
            assert!(
                d <= p.part_target + 1e-9,
                "part {v} longer than PART-TARGET {}",
                p.part_target
            );
            let part = (attr(v, "URI").unwrap().to_string(), d, v.contains("INDEPENDENT=YES"));
            pending_parts.push(part.clone());
            p.parts.push(part);
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = v.trim_end_matches(',').parse().unwrap();
            assert!(
                (extinf.round() as u64) <= p.target,
                "EXTINF {extinf} exceeds TARGETDURATION {}",
                p.target
            );
            if !pending_parts.is_empty() {
                let sum: f64 = pending_parts.iter().map(|x| x.1).sum();
                assert!((sum - extinf).abs() < 0.0001 * pending_parts.len() as f64 + 1e-9);
            }
            expect_uri = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            assert_eq!(attr(v, "TYPE"), Some("PART"));
            p.preload_hint = attr(v, "URI").map(str::to_string);
        } else if expect_uri && !line.starts_with('#') {
            let m = msn.unwrap();
            assert!(line.starts_with(&format!("seg-{m}.m4s")), "{line} is not segment {m}");
            p.segments.push((m, extinf, pdt.map(|x| x.0), disc, map.take()));
            if let Some(x) = pdt.as_mut() {
                x.1 = extinf;
            }
            msn = Some(m + 1);
            disc = false;
            expect_uri = false;
            pending_parts.clear();
        }
    }
    assert!(p.part_target > 0.0);
    assert!(can_skip_until >= 6.0 * p.target as f64);
    assert!(hold_backs.0 >= 2.0 * p.part_target, "PART-HOLD-BACK {hold_backs:?}");
    assert!(hold_backs.1 >= 3.0 * p.target as f64, "HOLD-BACK {hold_backs:?}");
    // The preload hint names the part after the last one listed.
    if let (Some(hint), Some(m)) = (&p.preload_hint, msn) {
        let next = match pending_parts.last() {
            Some((uri, _, _)) => {
                let name = uri.split('?').next().unwrap();
                let (pm, pi) = name
                    .strip_prefix("part-")
                    .unwrap()
                    .strip_suffix(".m4s")
                    .unwrap()
                    .split_once('.')
                    .unwrap();
                assert_eq!(pm.parse::<u64>().unwrap(), m, "open parts belong to segment {m}");
                format!("part-{m}.{}.m4s", pi.parse::<u32>().unwrap() + 1)
            }
            None => format!("part-{m}.0.m4s"),
        };
        assert_eq!(hint.split('?').next().unwrap(), next, "preload hint");
    }
    p
}
