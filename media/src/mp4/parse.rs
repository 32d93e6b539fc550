//! Parsing init segments (`ftyp` + `moov`) and media segments (`moof` + `mdat` fragments).

use bytes::Bytes;

use super::reader::{only_child, BoxRef, Boxes, Reader};
use super::{Mp4Error, Run, SampleInfo};

const TFHD_BASE_DATA_OFFSET: u32 = 0x00_0001;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x00_0002;
const TFHD_DEFAULT_DURATION: u32 = 0x00_0008;
const TFHD_DEFAULT_SIZE: u32 = 0x00_0010;
const TFHD_DEFAULT_FLAGS: u32 = 0x00_0020;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
const TRUN_DATA_OFFSET: u32 = 0x0001;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x0004;
const TRUN_DURATION: u32 = 0x0100;
const TRUN_SIZE: u32 = 0x0200;
const TRUN_FLAGS: u32 = 0x0400;
const TRUN_CTS: u32 = 0x0800;
/// `sample_is_non_sync_sample` in the sample flags.
const FLAG_NON_SYNC: u32 = 0x0001_0000;

/// What an init segment says about its tracks.
#[derive(Debug, Clone, PartialEq)]
pub struct InitInfo {
    /// In the order of the `trak` boxes.
    pub tracks: Vec<TrackInfo>,
}

impl InitInfo {
    /// The track with id `track_id`.
    pub fn track(&self, track_id: u32) -> Option<&TrackInfo> {
        self.tracks.iter().find(|t| t.track_id == track_id)
    }
}

/// One track of an init segment.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    pub track_id: u32,
    /// Media timescale (`mdhd`): ticks per second.
    pub timescale: u32,
    /// `hdlr` handler type: `vide`, `soun`, ...
    pub handler: [u8; 4],
    /// The whole `trak` box as found in the init segment.
    pub trak: Bytes,
    /// The track's only sample entry (e.g. `avc1` with its `avcC`), header included.
    pub sample_entry: Bytes,
    /// The pieces of `trak` the writer copies.
    pub(super) parts: TrakParts,
    /// `trex` defaults for the track's fragments.
    pub(super) defaults: Defaults,
}

/// The boxes and fields of an init's `trak` that the output `trak` copies (slices of
/// [`TrackInfo::trak`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct TrakParts {
    pub tkhd_flags: u32,
    /// `tkhd` after its duration: reserved, layer, alternate group, volume, matrix, size.
    pub tkhd_tail: Bytes,
    /// `mdhd` language and pre_defined.
    pub mdhd_language: u16,
    pub hdlr: Bytes,
    /// `trak` children other than `tkhd`, `edts` and `mdia` (e.g. `tref`, `udta`).
    pub trak_other: Vec<Bytes>,
    /// `mdia` children other than `mdhd`, `hdlr` and `minf`.
    pub mdia_other: Vec<Bytes>,
    /// `minf` children other than `stbl` (`vmhd`/`smhd`, `dinf`, ...).
    pub minf_other: Vec<Bytes>,
}

/// Sample defaults from `trex` (or `tfhd`); `None` where nothing says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Defaults {
    pub duration: Option<u32>,
    pub size: Option<u32>,
    pub flags: Option<u32>,
}

impl Defaults {
    fn or(self, other: Defaults) -> Defaults {
        Defaults {
            duration: self.duration.or(other.duration),
            size: self.size.or(other.size),
            flags: self.flags.or(other.flags),
        }
    }
}

/// Parse an init segment: its `moov`'s tracks and their `trex` defaults.
pub fn parse_init(bytes: &[u8]) -> Result<InitInfo, Mp4Error> {
    let buf = Bytes::copy_from_slice(bytes);
    let mut moov = None;
    for b in Boxes::new(&buf, 0) {
        let b = b?;
        if &b.kind == b"moov" {
            if moov.is_some() {
                return Err(Mp4Error::Malformed("two moov boxes"));
            }
            moov = Some(b);
        } else if &b.kind == b"moof" {
            return Err(Mp4Error::Malformed("init segment with a moof"));
        }
    }
    let moov = moov.ok_or(Mp4Error::Malformed("init segment without moov"))?;
    let mut tracks: Vec<TrackInfo> = Vec::new();
    let mut trex = Vec::new();
    for b in Boxes::children(&moov) {
        let b = b?;
        match &b.kind {
            b"trak" => {
                let t = parse_trak(&buf, &b)?;
                if tracks.iter().any(|o| o.track_id == t.track_id) {
                    return Err(Mp4Error::Malformed("two tracks with one id"));
                }
                tracks.push(t);
            }
            b"mvex" => {
                for e in Boxes::children(&b) {
                    let e = e?;
                    if &e.kind == b"trex" {
                        trex.push(parse_trex(e.body)?);
                    }
                }
            }
            _ => {}
        }
    }
    if tracks.is_empty() {
        return Err(Mp4Error::Malformed("init segment without tracks"));
    }
    for (id, d) in trex {
        if let Some(t) = tracks.iter_mut().find(|t| t.track_id == id) {
            t.defaults = d;
        }
    }
    Ok(InitInfo { tracks })
}

fn parse_trex(body: &[u8]) -> Result<(u32, Defaults), Mp4Error> {
    let mut r = Reader::new(body, "trex");
    r.full_header()?;
    let id = r.u32()?;
    r.u32()?; // default_sample_description_index: there is only one
    let d = Defaults { duration: Some(r.u32()?), size: Some(r.u32()?), flags: Some(r.u32()?) };
    Ok((id, d))
}

/// `buf.slice` of a box found in `buf` (its `raw` is a sub-slice of `buf`).
fn share(buf: &Bytes, b: &[u8]) -> Bytes {
    buf.slice_ref(b)
}

fn parse_trak(buf: &Bytes, trak: &BoxRef<'_>) -> Result<TrackInfo, Mp4Error> {
    let mut parts = TrakParts::default();
    let tkhd = only_child(trak, b"tkhd", "trak needs one tkhd")?;
    let mdia = only_child(trak, b"mdia", "trak needs one mdia")?;
    for b in Boxes::children(trak) {
        let b = b?;
        if !matches!(&b.kind, b"tkhd" | b"mdia" | b"edts") {
            parts.trak_other.push(share(buf, b.raw));
        }
    }
    let mut r = Reader::new(tkhd.body, "tkhd");
    let (version, flags) = r.full_header()?;
    r.skip(if version == 1 { 16 } else { 8 })?; // creation and modification times
    let track_id = r.u32()?;
    r.u32()?;
    r.time(version)?; // duration
    parts.tkhd_flags = flags;
    parts.tkhd_tail = share(buf, r.bytes(60)?);
    if track_id == 0 {
        return Err(Mp4Error::Malformed("track id 0"));
    }

    let mdhd = only_child(&mdia, b"mdhd", "mdia needs one mdhd")?;
    let hdlr = only_child(&mdia, b"hdlr", "mdia needs one hdlr")?;
    let minf = only_child(&mdia, b"minf", "mdia needs one minf")?;
    for b in Boxes::children(&mdia) {
        let b = b?;
        if !matches!(&b.kind, b"mdhd" | b"hdlr" | b"minf") {
            parts.mdia_other.push(share(buf, b.raw));
        }
    }
    let mut r = Reader::new(mdhd.body, "mdhd");
    let (version, _) = r.full_header()?;
    r.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = r.u32()?;
    r.time(version)?;
    parts.mdhd_language = r.u16()?;
    if timescale == 0 {
        return Err(Mp4Error::Malformed("timescale 0"));
    }
    let mut r = Reader::new(hdlr.body, "hdlr");
    r.full_header()?;
    r.u32()?;
    let handler = r.fourcc()?;
    parts.hdlr = share(buf, hdlr.raw);

    let stbl = only_child(&minf, b"stbl", "minf needs one stbl")?;
    for b in Boxes::children(&minf) {
        let b = b?;
        if &b.kind != b"stbl" {
            parts.minf_other.push(share(buf, b.raw));
        }
    }
    let sample_entry = parse_stbl(buf, &stbl)?;
    Ok(TrackInfo {
        track_id,
        timescale,
        handler,
        trak: share(buf, trak.raw),
        sample_entry,
        parts,
        defaults: Defaults::default(),
    })
}

/// The single sample entry of an init's (empty) sample table.
fn parse_stbl(buf: &Bytes, stbl: &BoxRef<'_>) -> Result<Bytes, Mp4Error> {
    let stsd = only_child(stbl, b"stsd", "stbl needs one stsd")?;
    for b in Boxes::children(stbl) {
        let b = b?;
        // An init's sample tables are empty: its samples are in the fragments.
        let count_at = match &b.kind {
            b"stts" | b"stco" | b"co64" | b"stsc" => 4,
            b"stsz" => 8,
            _ => continue,
        };
        let mut r = Reader::new(b.body, "sample table");
        r.skip(count_at)?;
        if r.u32()? != 0 {
            return Err(Mp4Error::Unsupported("init segment with samples in its sample tables"));
        }
    }
    let mut r = Reader::new(stsd.body, "stsd");
    r.full_header()?;
    let count = r.u32()?;
    let entries = stsd.body.get(8..).ok_or(Mp4Error::Truncated("stsd"))?;
    let mut it = Boxes::new(entries, 0);
    let entry = match (count, it.next(), it.next()) {
        (1, Some(e), None) => e?,
        (0, _, _) | (_, None, _) => return Err(Mp4Error::Malformed("stsd without a sample entry")),
        _ => return Err(Mp4Error::Unsupported("several sample descriptions in one init segment")),
    };
    if matches!(&entry.kind, b"encv" | b"enca" | b"enct" | b"encs" | b"resv") {
        return Err(Mp4Error::Unsupported("encrypted or restricted track"));
    }
    Ok(share(buf, entry.raw))
}

/// Parse every fragment of a media segment whose tracks `init` describes: the runs of
/// samples, in file order, with absolute data offsets checked to lie inside the `mdat` that
/// follows their `moof`. Boxes other than `moof` and `mdat` (`styp`, `sidx`, ...) are skipped.
pub fn parse_segment(bytes: &[u8], init: &InitInfo) -> Result<Vec<Run>, Mp4Error> {
    let mut runs = Vec::new();
    let mut pending: Option<Vec<Run>> = None;
    // Samples allowed in total: a length field cannot make us allocate beyond the file's size.
    let mut budget = bytes.len();
    for b in Boxes::new(bytes, 0) {
        let b = b?;
        match &b.kind {
            b"moof" => {
                if pending.as_ref().is_some_and(|p| !p.is_empty()) {
                    return Err(Mp4Error::Malformed("moof without mdat"));
                }
                pending = Some(parse_moof(&b, init, &mut budget)?);
            }
            b"mdat" => {
                let Some(frag) = pending.take() else {
                    continue; // not referenced by any fragment
                };
                for run in frag {
                    let end = run.data_offset.checked_add(run.data_len());
                    if run.data_offset < b.body_start || end.is_none_or(|e| e > b.end()) {
                        return Err(Mp4Error::Malformed("sample data outside its fragment's mdat"));
                    }
                    runs.push(run);
                }
            }
            _ => {}
        }
    }
    if pending.is_some_and(|p| !p.is_empty()) {
        return Err(Mp4Error::Truncated("moof without mdat"));
    }
    Ok(runs)
}

fn parse_moof(
    moof: &BoxRef<'_>,
    init: &InitInfo,
    budget: &mut usize,
) -> Result<Vec<Run>, Mp4Error> {
    let mut runs = Vec::new();
    // Where the next traf's data starts when its tfhd gives no base.
    let mut next_base = moof.start;
    for b in Boxes::children(moof) {
        let b = b?;
        if &b.kind == b"traf" {
            next_base = parse_traf(&b, moof.start, next_base, init, budget, &mut runs)?;
        }
    }
    Ok(runs)
}

/// Parse one `traf`, appending its runs; returns the end of its data.
fn parse_traf(
    traf: &BoxRef<'_>,
    moof_start: u64,
    implicit_base: u64,
    init: &InitInfo,
    budget: &mut usize,
    runs: &mut Vec<Run>,
) -> Result<u64, Mp4Error> {
    let tfhd = only_child(traf, b"tfhd", "traf needs one tfhd")?;
    let mut r = Reader::new(tfhd.body, "tfhd");
    let (_, flags) = r.full_header()?;
    let track_id = r.u32()?;
    let track = init.track(track_id).ok_or(Mp4Error::UnknownTrack(track_id))?;
    let base = if flags & TFHD_BASE_DATA_OFFSET != 0 {
        r.u64()?
    } else if flags & TFHD_DEFAULT_BASE_IS_MOOF != 0 {
        moof_start
    } else {
        implicit_base
    };
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX != 0 && r.u32()? != 1 {
        return Err(Mp4Error::Malformed("sample description index other than 1"));
    }
    let mut opt = |bit: u32| -> Result<Option<u32>, Mp4Error> {
        if flags & bit != 0 {
            r.u32().map(Some)
        } else {
            Ok(None)
        }
    };
    let tfhd_defaults = Defaults {
        duration: opt(TFHD_DEFAULT_DURATION)?,
        size: opt(TFHD_DEFAULT_SIZE)?,
        flags: opt(TFHD_DEFAULT_FLAGS)?,
    };
    let defaults = tfhd_defaults.or(track.defaults);

    let mut tfdt = None;
    for b in Boxes::children(traf) {
        let b = b?;
        if &b.kind == b"tfdt" {
            let mut r = Reader::new(b.body, "tfdt");
            let (version, _) = r.full_header()?;
            tfdt = Some(r.time(version)?);
        }
    }
    let mut dts = tfdt;
    let mut data = base;
    for b in Boxes::children(traf) {
        let b = b?;
        if &b.kind != b"trun" {
            continue;
        }
        let mut run = parse_trun(b.body, base, data, defaults, budget)?;
        data = run.data_offset.checked_add(run.data_len()).ok_or(Mp4Error::Malformed("trun"))?;
        if run.samples.is_empty() {
            continue;
        }
        let start = dts.ok_or(Mp4Error::Unsupported("traf without tfdt"))?;
        let duration: u64 = run.samples.iter().map(|s| u64::from(s.duration)).sum();
        dts = Some(start.checked_add(duration).ok_or(Mp4Error::Malformed("decode time"))?);
        run.track_id = track_id;
        run.base_dts = start;
        runs.push(run);
    }
    Ok(data)
}

/// One `trun`. Its data offset is relative to `base` (the traf's); without one, its data
/// starts at `data` (the base for the first trun, else where the previous one's ended).
fn parse_trun(
    body: &[u8],
    base: u64,
    data: u64,
    defaults: Defaults,
    budget: &mut usize,
) -> Result<Run, Mp4Error> {
    let mut r = Reader::new(body, "trun");
    let (_, flags) = r.full_header()?;
    let count = r.u32()?;
    let data_offset = if flags & TRUN_DATA_OFFSET != 0 {
        let rel = r.i32()?;
        base.checked_add_signed(i64::from(rel)).ok_or(Mp4Error::Malformed("trun data offset"))?
    } else {
        data
    };
    let first_flags = if flags & TRUN_FIRST_SAMPLE_FLAGS != 0 { Some(r.u32()?) } else { None };
    let fields = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS];
    let record = 4 * fields.iter().filter(|&&f| flags & f != 0).count();
    let count = usize::try_from(count).map_err(|_| Mp4Error::TooLarge("trun sample count"))?;
    if record > 0 && count > r.remaining() / record {
        return Err(Mp4Error::Truncated("trun samples"));
    }
    *budget = budget.checked_sub(count).ok_or(Mp4Error::TooLarge("trun sample count"))?;
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let mut field = |bit: u32, default: Option<u32>, what| -> Result<u32, Mp4Error> {
            if flags & bit != 0 {
                r.u32()
            } else {
                default.ok_or(Mp4Error::Malformed(what))
            }
        };
        let duration = field(TRUN_DURATION, defaults.duration, "no sample duration")?;
        let size = field(TRUN_SIZE, defaults.size, "no sample size")?;
        let default_flags = if i == 0 { first_flags.or(defaults.flags) } else { defaults.flags };
        let sample_flags = field(TRUN_FLAGS, Some(default_flags.unwrap_or(0)), "")?;
        // Version 0 offsets are unsigned, but writers put negative ones there too.
        let cts_offset = field(TRUN_CTS, Some(0), "")? as i32;
        samples.push(SampleInfo {
            duration,
            size,
            sync: sample_flags & FLAG_NON_SYNC == 0,
            cts_offset,
        });
    }
    Ok(Run { track_id: 0, base_dts: 0, samples, data_offset })
}
