//! Inodes: parsed from their on-disk bytes (I/O-free), with the metadata_csum check.

use super::csum::crc32c_raw;
use crate::bytes::{le16, le32};
use crate::{FileType, Timestamp};

pub(crate) mod flags {
    pub const ENCRYPT: u32 = 0x800;
    pub const INDEX: u32 = 0x1000;
    pub const HUGE_FILE: u32 = 0x40000;
    pub const EXTENTS: u32 = 0x80000;
    pub const EA_INODE: u32 = 0x200000;
    pub const INLINE_DATA: u32 = 0x1000_0000;
    pub const CASEFOLD: u32 = 0x4000_0000;
}

/// The 60 bytes of `i_block`.
pub(crate) const I_BLOCK_LEN: usize = 60;

/// One parsed inode.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub ino: u64,
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub links: u16,
    /// `i_blocks` in 512-byte units (already scaled for huge files).
    pub blocks_512: u64,
    pub flags: u32,
    pub i_block: [u8; I_BLOCK_LEN],
    pub generation: u32,
    pub file_acl: u64,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    pub mtime: Timestamp,
    pub crtime: Option<Timestamp>,
    /// Offset of the in-inode extended attribute area (`128 + i_extra_isize`), if any.
    pub xattr_area: Option<usize>,
    /// The raw inode bytes (for in-inode xattrs).
    pub raw: Vec<u8>,
}

fn time(b: &[u8], lo: usize, extra: Option<usize>) -> Timestamp {
    let secs = i64::from(le32(b, lo) as i32);
    match extra {
        Some(x) => {
            let e = le32(b, x);
            Timestamp {
                secs: secs + (i64::from(e & 3) << 32),
                nanos: (e >> 2).min(999_999_999),
            }
        }
        None => Timestamp { secs, nanos: 0 },
    }
}

impl Inode {
    /// Parses `raw` (`inode_size` bytes). `huge_file` is the filesystem's ro_compat flag.
    /// Returns a description of what is wrong when the extra-size field is impossible.
    pub(crate) fn parse(
        ino: u64,
        raw: &[u8],
        huge_file: bool,
        block_size: u32,
    ) -> Result<Inode, String> {
        if raw.len() < 128 {
            return Err(format!("inode record is {} bytes", raw.len()));
        }
        let extra = if raw.len() > 128 {
            let e = usize::from(le16(raw, 0x80));
            if 128 + e > raw.len() || e % 4 != 0 {
                return Err(format!(
                    "i_extra_isize {e} does not fit a {}-byte inode",
                    raw.len()
                ));
            }
            e
        } else {
            0
        };
        // A field of the large inode exists when it lies inside 128 + i_extra_isize.
        let has = |off: usize, len: usize| off + len <= 128 + extra;
        let flags = le32(raw, 0x20);
        let blocks_lo = u64::from(le32(raw, 0x1C));
        let blocks_hi = u64::from(le16(raw, 0x74));
        // Without huge_file only the low 32 bits count; with it, flagged inodes count in
        // filesystem blocks instead of 512-byte sectors.
        let blocks = if !huge_file {
            blocks_lo
        } else if flags & flags::HUGE_FILE != 0 {
            (blocks_lo | (blocks_hi << 32)).saturating_mul(u64::from(block_size / 512))
        } else {
            blocks_lo | (blocks_hi << 32)
        };
        let mut i_block = [0u8; I_BLOCK_LEN];
        i_block.copy_from_slice(&raw[0x28..0x28 + I_BLOCK_LEN]);
        Ok(Inode {
            ino,
            mode: le16(raw, 0x0),
            uid: u32::from(le16(raw, 0x2)) | (u32::from(le16(raw, 0x78)) << 16),
            gid: u32::from(le16(raw, 0x18)) | (u32::from(le16(raw, 0x7A)) << 16),
            size: u64::from(le32(raw, 0x4)) | (u64::from(le32(raw, 0x6C)) << 32),
            links: le16(raw, 0x1A),
            blocks_512: blocks,
            flags,
            i_block,
            generation: le32(raw, 0x64),
            file_acl: u64::from(le32(raw, 0x68)) | (u64::from(le16(raw, 0x76)) << 32),
            atime: time(raw, 0x8, has(0x8C, 4).then_some(0x8C)),
            ctime: time(raw, 0xC, has(0x84, 4).then_some(0x84)),
            mtime: time(raw, 0x10, has(0x88, 4).then_some(0x88)),
            crtime: has(0x90, 4).then(|| time(raw, 0x90, has(0x94, 4).then_some(0x94))),
            xattr_area: (raw.len() > 128 && 128 + extra + 4 <= raw.len()).then_some(128 + extra),
            raw: raw.to_vec(),
        })
    }

    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_mode(u32::from(self.mode))
    }
    pub(crate) fn has_flag(&self, f: u32) -> bool {
        self.flags & f != 0
    }
    /// `(major, minor)` of a device inode: old 16-bit encoding in `i_block[0]`, new in `[1]`.
    pub(crate) fn rdev(&self) -> (u32, u32) {
        let old = le32(&self.i_block, 0);
        if old != 0 {
            ((old >> 8) & 0xff, old & 0xff)
        } else {
            let new = le32(&self.i_block, 4);
            ((new >> 8) & 0xfff, (new & 0xff) | ((new >> 12) & 0xfff00))
        }
    }
}

/// The seed of the per-inode checksums (inode, extent blocks, directory blocks).
pub(crate) fn inode_seed(fs_seed: u32, ino: u64, generation: u32) -> u32 {
    let c = crc32c_raw(fs_seed, &(ino as u32).to_le_bytes());
    crc32c_raw(c, &generation.to_le_bytes())
}

/// Checks an inode's metadata_csum. `Ok(())` or `(stored, computed)`.
pub(crate) fn verify_inode_csum(fs_seed: u32, ino: u64, raw: &[u8]) -> Result<(), (u32, u32)> {
    let generation = le32(raw, 0x64);
    let seed = inode_seed(fs_seed, ino, generation);
    let zero = [0u8; 2];
    let mut c = crc32c_raw(seed, &raw[..0x7C]);
    c = crc32c_raw(c, &zero);
    c = crc32c_raw(c, &raw[0x7E..128]);
    let mut stored = u32::from(le16(raw, 0x7C));
    let mut full = false;
    if raw.len() > 128 {
        c = crc32c_raw(c, &raw[128..0x82]);
        let extra = usize::from(le16(raw, 0x80));
        let mut off = 0x82;
        if 128 + extra >= 0x84 {
            c = crc32c_raw(c, &zero);
            off = 0x84;
            stored |= u32::from(le16(raw, 0x82)) << 16;
            full = true;
        }
        c = crc32c_raw(c, &raw[off..]);
    }
    let computed = if full { c } else { c & 0xFFFF };
    if computed == stored {
        Ok(())
    } else {
        Err((stored, computed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_extra_epoch_and_nanos() {
        let mut raw = vec![0u8; 256];
        raw[0x80..0x82].copy_from_slice(&32u16.to_le_bytes());
        raw[0x10..0x14].copy_from_slice(&(-1i32).to_le_bytes()); // mtime lo
        raw[0x88..0x8C].copy_from_slice(&((5u32 << 2) | 1).to_le_bytes());
        let i = Inode::parse(12, &raw, false, 4096).expect("parse");
        assert_eq!(
            i.mtime,
            Timestamp {
                secs: -1 + (1 << 32),
                nanos: 5
            }
        );
        assert!(i.crtime.is_some());
        let mut small = raw.clone();
        small[0x80..0x82].copy_from_slice(&4u16.to_le_bytes());
        let i = Inode::parse(12, &small, false, 4096).expect("parse");
        assert_eq!(i.mtime, Timestamp { secs: -1, nanos: 0 });
        assert!(i.crtime.is_none());
    }

    #[test]
    fn bad_extra_isize_is_an_error() {
        let mut raw = vec![0u8; 256];
        raw[0x80..0x82].copy_from_slice(&200u16.to_le_bytes());
        assert!(Inode::parse(12, &raw, false, 4096).is_err());
    }

    #[test]
    fn device_numbers() {
        let mut raw = vec![0u8; 128];
        raw[0x28..0x2C].copy_from_slice(&0x0801u32.to_le_bytes());
        let i = Inode::parse(1, &raw, false, 4096).expect("parse");
        assert_eq!(i.rdev(), (8, 1));
        let mut raw = vec![0u8; 128];
        // major 259, minor 300 in the new encoding
        let new = (300 & 0xff) | (259 << 8) | ((300 & !0xff) << 12);
        raw[0x2C..0x30].copy_from_slice(&(new as u32).to_le_bytes());
        let i = Inode::parse(1, &raw, false, 4096).expect("parse");
        assert_eq!(i.rdev(), (259, 300));
    }
}
