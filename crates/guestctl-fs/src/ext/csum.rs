//! The checksums of ext4 metadata: crc32c in the kernel's "raw" convention (no final
//! inversion, the seed is the running value) and the crc16 of `gdt_csum` group descriptors.

/// The kernel's `crc32c(seed, data)`: the running CRC without pre/post inversion.
#[inline]
pub(crate) fn crc32c_raw(seed: u32, data: &[u8]) -> u32 {
    !crc32c::crc32c_append(!seed, data)
}

const fn crc16_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u16;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xA001
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC16: [u16; 256] = crc16_table();

/// CRC-16 (polynomial 0x8005, reflected), as e2fsprogs' `ext2fs_crc16`.
pub(crate) fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &b in data {
        crc = (crc >> 8) ^ CRC16[usize::from((crc ^ u16::from(b)) as u8)];
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_raw_matches_standard() {
        // Standard CRC-32C of "123456789" is 0xE3069283 = !raw(!0, data).
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
        // Chaining works piecewise.
        let a = crc32c_raw(0x1234, b"1234");
        assert_eq!(crc32c_raw(a, b"56789"), crc32c_raw(0x1234, b"123456789"));
    }

    #[test]
    fn crc16_arc_check_value() {
        // CRC-16/ARC of "123456789" is 0xBB3D (init 0).
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
    }
}
