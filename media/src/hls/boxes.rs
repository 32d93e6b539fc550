//! A tiny ISO-BMFF box writer: big-endian fields appended to a `Vec<u8>`, boxes opened with
//! [`BoxWriter::open`] and closed with [`BoxWriter::close`], which patches the 32-bit size.
//!
//! Only what the CMAF init and fragment writers need. Sizes are bounded by the segmenter's
//! byte limits (far below 4 GiB), so 32-bit box sizes always suffice; `close` saturates anyway.

/// Appends boxes and fields to an owned buffer.
#[derive(Debug, Default)]
pub(crate) struct BoxWriter {
    pub(crate) buf: Vec<u8>,
}

impl BoxWriter {
    pub(crate) fn with_capacity(n: usize) -> Self {
        BoxWriter { buf: Vec::with_capacity(n) }
    }

    /// Start a box of type `fourcc`; returns the position to pass to [`BoxWriter::close`].
    pub(crate) fn open(&mut self, fourcc: &[u8; 4]) -> usize {
        let pos = self.buf.len();
        self.u32(0);
        self.bytes(fourcc);
        pos
    }

    /// Start a full box (version and 24-bit flags after the header).
    pub(crate) fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
        let pos = self.open(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        pos
    }

    /// Finish the box opened at `pos`, writing its size.
    pub(crate) fn close(&mut self, pos: usize) {
        let size = u32::try_from(self.buf.len().saturating_sub(pos)).unwrap_or(u32::MAX);
        if let Some(dst) = self.buf.get_mut(pos..pos + 4) {
            dst.copy_from_slice(&size.to_be_bytes());
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u24(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes()[1..]);
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// The unity transformation matrix of `mvhd`/`tkhd`.
    pub(crate) fn matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }

    pub(crate) fn position(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sizes() {
        let mut w = BoxWriter::default();
        let a = w.open(b"moov");
        let b = w.open_full(b"mvhd", 1, 0x0102_0304);
        w.u16(7);
        w.close(b);
        w.close(a);
        assert_eq!(
            w.buf,
            [
                0, 0, 0, 22, b'm', b'o', b'o', b'v', 0, 0, 0, 14, b'm', b'v', b'h', b'd', 1, 2, 3,
                4, 0, 7
            ]
        );
    }
}
