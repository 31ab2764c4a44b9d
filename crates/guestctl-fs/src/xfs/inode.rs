//! The on-disk inode (`xfs_dinode`, big-endian): the core (v1/v2: 100 bytes with
//! `di_next_unlinked`; v3: 176 bytes with CRC, creation time, self-number and UUID) followed
//! by the literal area split between the data fork and the attribute fork at `di_forkoff`.

use std::ops::Range;
use std::sync::Arc;

use crate::bytes::{be16, be32, be64};
use crate::{Error, FileType, Result, Timestamp};

/// `IN`.
pub(crate) const DINODE_MAGIC: u16 = 0x494e;
/// Offset of the v3 inode CRC.
pub(crate) const DINODE_CRC_OFF: usize = 0x64;

/// Fork formats (`di_format`, `di_aformat`).
pub(crate) mod format {
    pub const DEV: u8 = 0;
    pub const LOCAL: u8 = 1;
    pub const EXTENTS: u8 = 2;
    pub const BTREE: u8 = 3;
}

/// `di_flags` bits.
pub(crate) mod flags {
    pub const REALTIME: u16 = 0x0001;
}

/// `di_flags2` bits.
pub(crate) mod flags2 {
    pub const BIGTIME: u64 = 0x0008;
    pub const NREXT64: u64 = 0x0010;
}

/// Which fork of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Fork {
    Data,
    Attr,
}

impl Fork {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fork::Data => "data fork",
            Fork::Attr => "attribute fork",
        }
    }
}

/// A parsed inode: the core fields plus copies of both forks' bytes.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub ino: u64,
    /// Byte offset of the inode on the device.
    pub offset: u64,
    pub mode: u16,
    pub format: u8,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub crtime: Option<Timestamp>,
    pub size: u64,
    pub nblocks: u64,
    pub nextents: u64,
    pub anextents: u64,
    pub aformat: u8,
    pub flags: u16,
    /// The buffer holding the inode (a cached block or inode chunk) and where the two forks
    /// are in it: forks are read in place, never copied.
    buf: Arc<Vec<u8>>,
    dfork: Range<usize>,
    afork: Range<usize>,
}

fn corrupt(ino: u64, offset: u64, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into())
        .structure("xfs inode")
        .inode(ino)
        .at(offset)
}

/// An XFS timestamp: `bigtime` = nanoseconds since 1901-12-13T20:45:52Z, else seconds (i32)
/// and nanoseconds (u32).
pub(crate) fn timestamp(b: &[u8], off: usize, bigtime: bool) -> Timestamp {
    if bigtime {
        let ns = be64(b, off);
        Timestamp {
            secs: (ns / 1_000_000_000) as i64 - (1i64 << 31),
            nanos: (ns % 1_000_000_000) as u32,
        }
    } else {
        Timestamp {
            secs: i64::from(be32(b, off) as i32),
            nanos: be32(b, off + 4).min(999_999_999),
        }
    }
}

impl Inode {
    /// Size of the core for `version`.
    pub(crate) fn core_size(version: u8) -> usize {
        if version >= 3 {
            176
        } else {
            100
        }
    }

    /// Parses inode `ino`, the `len` bytes at `at` of `buf`, found at device byte `offset`.
    /// `v5`: the filesystem has CRCs (inodes must be version 3); `meta_uuid` is checked then.
    /// The CRC is verified by the caller (it knows whether the bytes came from the log).
    pub(crate) fn parse(
        buf: &Arc<Vec<u8>>,
        at: usize,
        len: usize,
        ino: u64,
        offset: u64,
        v5: bool,
        meta_uuid: &[u8; 16],
    ) -> Result<Inode> {
        let Some(raw) = buf.get(at..at.saturating_add(len)) else {
            return Err(corrupt(ino, offset, "inode outside its buffer"));
        };
        if raw.len() < 256 {
            return Err(corrupt(ino, offset, "inode shorter than 256 bytes"));
        }
        let magic = be16(raw, 0);
        if magic != DINODE_MAGIC {
            return Err(corrupt(
                ino,
                offset,
                format!("bad inode magic {magic:#06x}"),
            ));
        }
        let version = raw[4];
        let want = if v5 { 3..=3 } else { 1..=2 };
        if !want.contains(&version) {
            return Err(corrupt(
                ino,
                offset,
                format!(
                    "inode version {version} on a v{} filesystem",
                    if v5 { 5 } else { 4 }
                ),
            ));
        }
        let core = Self::core_size(version);
        if raw.len() <= core {
            return Err(corrupt(ino, offset, "inode smaller than its core"));
        }
        if version == 3 {
            let self_ino = be64(raw, 0x98);
            if self_ino != ino {
                return Err(corrupt(
                    ino,
                    offset,
                    format!("inode records itself as number {self_ino}"),
                ));
            }
            if &raw[0xA0..0xB0] != meta_uuid {
                return Err(corrupt(ino, offset, "inode UUID is not the filesystem's"));
            }
        }
        let flags2 = if version == 3 { be64(raw, 0x78) } else { 0 };
        let bigtime = flags2 & flags2::BIGTIME != 0;
        let nrext64 = flags2 & flags2::NREXT64 != 0;
        let (nextents, anextents) = if nrext64 {
            (be64(raw, 0x18), u64::from(be32(raw, 0x4C)))
        } else {
            (u64::from(be32(raw, 0x4C)), u64::from(be16(raw, 0x50)))
        };
        let nlink = if version == 1 {
            u32::from(be16(raw, 0x06))
        } else {
            be32(raw, 0x10)
        };
        let forkoff = usize::from(raw[0x52]) * 8;
        let lit = raw.len() - core;
        let (dsize, asize) = if forkoff == 0 {
            (lit, 0)
        } else if forkoff >= lit {
            return Err(corrupt(
                ino,
                offset,
                format!("attribute fork offset {forkoff} is beyond the {lit}-byte literal area"),
            ));
        } else {
            (forkoff, lit - forkoff)
        };
        let aformat = raw[0x53];
        let dfork = at + core..at + core + dsize;
        let afork = at + core + dsize..at + core + dsize + asize;
        Ok(Inode {
            ino,
            offset,
            mode: be16(raw, 0x02),
            format: raw[5],
            uid: be32(raw, 0x08),
            gid: be32(raw, 0x0C),
            nlink,
            atime: timestamp(raw, 0x20, bigtime),
            mtime: timestamp(raw, 0x28, bigtime),
            ctime: timestamp(raw, 0x30, bigtime),
            crtime: (version == 3).then(|| timestamp(raw, 0x90, bigtime)),
            size: be64(raw, 0x38),
            nblocks: be64(raw, 0x40),
            nextents,
            anextents,
            aformat,
            flags: be16(raw, 0x5A),
            buf: buf.clone(),
            dfork,
            afork,
        })
    }

    pub(crate) fn file_type(&self) -> FileType {
        FileType::from_mode(u32::from(self.mode))
    }

    pub(crate) fn data_fork(&self) -> &[u8] {
        &self.buf[self.dfork.clone()]
    }

    pub(crate) fn attr_fork(&self) -> &[u8] {
        &self.buf[self.afork.clone()]
    }

    pub(crate) fn has_attr_fork(&self) -> bool {
        !self.afork.is_empty()
    }

    /// The bytes, format and extent count of `fork`.
    pub(crate) fn fork(&self, fork: Fork) -> (&[u8], u8, u64) {
        match fork {
            Fork::Data => (self.data_fork(), self.format, self.nextents),
            Fork::Attr => (self.attr_fork(), self.aformat, self.anextents),
        }
    }

    /// `(major, minor)` of a device inode (Linux's "sysv" encoding of `xfs_dev_t`).
    pub(crate) fn rdev(&self) -> (u32, u32) {
        if self.format != format::DEV {
            return (0, 0);
        }
        let d = be32(self.data_fork(), 0);
        ((d >> 18) & 0x3fff, d & 0x3ffff)
    }

    pub(crate) fn is_realtime(&self) -> bool {
        self.flags & flags::REALTIME != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_v3(ino: u64) -> Vec<u8> {
        let mut r = vec![0u8; 512];
        r[0..2].copy_from_slice(&DINODE_MAGIC.to_be_bytes());
        r[2..4].copy_from_slice(&0o100644u16.to_be_bytes());
        r[4] = 3;
        r[5] = format::EXTENTS;
        r[0x10..0x14].copy_from_slice(&1u32.to_be_bytes());
        r[0x38..0x40].copy_from_slice(&5000u64.to_be_bytes());
        r[0x52] = 32; // forkoff: 256 bytes of data fork
        r[0x53] = format::LOCAL;
        r[0x78..0x80].copy_from_slice(&flags2::BIGTIME.to_be_bytes());
        // mtime = epoch + 1.5 s in bigtime
        let ns = ((1u64 << 31) + 1) * 1_000_000_000 + 500_000_000;
        r[0x28..0x30].copy_from_slice(&ns.to_be_bytes());
        r[0x98..0xA0].copy_from_slice(&ino.to_be_bytes());
        r
    }

    #[test]
    fn parses_v3() {
        let r = raw_v3(131);
        let i = Inode::parse(&Arc::new(r), 0, 512, 131, 0, true, &[0; 16]).expect("parse");
        assert_eq!(i.size, 5000);
        assert_eq!(i.file_type(), FileType::Regular);
        assert_eq!(i.data_fork().len(), 256);
        assert_eq!(i.attr_fork().len(), 512 - 176 - 256);
        assert_eq!(
            i.mtime,
            Timestamp {
                secs: 1,
                nanos: 500_000_000
            }
        );
    }

    #[test]
    fn rejects_wrong_self_number_and_forkoff() {
        let r = raw_v3(131);
        let a = Arc::new(r);
        assert!(Inode::parse(&a, 0, 512, 132, 0, true, &[0; 16]).is_err());
        let mut r = raw_v3(131);
        r[0x52] = 200;
        let a = Arc::new(r);
        assert!(Inode::parse(&a, 0, 512, 131, 0, true, &[0; 16]).is_err());
        assert!(Inode::parse(&a, 0, 100, 131, 0, true, &[0; 16]).is_err());
        assert!(Inode::parse(&a, 400, 512, 131, 0, true, &[0; 16]).is_err());
    }

    #[test]
    fn old_timestamps_are_signed() {
        let mut b = [0u8; 8];
        b[0..4].copy_from_slice(&(-100i32 as u32).to_be_bytes());
        assert_eq!(timestamp(&b, 0, false).secs, -100);
    }
}
