//! Bounds-checked reading of ISO-BMFF: a box iterator and a big-endian field cursor.

use super::Mp4Error;

/// One box found by [`Boxes`].
#[derive(Debug, Clone, Copy)]
pub(super) struct BoxRef<'a> {
    pub kind: [u8; 4],
    /// The whole box, header included.
    pub raw: &'a [u8],
    /// The payload (after the size, type and, for `uuid`, nothing more: the user type stays
    /// in the payload).
    pub body: &'a [u8],
    /// Offset of the box's first byte in the file (the iterator's `base` plus its position).
    pub start: u64,
    /// Offset of the payload's first byte in the file.
    pub body_start: u64,
}

impl BoxRef<'_> {
    /// Offset just past the box in the file.
    pub fn end(&self) -> u64 {
        self.start + self.raw.len() as u64
    }
}

/// The boxes laid end to end in a buffer. Yields an error (once, then stops) for a header
/// that is cut short or a size that is too small or runs past the buffer.
#[derive(Debug, Clone)]
pub(super) struct Boxes<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    done: bool,
}

impl<'a> Boxes<'a> {
    /// Boxes of `buf`, which starts at offset `base` of its file.
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Boxes { buf, pos: 0, base, done: false }
    }

    /// The child boxes of `parent`.
    pub fn children(parent: &BoxRef<'a>) -> Self {
        Boxes::new(parent.body, parent.body_start)
    }

    fn next_box(&mut self) -> Result<BoxRef<'a>, Mp4Error> {
        let rest = &self.buf[self.pos..];
        let mut r = Reader::new(rest, "box header");
        let size32 = r.u32()?;
        let kind = r.fourcc()?;
        let (size, header) = match size32 {
            0 => (rest.len() as u64, 8),
            1 => (r.u64()?, 16),
            n => (u64::from(n), 8),
        };
        if size < header as u64 {
            return Err(Mp4Error::Malformed("box size smaller than its header"));
        }
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= rest.len())
            .ok_or(Mp4Error::Truncated("box runs past the end of its container"))?;
        let start = self.base + self.pos as u64;
        self.pos += size;
        Ok(BoxRef {
            kind,
            raw: &rest[..size],
            body: &rest[header..size],
            start,
            body_start: start + header as u64,
        })
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<BoxRef<'a>, Mp4Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.buf.len() {
            return None;
        }
        let item = self.next_box();
        self.done = item.is_err();
        Some(item)
    }
}

/// The only child of `parent` of type `kind`: an error when absent or repeated.
pub(super) fn only_child<'a>(
    parent: &BoxRef<'a>,
    kind: &[u8; 4],
    what: &'static str,
) -> Result<BoxRef<'a>, Mp4Error> {
    let mut found = None;
    for b in Boxes::children(parent) {
        let b = b?;
        if &b.kind == kind {
            if found.is_some() {
                return Err(Mp4Error::Malformed(what));
            }
            found = Some(b);
        }
    }
    found.ok_or(Mp4Error::Malformed(what))
}

/// A cursor over big-endian fields; running out is [`Mp4Error::Truncated`] naming `what`.
#[derive(Debug, Clone)]
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        let out = self
            .buf
            .get(self.pos..self.pos.saturating_add(n))
            .ok_or(Mp4Error::Truncated(self.what))?;
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Mp4Error> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub fn skip(&mut self, n: usize) -> Result<(), Mp4Error> {
        self.bytes(n).map(|_| ())
    }
    pub fn u16(&mut self) -> Result<u16, Mp4Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, Mp4Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, Mp4Error> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, Mp4Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn fourcc(&mut self) -> Result<[u8; 4], Mp4Error> {
        self.array()
    }

    /// A full box header: (version, flags).
    pub fn full_header(&mut self) -> Result<(u8, u32), Mp4Error> {
        let v = self.u32()?;
        Ok(((v >> 24) as u8, v & 0x00FF_FFFF))
    }

    /// A version-dependent time field: 64 bits in version 1, else 32.
    pub fn time(&mut self, version: u8) -> Result<u64, Mp4Error> {
        if version == 1 {
            self.u64()
        } else {
            self.u32().map(u64::from)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_largesize_to_end_and_errors() {
        let mut b = vec![0, 0, 0, 10, b'f', b'r', b'e', b'e', 1, 2];
        b.extend_from_slice(&[0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 0, 0, 0, 0, 17, 9]);
        b.extend_from_slice(&[0, 0, 0, 0, b's', b'k', b'i', b'p', 7, 7]);
        let boxes: Vec<BoxRef> = Boxes::new(&b, 100).collect::<Result<_, _>>().unwrap();
        assert_eq!(boxes.len(), 3);
        assert_eq!((&boxes[0].kind, boxes[0].body, boxes[0].start), (b"free", &[1u8, 2][..], 100));
        assert_eq!(
            (&boxes[1].kind, boxes[1].body, boxes[1].body_start),
            (b"mdat", &[9u8][..], 126)
        );
        assert_eq!((&boxes[2].kind, boxes[2].body, boxes[2].end()), (b"skip", &[7u8, 7][..], 137));
        for bad in [&[0, 0, 0, 7, b'f', b'r', b'e', b'e'][..], &[0, 0, 0, 9, b'f', b'r', b'e'][..]]
        {
            let mut it = Boxes::new(bad, 0);
            assert!(it.next().unwrap().is_err());
            assert!(it.next().is_none());
        }
        let mut it = Boxes::new(&[0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0, 0, 0, 0, 0, 0, 8], 0);
        assert!(matches!(it.next(), Some(Err(Mp4Error::Malformed(_)))));
    }
}
