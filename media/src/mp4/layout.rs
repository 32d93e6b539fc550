//! [`Layout`]: the output file as a head buffer followed by ranges of the source files; byte
//! range lookup and a compact, versioned serialisation.

use std::ops::Range;

use bytes::Bytes;

use super::Mp4Error;

/// The progressive MP4: [`Layout::head`] (`ftyp`, `moov`, `mdat` header), then the pieces'
/// bytes in order (the `mdat` payload).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    head: Bytes,
    pieces: Vec<Piece>,
    /// End of each piece in the `mdat` payload: the running sum of their lengths.
    ends: Vec<u64>,
    len: u64,
    duration_s: f64,
}

/// A range of a source file; pieces follow each other in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The caller's index of the segment file (as given to
    /// [`Builder::push_segment`](super::Builder::push_segment)).
    pub source: usize,
    /// Offset in that file.
    pub offset: u64,
    pub len: u64,
}

/// Part of an output byte range: bytes of the head, or of a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slice {
    /// `layout.head()[range]`.
    Head(Range<usize>),
    /// `len` bytes of file `source` from `offset`.
    Source { source: usize, offset: u64, len: u64 },
}

/// Serialisation magic and version.
const MAGIC: &[u8; 4] = b"SLM4";
const VERSION: u8 = 1;

impl Layout {
    /// The layout of `head` then `pieces`. The builder keeps all sums far below 2^64.
    pub(super) fn new(head: Bytes, pieces: Vec<Piece>, duration_s: f64) -> Layout {
        let mut end = 0u64;
        let ends = pieces
            .iter()
            .map(|p| {
                end = end.saturating_add(p.len);
                end
            })
            .collect();
        Layout { len: (head.len() as u64).saturating_add(end), head, pieces, ends, duration_s }
    }

    /// `ftyp`, `moov` and the `mdat` header: the first bytes of the file.
    pub fn head(&self) -> &Bytes {
        &self.head
    }

    /// The source ranges that follow the head, in order.
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Length of the whole file (`Content-Length`).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never true for a built layout (the head alone is not empty).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Duration of the movie in seconds (millisecond precision).
    pub fn duration_s(&self) -> f64 {
        self.duration_s
    }

    /// What to send for the output byte range `start..end` (clamped to the file): the part
    /// of the head and the source sub-ranges, in order; nothing for an empty range.
    pub fn slices(&self, start: u64, end: u64) -> impl Iterator<Item = Slice> + '_ {
        let end = end.min(self.len);
        let start = start.min(end);
        let head_len = self.head.len() as u64;
        let head = (start < head_len)
            .then(|| Slice::Head(start as usize..end.min(head_len) as usize))
            .filter(|_| start < end);
        // The range within the mdat payload.
        let (s, e) = (start.max(head_len) - head_len, end.max(head_len) - head_len);
        let first = if s < e { self.ends.partition_point(|&x| x <= s) } else { self.pieces.len() };
        let pieces =
            self.pieces[first..].iter().zip(&self.ends[first..]).map_while(move |(p, &p_end)| {
                let p_start = p_end - p.len;
                (p_start < e).then(|| {
                    let (a, b) = (s.max(p_start), e.min(p_end));
                    Slice::Source { source: p.source, offset: p.offset + (a - p_start), len: b - a }
                })
            });
        head.into_iter().chain(pieces.filter(|s| !matches!(s, Slice::Source { len: 0, .. })))
    }

    /// Serialise (to store beside the recording): magic, version, length, duration, head and
    /// pieces as variable-length integers.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(32 + self.head.len() + self.pieces.len() * 10);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.duration_s.to_bits().to_be_bytes());
        put_varint(&mut out, self.head.len() as u64);
        out.extend_from_slice(&self.head);
        put_varint(&mut out, self.pieces.len() as u64);
        for p in &self.pieces {
            put_varint(&mut out, p.source as u64);
            put_varint(&mut out, p.offset);
            put_varint(&mut out, p.len);
        }
        Bytes::from(out)
    }

    /// Read back what [`Layout::encode`] wrote. Allocation is bounded by the input's size;
    /// a length that does not add up, trailing bytes or another version are errors.
    pub fn decode(b: &[u8]) -> Result<Layout, Mp4Error> {
        let mut r = Dec { b };
        if r.take(4)? != MAGIC {
            return Err(Mp4Error::Malformed("not a stored layout"));
        }
        if r.take(1)? != [VERSION] {
            return Err(Mp4Error::Unsupported("stored layout version"));
        }
        let len = r.u64()?;
        let duration_s = f64::from_bits(r.u64()?);
        if !duration_s.is_finite() || duration_s < 0.0 {
            return Err(Mp4Error::Malformed("layout duration"));
        }
        let head_len = usize::try_from(r.varint()?).map_err(|_| Mp4Error::Truncated("head"))?;
        let head = Bytes::copy_from_slice(r.take(head_len)?);
        let count = r.varint()?;
        // Each piece takes at least three bytes.
        if count > (r.b.len() / 3) as u64 {
            return Err(Mp4Error::Truncated("layout pieces"));
        }
        let mut pieces = Vec::with_capacity(count as usize);
        let mut total = head.len() as u64;
        for _ in 0..count {
            let source =
                usize::try_from(r.varint()?).map_err(|_| Mp4Error::Malformed("piece source"))?;
            let (offset, len) = (r.varint()?, r.varint()?);
            if offset.checked_add(len).is_none() {
                return Err(Mp4Error::Malformed("piece range"));
            }
            total = total.checked_add(len).ok_or(Mp4Error::Malformed("layout length"))?;
            pieces.push(Piece { source, offset, len });
        }
        if !r.b.is_empty() {
            return Err(Mp4Error::Malformed("trailing bytes after the layout"));
        }
        if total != len {
            return Err(Mp4Error::Malformed("layout length does not add up"));
        }
        Ok(Layout::new(head, pieces, duration_s))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        if n > self.b.len() {
            return Err(Mp4Error::Truncated("stored layout"));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, Mp4Error> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }

    /// LEB128, at most ten bytes, no bits beyond 64.
    fn varint(&mut self) -> Result<u64, Mp4Error> {
        let mut v = 0u64;
        for i in 0..10 {
            let byte = self.take(1)?[0];
            if i == 9 && byte > 1 {
                return Err(Mp4Error::Malformed("varint overflow"));
            }
            v |= u64::from(byte & 0x7F) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Mp4Error::Malformed("varint too long"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        let pieces = vec![
            Piece { source: 0, offset: 100, len: 10 },
            Piece { source: 0, offset: 300, len: 5 },
            Piece { source: 7, offset: 0, len: 1 << 40 },
        ];
        Layout::new(Bytes::from_static(b"HEADHEAD"), pieces, 12.5)
    }

    #[test]
    fn slices_cut_head_and_pieces() {
        let l = layout();
        assert_eq!(l.len(), 8 + 15 + (1 << 40));
        let all: Vec<Slice> = l.slices(6, 8 + 12).collect();
        assert_eq!(
            all,
            vec![
                Slice::Head(6..8),
                Slice::Source { source: 0, offset: 100, len: 10 },
                Slice::Source { source: 0, offset: 300, len: 2 },
            ]
        );
        let tail: Vec<Slice> = l.slices(8 + 14, u64::MAX).collect();
        assert_eq!(
            tail,
            vec![
                Slice::Source { source: 0, offset: 304, len: 1 },
                Slice::Source { source: 7, offset: 0, len: 1 << 40 },
            ]
        );
        assert_eq!(l.slices(5, 5).count(), 0);
        assert_eq!(l.slices(20, 3).count(), 0);
        assert_eq!(l.slices(l.len(), l.len() + 9).count(), 0);
        assert_eq!(l.slices(0, 3).collect::<Vec<_>>(), vec![Slice::Head(0..3)]);
    }

    #[test]
    fn encode_decode_round_trip_and_refusals() {
        let l = layout();
        let e = l.encode();
        assert_eq!(Layout::decode(&e).unwrap(), l);
        for n in 0..e.len() {
            assert!(Layout::decode(&e[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut long = e.to_vec();
        long.push(0);
        assert!(Layout::decode(&long).is_err());
        let mut other = e.to_vec();
        other[4] = 2;
        assert_eq!(Layout::decode(&other), Err(Mp4Error::Unsupported("stored layout version")));
        let mut wrong_len = e.to_vec();
        wrong_len[12] ^= 1;
        assert!(Layout::decode(&wrong_len).is_err());
        let mut d = Dec { b: &[0xFF; 10] };
        assert!(d.varint().is_err());
        let mut d = Dec { b: &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] };
        assert_eq!(d.varint(), Ok(u64::MAX));
    }
}
