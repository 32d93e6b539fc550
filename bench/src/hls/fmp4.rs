//! Just enough ISO-BMFF / CMAF parsing to find the bench stamps in LL-HLS parts:
//!
//! * [`parse_init`]: from an init segment (`moov`), the video track's id (`hdlr` = `vide`),
//!   its codec (H.264 or H.265) and NAL length size (`avcC` / `hvcC`);
//! * [`PartScanner`]: a streaming scanner of a part (`moof` + `mdat`, possibly repeated) fed
//!   in arbitrary pieces as they arrive from the socket. It buffers only each `moof` (bounded)
//!   and the first [`SAMPLE_PREFIX`] bytes of each video sample, walks the sample's
//!   length-prefixed NAL units there and reports the stamp of the bench's SEI. Sample data is
//!   otherwise skipped, so a client's memory does not grow with the part size.
//!
//! Input is untrusted: every size is checked, nothing is indexed unchecked.

use std::collections::VecDeque;

use thiserror::Error;

use crate::sei::{parse_sei_body, Stamp};

/// Largest `moof` (or init segment box) buffered.
pub const MAX_MOOF: usize = 1024 * 1024;
/// Most video samples one part may announce.
pub const MAX_SAMPLES: usize = 100_000;
/// Bytes of each video sample inspected for the stamp (SEI comes first in the bench's frames).
pub const SAMPLE_PREFIX: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Fmp4Error {
    #[error("malformed box: {0}")]
    Malformed(&'static str),
    #[error("box too large: {0}")]
    TooLarge(&'static str),
    #[error("part ends inside a box")]
    Truncated,
    #[error("init segment has no video track")]
    NoVideo,
}

/// The video track of an init segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTrack {
    pub track_id: u32,
    pub hevc: bool,
    /// Bytes of each NAL unit's length prefix (1, 2 or 4).
    pub nal_length_size: u8,
}

/// Iterates the boxes of a buffer: (type, body).
struct Boxes<'a> {
    rest: &'a [u8],
}

fn boxes(data: &[u8]) -> Boxes<'_> {
    Boxes { rest: data }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<([u8; 4], &'a [u8]), Fmp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = (|| {
            let (size, kind, header) = box_header(self.rest)?.ok_or(Fmp4Error::Truncated)?;
            let size = match size {
                0 => self.rest.len(),
                n => usize::try_from(n).map_err(|_| Fmp4Error::TooLarge("box"))?,
            };
            let body = self.rest.get(header..size).ok_or(Fmp4Error::Malformed("box size"))?;
            self.rest = self.rest.get(size..).unwrap_or(&[]);
            Ok((kind, body))
        })();
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

/// Parse a box header from the start of `data`: (size, type, header length); size 0 means
/// "to the end". `Ok(None)` if more bytes are needed.
fn box_header(data: &[u8]) -> Result<Option<(u64, [u8; 4], usize)>, Fmp4Error> {
    let (Some(size), Some(kind)) = (be(data, 0, 4), data.get(4..8)) else {
        return Ok(None);
    };
    let kind: [u8; 4] = kind.try_into().map_err(|_| Fmp4Error::Truncated)?;
    let (size, header) = if size == 1 {
        match be(data, 8, 8) {
            Some(large) => (large, 16),
            None => return Ok(None),
        }
    } else {
        (size, 8)
    };
    if size != 0 && size < header as u64 {
        return Err(Fmp4Error::Malformed("box size below its header"));
    }
    Ok(Some((size, kind, header)))
}

/// Big-endian unsigned integer of `len` (1..=8) bytes at `at`.
fn be(data: &[u8], at: usize, len: usize) -> Option<u64> {
    let bytes = data.get(at..at.checked_add(len)?)?;
    Some(bytes.iter().fold(0u64, |v, &b| v << 8 | u64::from(b)))
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, Fmp4Error> {
    for item in boxes(body) {
        let (k, b) = item?;
        if &k == kind {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

/// Find the video track of an init segment.
pub fn parse_init(data: &[u8]) -> Result<VideoTrack, Fmp4Error> {
    let moov = child(data, b"moov")?.ok_or(Fmp4Error::NoVideo)?;
    for item in boxes(moov) {
        let (kind, trak) = item?;
        if &kind != b"trak" {
            continue;
        }
        let Some(mdia) = child(trak, b"mdia")? else {
            continue;
        };
        let hdlr = child(mdia, b"hdlr")?.ok_or(Fmp4Error::Malformed("trak without hdlr"))?;
        // version+flags, pre_defined, handler_type.
        if hdlr.get(8..12) != Some(b"vide") {
            continue;
        }
        let tkhd = child(trak, b"tkhd")?.ok_or(Fmp4Error::Malformed("trak without tkhd"))?;
        let id_at = if tkhd.first() == Some(&1) { 20 } else { 12 };
        let track_id = be(tkhd, id_at, 4).ok_or(Fmp4Error::Malformed("tkhd"))? as u32;
        let (hevc, nal_length_size) = sample_entry(mdia)?;
        return Ok(VideoTrack { track_id, hevc, nal_length_size });
    }
    Err(Fmp4Error::NoVideo)
}

/// Codec and NAL length size from `mdia/minf/stbl/stsd`'s first sample entry.
fn sample_entry(mdia: &[u8]) -> Result<(bool, u8), Fmp4Error> {
    let stsd = child(mdia, b"minf")?
        .map(|minf| child(minf, b"stbl"))
        .transpose()?
        .flatten()
        .map(|stbl| child(stbl, b"stsd"))
        .transpose()?
        .flatten()
        .ok_or(Fmp4Error::Malformed("video track without stsd"))?;
    // version+flags, entry_count, then sample entries.
    let entries = stsd.get(8..).ok_or(Fmp4Error::Malformed("stsd"))?;
    let (kind, entry) =
        boxes(entries).next().ok_or(Fmp4Error::Malformed("stsd without entry"))??;
    // VisualSampleEntry fields before the child boxes.
    let children = entry.get(78..).ok_or(Fmp4Error::Malformed("sample entry"))?;
    let hevc = matches!(&kind, b"hvc1" | b"hev1");
    let (config, at) =
        if hevc { (child(children, b"hvcC")?, 21) } else { (child(children, b"avcC")?, 4) };
    let size = config.and_then(|c| c.get(at)).map_or(4, |b| (b & 0x03) + 1);
    if size == 3 {
        return Err(Fmp4Error::Malformed("NAL length size 3"));
    }
    Ok((hevc, size))
}

/// The stamp in the first bytes of one video sample, if any.
pub fn stamp_in_sample(prefix: &[u8], track: &VideoTrack) -> Option<Stamp> {
    let len_size = usize::from(track.nal_length_size);
    let header_len = if track.hevc { 2 } else { 1 };
    let mut rest = prefix;
    while let Some(len) = be(rest, 0, len_size) {
        let body = rest.get(len_size..)?;
        let len = usize::try_from(len).ok()?;
        let nal = body.get(..len.min(body.len()))?;
        let is_sei = match nal.first() {
            Some(&h) if track.hevc => (h >> 1) & 0x3F == 39,
            Some(&h) => h & 0x1F == 6,
            None => false,
        };
        if is_sei {
            if let Some(stamp) = nal.get(header_len..).and_then(parse_sei_body) {
                return Some(stamp);
            }
        }
        rest = body.get(len..)?;
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a box header.
    Header,
    /// Buffering a `moof` body: bytes left.
    Moof(u64),
    /// Streaming through another box (`mdat`...): bytes left; `None` = to the end.
    Skip(Option<u64>),
}

/// Streaming scanner of one part. Feed it with [`PartScanner::push`], then call
/// [`PartScanner::finish`].
#[derive(Debug)]
pub struct PartScanner {
    track: VideoTrack,
    state: State,
    /// Bytes consumed so far.
    pos: u64,
    header: Vec<u8>,
    moof: Vec<u8>,
    moof_start: u64,
    /// Video samples not yet inspected: (absolute start, length), in data order.
    samples: VecDeque<(u64, u64)>,
    /// First bytes of the front sample.
    prefix: Vec<u8>,
    /// Video samples announced.
    pub video_samples: u64,
    /// Stamps found, in sample order.
    pub stamps: Vec<Stamp>,
}

impl PartScanner {
    pub fn new(track: VideoTrack) -> Self {
        PartScanner {
            track,
            state: State::Header,
            pos: 0,
            header: Vec::with_capacity(16),
            moof: Vec::new(),
            moof_start: 0,
            samples: VecDeque::new(),
            prefix: Vec::with_capacity(SAMPLE_PREFIX),
            video_samples: 0,
            stamps: Vec::new(),
        }
    }

    /// Forget everything for the next part, keeping the buffers.
    pub fn reset(&mut self, track: VideoTrack) {
        self.track = track;
        self.state = State::Header;
        self.pos = 0;
        self.header.clear();
        self.moof.clear();
        self.samples.clear();
        self.prefix.clear();
        self.video_samples = 0;
        self.stamps.clear();
    }

    /// Consume the next bytes of the part.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), Fmp4Error> {
        while !data.is_empty() {
            match self.state {
                State::Header => {
                    let need = if self.header.len() < 8 { 8 } else { 16 };
                    let take = (need - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..take]);
                    self.advance(&mut data, take);
                    let Some((size, kind, header_len)) = box_header(&self.header)? else {
                        continue;
                    };
                    let box_start = self.pos - header_len as u64;
                    self.header.clear();
                    let body = (size != 0).then(|| size - header_len as u64);
                    self.state = match (&kind, body) {
                        (b"moof", Some(len)) => {
                            if len > MAX_MOOF as u64 {
                                return Err(Fmp4Error::TooLarge("moof"));
                            }
                            self.moof.clear();
                            self.moof_start = box_start;
                            State::Moof(len)
                        }
                        (b"moof", None) => return Err(Fmp4Error::Malformed("moof to the end")),
                        _ => State::Skip(body),
                    };
                    self.state_done()?;
                }
                State::Moof(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                    self.moof.extend_from_slice(&data[..take]);
                    self.advance(&mut data, take);
                    self.state = State::Moof(left - take as u64);
                    self.state_done()?;
                }
                State::Skip(left) => {
                    let take = left.map_or(data.len(), |l| {
                        usize::try_from(l).unwrap_or(usize::MAX).min(data.len())
                    });
                    self.capture(&data[..take]);
                    self.advance(&mut data, take);
                    self.state = State::Skip(left.map(|l| l - take as u64));
                    self.state_done()?;
                }
            }
        }
        Ok(())
    }

    fn advance(&mut self, data: &mut &[u8], n: usize) {
        *data = data.get(n..).unwrap_or(&[]);
        self.pos = self.pos.saturating_add(n as u64);
    }

    /// Leave a finished box.
    fn state_done(&mut self) -> Result<(), Fmp4Error> {
        match self.state {
            State::Moof(0) => {
                let moof = std::mem::take(&mut self.moof);
                let result = self.parse_moof(&moof);
                self.moof = moof;
                self.state = State::Header;
                result
            }
            State::Skip(Some(0)) => {
                self.state = State::Header;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The part is complete: inspect what is left and check it ended on a box boundary.
    pub fn finish(&mut self) -> Result<(), Fmp4Error> {
        while !self.samples.is_empty() {
            self.finish_sample();
        }
        match self.state {
            State::Header if self.header.is_empty() => Ok(()),
            State::Skip(None) => Ok(()),
            _ => Err(Fmp4Error::Truncated),
        }
    }

    fn finish_sample(&mut self) {
        self.samples.pop_front();
        if let Some(stamp) = stamp_in_sample(&self.prefix, &self.track) {
            self.stamps.push(stamp);
        }
        self.prefix.clear();
    }

    /// `data` are the bytes at `self.pos`: copy what falls into the front samples' prefixes.
    fn capture(&mut self, data: &[u8]) {
        let (from, to) = (self.pos, self.pos.saturating_add(data.len() as u64));
        while let Some(&(start, len)) = self.samples.front() {
            let end = start.saturating_add(len.min(SAMPLE_PREFIX as u64));
            if end <= from {
                // Passed (or pointed before the data): inspect what was captured.
                self.finish_sample();
                continue;
            }
            if start >= to {
                break;
            }
            let (a, b) = (start.max(from) - from, end.min(to) - from);
            if let Some(bytes) = data.get(a as usize..b as usize) {
                self.prefix.extend_from_slice(bytes);
            }
            if end <= to {
                self.finish_sample();
            } else {
                break;
            }
        }
    }

    /// Queue the video samples a `moof` announces.
    fn parse_moof(&mut self, moof: &[u8]) -> Result<(), Fmp4Error> {
        for item in boxes(moof) {
            let (kind, traf) = item?;
            if &kind == b"traf" {
                self.parse_traf(traf)?;
            }
        }
        Ok(())
    }

    fn parse_traf(&mut self, traf: &[u8]) -> Result<(), Fmp4Error> {
        let bad = |what| Fmp4Error::Malformed(what);
        let tfhd = child(traf, b"tfhd")?.ok_or(bad("traf without tfhd"))?;
        let flags = be(tfhd, 1, 3).ok_or(bad("tfhd"))?;
        let track_id = be(tfhd, 4, 4).ok_or(bad("tfhd"))? as u32;
        if track_id != self.track.track_id {
            return Ok(());
        }
        let mut at = 8;
        let mut base = self.moof_start;
        if flags & 0x01 != 0 {
            base = be(tfhd, at, 8).ok_or(bad("tfhd"))?;
            at += 8;
        }
        for (flag, len) in [(0x02, 4), (0x08, 4)] {
            if flags & flag != 0 {
                at += len;
            }
        }
        let default_size =
            if flags & 0x10 != 0 { Some(be(tfhd, at, 4).ok_or(bad("tfhd"))?) } else { None };
        let mut cursor = base;
        for item in boxes(traf) {
            let (kind, trun) = item?;
            if &kind != b"trun" {
                continue;
            }
            let flags = be(trun, 1, 3).ok_or(bad("trun"))?;
            let count = be(trun, 4, 4).ok_or(bad("trun"))?;
            let mut at = 8;
            if flags & 0x01 != 0 {
                let offset = be(trun, at, 4).ok_or(bad("trun"))? as u32 as i32;
                cursor =
                    base.checked_add_signed(i64::from(offset)).ok_or(bad("trun data offset"))?;
                at += 4;
            }
            if flags & 0x04 != 0 {
                at += 4;
            }
            let fields = [0x100, 0x200, 0x400, 0x800].iter().filter(|&&f| flags & f != 0).count();
            let entry = 4 * fields;
            let needed = (count as usize).checked_mul(entry).ok_or(bad("trun"))?;
            if trun.len().saturating_sub(at) < needed {
                return Err(bad("trun shorter than its sample count"));
            }
            if self.video_samples.saturating_add(count) > MAX_SAMPLES as u64 {
                return Err(Fmp4Error::TooLarge("sample count"));
            }
            let size_at = usize::from(flags & 0x100 != 0) * 4;
            for i in 0..count as usize {
                let size = if flags & 0x200 != 0 {
                    be(trun, at + i * entry + size_at, 4).ok_or(bad("trun"))?
                } else {
                    default_size.ok_or(bad("no sample size"))?
                };
                self.samples.push_back((cursor, size));
                self.video_samples += 1;
                cursor = cursor.checked_add(size).ok_or(bad("sample size"))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "fmp4_tests.rs"]
mod tests;
