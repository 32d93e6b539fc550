//! CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor): the CRC
//! of PSI sections. Bitwise, table-free: a section is at most a few hundred bytes and is
//! written twice per segment.

/// CRC-32/MPEG-2 of `data`. A section followed by its CRC has a CRC of 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc: u32 = 0xFFFF_FFFF;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_check_value() {
        // The CRC catalogue's check value for CRC-32/MPEG-2.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
        assert_eq!(crc32_mpeg2(b""), 0xFFFF_FFFF);
    }

    #[test]
    fn section_with_its_crc_checks_to_zero() {
        let mut s = b"\x00\xb0\x0d\x00\x01\xc1\x00\x00\x00\x01\xf0\x00".to_vec();
        let crc = crc32_mpeg2(&s);
        s.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(crc32_mpeg2(&s), 0);
    }
}
