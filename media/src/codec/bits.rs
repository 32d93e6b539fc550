//! A big-endian bit reader for codec headers (SPS, sequence header OBUs, AudioSpecificConfig),
//! with Exp-Golomb codes and H.264/H.265 emulation-prevention removal.

use super::CodecError;

/// Reads bits MSB-first from a byte slice. Every read is bounds-checked; running past the end
/// yields `CodecError::Malformed(what)`.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// `what` names the structure for error messages.
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        BitReader { data, pos: 0, what }
    }

    fn err(&self) -> CodecError {
        CodecError::Malformed(self.what)
    }

    pub(crate) fn bit(&mut self) -> Result<bool, CodecError> {
        let byte = *self.data.get(self.pos / 8).ok_or_else(|| self.err())?;
        let b = (byte >> (7 - self.pos % 8)) & 1;
        self.pos += 1;
        Ok(b == 1)
    }

    /// Read `n` (at most 32) bits as an unsigned number.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Ok(v as u32)
    }

    /// Skip `n` bits.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), CodecError> {
        let end = self.pos.checked_add(n).ok_or_else(|| self.err())?;
        if end > self.data.len().saturating_mul(8) {
            return Err(self.err());
        }
        self.pos = end;
        Ok(())
    }

    /// Unsigned Exp-Golomb code `ue(v)` (values up to 2^32 - 2).
    pub(crate) fn ue(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(self.err());
            }
        }
        let rest = self.bits(zeros)?;
        // zeros <= 31 so (1 << zeros) - 1 + rest fits in u32 except for zeros == 31 with a
        // large suffix; use u64 and reject overflow.
        let v = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(v).map_err(|_| self.err())
    }

    /// AV1 `uvlc()`.
    pub(crate) fn uvlc(&mut self) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros >= 32 {
                return Err(self.err());
            }
        }
        let rest = self.bits(zeros)?;
        let v = (1u64 << zeros) - 1 + u64::from(rest);
        u32::try_from(v).map_err(|_| self.err())
    }
}

/// Remove emulation-prevention bytes (`00 00 03` -> `00 00`) from a NAL unit payload.
pub(crate) fn unescape_rbsp(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bits_and_exp_golomb() {
        // 1 | 010 | 011 | 00100 | 0000 (pad)  -> ue: 0, 1, 2, 3
        let data = [0b1010_0110, 0b0100_0000];
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.bits(4).unwrap(), 0);
        assert_eq!(r.bit(), Err(CodecError::Malformed("t")));
        let mut r = BitReader::new(&[0xAB, 0xCD, 0xEF, 0x01, 0x23], "t");
        assert_eq!(r.bits(4).unwrap(), 0xA);
        assert_eq!(r.bits(32).unwrap(), 0xBCDE_F012);
        assert!(r.skip(4).is_ok());
        assert!(r.skip(1).is_err());
    }

    #[test]
    fn exp_golomb_never_overflows() {
        let zeros = [0u8; 8];
        assert!(BitReader::new(&zeros, "t").ue().is_err());
        // 31 zeros, a one, then 31 ones: 2^31 - 1 + 2^31 - 1 = 2^32 - 2.
        let mut data = vec![0u8, 0, 0, 1];
        data.extend_from_slice(&[0xFF; 4]);
        assert_eq!(BitReader::new(&data, "t").ue().unwrap(), u32::MAX - 1);
        assert!(BitReader::new(&[0xFF; 1], "t").skip(usize::MAX).is_err());
    }

    #[test]
    fn unescapes_emulation_prevention() {
        assert_eq!(unescape_rbsp(&[0x12, 0, 0, 3, 0, 0x86]), vec![0x12, 0, 0, 0, 0x86]);
        assert_eq!(unescape_rbsp(&[0, 0, 3, 0, 0, 3, 1]), vec![0, 0, 0, 0, 1]);
        assert_eq!(unescape_rbsp(&[0, 3, 0, 3]), vec![0, 3, 0, 3]);
    }
}
