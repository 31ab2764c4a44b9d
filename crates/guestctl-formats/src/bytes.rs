//! The one checked byte reader of the format parsers: fixed-width integers at a byte offset,
//! in the byte order the format states. Callers check the buffer length first (a parser
//! bounds its input once, then reads fields); an offset past the end panics in tests only
//! because such a call is a bug in the parser, never a property of the image.

fn array<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(off..off + N) {
        a.copy_from_slice(s);
    } else {
        debug_assert!(
            false,
            "read of {N} bytes at {off} past a buffer of {}",
            b.len()
        );
    }
    a
}

/// Big-endian u16 at `off`.
pub(crate) fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes(array(b, off))
}

/// Big-endian u32 at `off`.
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes(array(b, off))
}

/// Big-endian u64 at `off`.
pub(crate) fn be64(b: &[u8], off: usize) -> u64 {
    u64::from_be_bytes(array(b, off))
}

/// Little-endian u32 at `off`.
pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(array(b, off))
}

/// Little-endian u64 at `off`.
pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(array(b, off))
}

/// The 16 bytes at `off` (a UUID as stored).
pub(crate) fn bytes16(b: &[u8], off: usize) -> [u8; 16] {
    array(b, off)
}

/// A 16-byte UUID in the canonical 8-4-4-4-12 form, bytes in the order stored (VHD, big
/// endian) or with the first three fields little-endian (`mixed`: VirtualBox and Windows GUIDs).
pub(crate) fn uuid_string(u: &[u8; 16], mixed: bool) -> String {
    let mut b = *u;
    if mixed {
        b[0..4].reverse();
        b[4..6].reverse();
        b[6..8].reverse();
    }
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_uuids() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        assert_eq!(be16(&b, 1), 0x0203);
        assert_eq!(be32(&b, 0), 0x0102_0304);
        assert_eq!(le32(&b, 0), 0x0403_0201);
        assert_eq!(be64(&b, 8), 0x090a_0b0c_0d0e_0f10);
        assert_eq!(le64(&b, 0), 0x0807_0605_0403_0201);
        assert_eq!(
            uuid_string(&bytes16(&b, 0), false),
            "01020304-0506-0708-090a-0b0c0d0e0f10"
        );
        assert_eq!(
            uuid_string(&bytes16(&b, 0), true),
            "04030201-0605-0807-090a-0b0c0d0e0f10"
        );
    }
}
