//! Reading back the CMAF objects the HLS segmenter writes: the tracks of an init segment
//! (`moov`: track ids, timescales, decoder configuration records) and the samples of a
//! fragment (`moof` + `mdat`). Every size and offset is checked; sample data is sliced from
//! the fragment's buffer without copying.

use bytes::Bytes;

use super::TsError;

/// Most samples one `trun` may declare.
const MAX_SAMPLES_PER_RUN: u32 = 100_000;
/// Most samples of one fragment, all runs together (a hostile fragment could otherwise repeat
/// small `trun` boxes that each declare many empty samples).
const MAX_SAMPLES_PER_FRAGMENT: usize = 100_000;

/// A track of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitTrack {
    pub track_id: u32,
    pub timescale: u32,
    /// Sample entry type: `avc1`, `hvc1`, `mp4a`, `Opus`, ...
    pub sample_entry: [u8; 4],
    /// `avcC`/`hvcC` payload, or the AudioSpecificConfig of an `esds`; empty when unknown.
    pub config: Bytes,
}

/// The video and audio track of an init segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitTracks {
    pub video: Option<InitTrack>,
    pub audio: Option<InitTrack>,
}

/// One sample of a fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentSample {
    pub track_id: u32,
    /// Decode time in the track's timescale.
    pub dts: u64,
    pub duration: u32,
    /// Composition offset, track timescale.
    pub cts: i32,
    pub key: bool,
    pub data: Bytes,
}

fn malformed(what: &'static str) -> TsError {
    TsError::Malformed(what)
}

/// A box: (type, offset of its header, range of its body).
type BoxRef = ([u8; 4], usize, std::ops::Range<usize>);

/// The boxes in `data` as (type, start of the box, body range) within `data`.
fn boxes(data: &[u8]) -> Result<Vec<BoxRef>, TsError> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        let head = data.get(at..at + 8).ok_or(malformed("box header"))?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let kind = [head[4], head[5], head[6], head[7]];
        let (size, header) = match size32 {
            0 => (data.len() - at, 8),
            1 => {
                let b = data.get(at + 8..at + 16).ok_or(malformed("box largesize"))?;
                let mut v = [0u8; 8];
                v.copy_from_slice(b);
                (usize::try_from(u64::from_be_bytes(v)).map_err(|_| malformed("box size"))?, 16)
            }
            n => (n as usize, 8),
        };
        let end = at.checked_add(size).ok_or(malformed("box size"))?;
        if size < header || end > data.len() {
            return Err(malformed("box size"));
        }
        out.push((kind, at, at + header..end));
        at = end;
    }
    Ok(out)
}

fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(data).ok()?.into_iter().find(|(k, _, _)| k == kind).and_then(|(_, _, r)| data.get(r))
}

fn be32(b: &[u8], at: usize) -> Result<u32, TsError> {
    b.get(at..at + 4)
        .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
        .ok_or(malformed("field beyond its box"))
}

fn be64(b: &[u8], at: usize) -> Result<u64, TsError> {
    Ok((u64::from(be32(b, at)?) << 32) | u64::from(be32(b, at + 4)?))
}

/// An MPEG-4 descriptor's (tag, body) at the start of `b`, and what follows it.
fn descriptor(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, mut rest) = b.split_first()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let (&x, r) = rest.split_first()?;
        rest = r;
        len = (len << 7) | usize::from(x & 0x7F);
        if x & 0x80 == 0 {
            break;
        }
    }
    let (body, after) = rest.split_at_checked(len)?;
    Some((tag, body, after))
}

/// The AudioSpecificConfig inside an `esds` body.
fn esds_asc(esds: &[u8]) -> Option<&[u8]> {
    let (tag, es, _) = descriptor(esds.get(4..)?)?;
    if tag != 3 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut at = 3;
    if flags & 0x80 != 0 {
        at += 2;
    }
    if flags & 0x40 != 0 {
        at += 1 + usize::from(*es.get(at)?);
    }
    if flags & 0x20 != 0 {
        at += 2;
    }
    let (tag, dc, _) = descriptor(es.get(at..)?)?;
    if tag != 4 {
        return None;
    }
    let (tag, asc, _) = descriptor(dc.get(13..)?)?;
    (tag == 5).then_some(asc)
}

fn parse_trak(trak: &[u8]) -> Result<Option<(bool, InitTrack)>, TsError> {
    let tkhd = child(trak, b"tkhd").ok_or(malformed("trak without tkhd"))?;
    let track_id = be32(tkhd, if tkhd.first() == Some(&1) { 20 } else { 12 })?;
    let mdia = child(trak, b"mdia").ok_or(malformed("trak without mdia"))?;
    let mdhd = child(mdia, b"mdhd").ok_or(malformed("mdia without mdhd"))?;
    let timescale = be32(mdhd, if mdhd.first() == Some(&1) { 20 } else { 12 })?;
    let hdlr = child(mdia, b"hdlr").ok_or(malformed("mdia without hdlr"))?;
    let handler = be32(hdlr, 8)?.to_be_bytes();
    let video = match &handler {
        b"vide" => true,
        b"soun" => false,
        _ => return Ok(None),
    };
    let stsd = child(mdia, b"minf")
        .and_then(|m| child(m, b"stbl"))
        .and_then(|s| child(s, b"stsd"))
        .ok_or(malformed("track without stsd"))?;
    let entries = stsd.get(8..).ok_or(malformed("stsd"))?;
    let (kind, _, range) =
        boxes(entries)?.into_iter().next().ok_or(malformed("stsd without entry"))?;
    let entry = entries.get(range).ok_or(malformed("stsd entry"))?;
    let skip = if video { 78 } else { 28 };
    let children = entry.get(skip..).unwrap_or(&[]);
    let config = match &kind {
        b"avc1" | b"avc3" => child(children, b"avcC"),
        b"hvc1" | b"hev1" => child(children, b"hvcC"),
        b"mp4a" => child(children, b"esds").and_then(esds_asc),
        _ => None,
    };
    Ok(Some((
        video,
        InitTrack {
            track_id,
            timescale,
            sample_entry: kind,
            config: Bytes::copy_from_slice(config.unwrap_or(&[])),
        },
    )))
}

/// The first video and first audio track of an init segment (`ftyp` + `moov`).
pub fn parse_init(init: &[u8]) -> Result<InitTracks, TsError> {
    let moov = child(init, b"moov").ok_or(malformed("init without moov"))?;
    let mut tracks = InitTracks::default();
    for (kind, _, range) in boxes(moov)? {
        if &kind != b"trak" {
            continue;
        }
        let Some((video, track)) = parse_trak(moov.get(range).unwrap_or(&[]))? else {
            continue;
        };
        let slot = if video { &mut tracks.video } else { &mut tracks.audio };
        if slot.is_none() {
            *slot = Some(track);
        }
    }
    Ok(tracks)
}

const TFHD_BASE_OFFSET: u32 = 0x01;
const TFHD_DESCRIPTION: u32 = 0x02;
const TFHD_DURATION: u32 = 0x08;
const TFHD_SIZE: u32 = 0x10;
const TFHD_FLAGS: u32 = 0x20;
const TRUN_DATA_OFFSET: u32 = 0x001;
const TRUN_FIRST_FLAGS: u32 = 0x004;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTS: u32 = 0x800;
/// `sample_is_non_sync_sample` in sample flags.
const NON_SYNC: u32 = 0x0001_0000;

/// Track fragment defaults from `tfhd`.
struct Defaults {
    track_id: u32,
    base: usize,
    duration: u32,
    size: u32,
    flags: u32,
}

fn parse_tfhd(tfhd: &[u8], moof_start: usize) -> Result<Defaults, TsError> {
    let flags = be32(tfhd, 0)? & 0x00FF_FFFF;
    let mut d =
        Defaults { track_id: be32(tfhd, 4)?, base: moof_start, duration: 0, size: 0, flags: 0 };
    let mut at = 8;
    if flags & TFHD_BASE_OFFSET != 0 {
        d.base = usize::try_from(be64(tfhd, at)?).map_err(|_| malformed("base offset"))?;
        at += 8;
    }
    if flags & TFHD_DESCRIPTION != 0 {
        at += 4;
    }
    for (bit, field) in
        [(TFHD_DURATION, &mut d.duration), (TFHD_SIZE, &mut d.size), (TFHD_FLAGS, &mut d.flags)]
    {
        if flags & bit != 0 {
            *field = be32(tfhd, at)?;
            at += 4;
        }
    }
    Ok(d)
}

/// Every sample of a fragment (one or more `moof` + `mdat` pairs), per track in order.
pub fn parse_fragment(fragment: &Bytes) -> Result<Vec<FragmentSample>, TsError> {
    let mut out = Vec::new();
    for (kind, moof_start, range) in boxes(fragment)? {
        if &kind != b"moof" {
            continue;
        }
        let moof = fragment.get(range).unwrap_or(&[]);
        for (kind, _, range) in boxes(moof)? {
            if &kind != b"traf" {
                continue;
            }
            let traf = moof.get(range).unwrap_or(&[]);
            parse_traf(fragment, moof_start, traf, &mut out)?;
        }
    }
    Ok(out)
}

fn parse_traf(
    fragment: &Bytes,
    moof_start: usize,
    traf: &[u8],
    out: &mut Vec<FragmentSample>,
) -> Result<(), TsError> {
    let d = parse_tfhd(child(traf, b"tfhd").ok_or(malformed("traf without tfhd"))?, moof_start)?;
    let mut dts = match child(traf, b"tfdt") {
        Some(t) if t.first() == Some(&1) => be64(t, 4)?,
        Some(t) => u64::from(be32(t, 4)?),
        None => 0,
    };
    let mut data_at = d.base;
    for (kind, _, range) in boxes(traf)? {
        if &kind != b"trun" {
            continue;
        }
        let trun = traf.get(range).unwrap_or(&[]);
        let flags = be32(trun, 0)? & 0x00FF_FFFF;
        let count = be32(trun, 4)?;
        if count > MAX_SAMPLES_PER_RUN {
            return Err(malformed("too many samples in trun"));
        }
        let mut at = 8;
        if flags & TRUN_DATA_OFFSET != 0 {
            let off = be32(trun, at)? as i32;
            data_at = d.base.checked_add_signed(off as isize).ok_or(malformed("data offset"))?;
            at += 4;
        }
        let mut first_flags = None;
        if flags & TRUN_FIRST_FLAGS != 0 {
            first_flags = Some(be32(trun, at)?);
            at += 4;
        }
        for i in 0..count {
            let mut field = |bit: u32, default: u32| -> Result<u32, TsError> {
                if flags & bit != 0 {
                    let v = be32(trun, at)?;
                    at += 4;
                    Ok(v)
                } else {
                    Ok(default)
                }
            };
            let duration = field(TRUN_DURATION, d.duration)?;
            let size = field(TRUN_SIZE, d.size)?;
            let mut sflags = field(TRUN_FLAGS, d.flags)?;
            let cts = field(TRUN_CTS, 0)? as i32;
            if i == 0 {
                sflags = first_flags.unwrap_or(sflags);
            }
            if out.len() >= MAX_SAMPLES_PER_FRAGMENT {
                return Err(malformed("too many samples in fragment"));
            }
            let end = data_at
                .checked_add(size as usize)
                .filter(|&e| e <= fragment.len())
                .ok_or(malformed("sample data beyond the fragment"))?;
            out.push(FragmentSample {
                track_id: d.track_id,
                dts,
                duration,
                cts,
                key: sflags & NON_SYNC == 0,
                data: fragment.slice(data_at..end),
            });
            data_at = end;
            dts = dts.saturating_add(u64::from(duration));
        }
    }
    Ok(())
}

#[cfg(test)]
mod limits {
    use super::*;

    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind);
        b.extend_from_slice(payload);
        b
    }

    /// Found by fuzzing: many small `trun` boxes, each declaring many empty samples, must not
    /// make a few kilobytes of fragment cost gigabytes.
    #[test]
    fn samples_are_bounded_per_fragment_not_only_per_run() {
        let mut tfhd = 0u32.to_be_bytes().to_vec();
        tfhd.extend_from_slice(&1u32.to_be_bytes());
        let mut traf = mp4_box(b"tfhd", &tfhd);
        let mut trun = 0u32.to_be_bytes().to_vec();
        trun.extend_from_slice(&MAX_SAMPLES_PER_RUN.to_be_bytes());
        for _ in 0..200 {
            traf.extend(mp4_box(b"trun", &trun));
        }
        let mut fragment = mp4_box(b"moof", &mp4_box(b"traf", &traf));
        fragment.extend(mp4_box(b"mdat", &[]));
        assert!(fragment.len() < 5000);
        let err = parse_fragment(&Bytes::from(fragment)).expect_err("refused");
        assert!(err.to_string().contains("too many samples"), "{err}");
    }
}
