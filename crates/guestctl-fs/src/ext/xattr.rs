//! Extended attribute entries, in the inode's extra space and in a separate block. I/O-free:
//! the caller fetches values stored in other inodes (`ea_inode`).

use crate::bytes::{le16, le32};

/// Magic of the in-inode area and of xattr blocks.
pub(crate) const MAGIC: u32 = 0xEA02_0000;
/// Size of the xattr block header.
pub(crate) const BLOCK_HEADER: usize = 32;

/// Where an attribute's value lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// Bytes inside the region parsed.
    Inline(Vec<u8>),
    /// In the data of another inode (`ea_inode` feature): `(inode, size)`.
    Inode(u64, u64),
}

/// One raw entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub index: u8,
    pub name: Vec<u8>,
    pub value: Value,
}

/// The full name of an entry (`user.foo`, `system.posix_acl_access`, ...).
pub(crate) fn full_name(index: u8, name: &[u8]) -> Vec<u8> {
    let prefix: &[u8] = match index {
        1 => b"user.",
        2 => b"system.posix_acl_access",
        3 => b"system.posix_acl_default",
        4 => b"trusted.",
        6 => b"security.",
        7 => b"system.",
        8 => b"system.richacl",
        _ => b"",
    };
    let mut v = prefix.to_vec();
    if index == 0 || prefix.is_empty() {
        v = format!("unknown{index}.").into_bytes();
    }
    v.extend_from_slice(name);
    v
}

/// Parses entries starting at `entries_off` of `region`; value offsets are relative to
/// `value_base`. At most `max_value` bytes per value.
pub(crate) fn parse(
    region: &[u8],
    entries_off: usize,
    value_base: usize,
    max_value: u64,
) -> Result<Vec<Entry>, (usize, String)> {
    let mut out = Vec::new();
    let mut off = entries_off;
    loop {
        if off + 4 > region.len() {
            // The list may end exactly at the end of the in-inode area.
            break;
        }
        if le32(region, off) == 0 {
            break;
        }
        if off + 16 > region.len() {
            return Err((off, "xattr entry runs past the end of its area".into()));
        }
        let name_len = usize::from(region[off]);
        let index = region[off + 1];
        let value_offs = usize::from(le16(region, off + 2));
        let value_inum = u64::from(le32(region, off + 4));
        let value_size = u64::from(le32(region, off + 8));
        let name_end = off + 16 + name_len;
        if name_end > region.len() {
            return Err((off, "xattr name runs past the end of its area".into()));
        }
        if value_size > max_value {
            return Err((
                off,
                format!("xattr value of {value_size} bytes is too large"),
            ));
        }
        let name = region[off + 16..name_end].to_vec();
        let value = if value_inum != 0 {
            Value::Inode(value_inum, value_size)
        } else {
            let start = value_base + value_offs;
            let end = start + value_size as usize;
            if end > region.len() {
                return Err((
                    off,
                    format!("xattr value at {start}+{value_size} runs past its area"),
                ));
            }
            Value::Inline(region[start..end].to_vec())
        };
        out.push(Entry { index, name, value });
        off = (name_end + 3) & !3;
        if out.len() > 65536 {
            return Err((off, "too many xattr entries".into()));
        }
    }
    Ok(out)
}

/// Converts an ext4 on-disk POSIX ACL (version 1, short entries for the owner/group/mask/other
/// tags) into the `posix_acl_xattr` form (version 2) that `getfattr` shows.
pub(crate) fn acl_to_xattr(disk: &[u8]) -> Option<Vec<u8>> {
    if disk.len() < 4 || le32(disk, 0) != 1 {
        return None;
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    let mut off = 4;
    while off < disk.len() {
        let tag = le16(disk, off);
        let perm = le16(disk, off + 2);
        let (id, len) = match tag {
            0x01 | 0x04 | 0x10 | 0x20 => (u32::MAX, 4),
            0x02 | 0x08 => (le32(disk, off + 4), 8),
            _ => return None,
        };
        if off + len > disk.len() {
            return None;
        }
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
        off += len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inline_entries() {
        // one entry: user.k = "v1"
        let mut r = vec![0u8; 64];
        r[0] = 1; // name len
        r[1] = 1; // user
        r[2..4].copy_from_slice(&40u16.to_le_bytes());
        r[8..12].copy_from_slice(&2u32.to_le_bytes());
        r[16] = b'k';
        r[40] = b'v';
        r[41] = b'1';
        let e = parse(&r, 0, 0, 1 << 20).expect("parse");
        assert_eq!(e.len(), 1);
        assert_eq!(full_name(e[0].index, &e[0].name), b"user.k");
        assert_eq!(e[0].value, Value::Inline(b"v1".to_vec()));
        r[2..4].copy_from_slice(&63u16.to_le_bytes());
        assert!(parse(&r, 0, 0, 1 << 20).is_err());
    }

    #[test]
    fn acl_conversion() {
        let mut d = 1u32.to_le_bytes().to_vec();
        d.extend_from_slice(&[1, 0, 6, 0]); // user_obj rw
        d.extend_from_slice(&[2, 0, 4, 0, 0xe8, 3, 0, 0]); // user 1000 r
        d.extend_from_slice(&[0x20, 0, 4, 0]); // other r
        let x = acl_to_xattr(&d).expect("acl");
        assert_eq!(x.len(), 4 + 3 * 8);
        assert_eq!(&x[..4], &2u32.to_le_bytes());
        assert_eq!(&x[12..20], &[2, 0, 4, 0, 0xe8, 3, 0, 0]);
        assert!(acl_to_xattr(&[9, 9]).is_none());
    }
}
