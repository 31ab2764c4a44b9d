//! XFS metadata CRCs: standard CRC-32C of the whole structure with its 4-byte CRC field
//! counted as zero, stored little-endian at the field.

/// The CRC of `buf` with the 4 bytes at `crc_off` taken as zero.
pub(crate) fn compute(buf: &[u8], crc_off: usize) -> u32 {
    if crc_off + 4 > buf.len() {
        return crc32c::crc32c(buf);
    }
    let c = crc32c::crc32c(&buf[..crc_off]);
    let c = crc32c::crc32c_append(c, &[0; 4]);
    crc32c::crc32c_append(c, &buf[crc_off + 4..])
}

/// Checks the CRC stored at `crc_off`: `Err((stored, computed))` on a mismatch.
pub(crate) fn verify(buf: &[u8], crc_off: usize) -> Result<(), (u32, u32)> {
    let stored = crate::bytes::le32(buf, crc_off);
    let computed = compute(buf, crc_off);
    if stored == computed {
        Ok(())
    } else {
        Err((stored, computed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        let mut b = vec![7u8; 64];
        let c = compute(&b, 8);
        b[8..12].copy_from_slice(&c.to_le_bytes());
        assert!(verify(&b, 8).is_ok());
        b[20] ^= 1;
        assert!(verify(&b, 8).is_err());
    }
}
