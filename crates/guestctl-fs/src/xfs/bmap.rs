//! Block maps: the 128-bit extent records (`xfs_bmbt_rec`) of extent-format forks and of
//! the bmbt leaves, the in-inode btree root (`xfs_bmdr_block`) and the long-format bmbt
//! blocks (`BMAP`, v5 `BMA3` with CRC, owner and self-address).

use crate::bytes::{be16, be32, be64};

/// One mapping of a fork: file blocks `[off, off + len)` at filesystem block `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    /// First file block (in filesystem blocks).
    pub off: u64,
    /// First filesystem block (`agno << agblklog | agbno`).
    pub start: u64,
    /// Length in blocks.
    pub len: u64,
    /// Allocated but never written: reads as zeros.
    pub unwritten: bool,
}

/// Size of one extent record.
pub(crate) const REC_SIZE: usize = 16;
/// `BMAP`.
pub(crate) const BMAP_MAGIC: u32 = 0x424d_4150;
/// `BMA3`.
pub(crate) const BMAP_CRC_MAGIC: u32 = 0x424d_4133;
/// Header of a v4 long-format btree block.
pub(crate) const LBLOCK_LEN: usize = 24;
/// Header of a v5 long-format btree block.
pub(crate) const LBLOCK_CRC_LEN: usize = 72;
/// CRC offset in a v5 long-format block.
pub(crate) const LBLOCK_CRC_OFF: usize = 64;
/// The deepest bmbt a fork can have (the kernel's limit is lower for real forks).
pub(crate) const MAX_LEVELS: u16 = 9;

/// Decodes the record at `b[at..at + 16]`.
pub(crate) fn extent_rec(b: &[u8], at: usize) -> Extent {
    let l0 = be64(b, at);
    let l1 = be64(b, at + 8);
    Extent {
        unwritten: l0 >> 63 != 0,
        off: (l0 >> 9) & ((1u64 << 54) - 1),
        start: ((l0 & 0x1ff) << 43) | (l1 >> 21),
        len: l1 & ((1u64 << 21) - 1),
    }
}

/// The records of an extents-format fork (`n` of them, at most what fits).
pub(crate) fn fork_extents(fork: &[u8], n: u64) -> Option<Vec<Extent>> {
    let fits = (fork.len() / REC_SIZE) as u64;
    if n > fits {
        return None;
    }
    Some(
        (0..n as usize)
            .map(|i| extent_rec(fork, i * REC_SIZE))
            .collect(),
    )
}

/// A btree node's contents: for leaves the records, for interior nodes the child pointers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Leaf(Vec<Extent>),
    Interior {
        level: u16,
        keys: Vec<u64>,
        ptrs: Vec<u64>,
    },
}

/// Parses the in-inode root (`bb_level`, `bb_numrecs`, keys, pointers placed after the
/// maximum number of keys that fit in the fork). Level 0 roots do not exist on disk.
pub(crate) fn parse_root(fork: &[u8]) -> Result<Node, String> {
    if fork.len() < 4 + 16 {
        return Err(format!("btree root in a {}-byte fork", fork.len()));
    }
    let level = be16(fork, 0);
    let n = usize::from(be16(fork, 2));
    let maxrecs = (fork.len() - 4) / 16;
    if level == 0 || level > MAX_LEVELS {
        return Err(format!("btree root at level {level}"));
    }
    if n == 0 || n > maxrecs {
        return Err(format!("btree root with {n} keys (room for {maxrecs})"));
    }
    let keys = (0..n).map(|i| be64(fork, 4 + i * 8)).collect();
    let ptrs = (0..n)
        .map(|i| be64(fork, 4 + maxrecs * 8 + i * 8))
        .collect();
    Ok(Node::Interior { level, keys, ptrs })
}

/// What a btree block must say about itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockCheck<'a> {
    /// v5 block.
    pub crc: bool,
    /// Expected level.
    pub level: u16,
    /// Owner inode (v5).
    pub owner: u64,
    /// The block's own disk address in 512-byte units (v5).
    pub daddr: u64,
    /// The filesystem's metadata UUID (v5).
    pub uuid: &'a [u8; 16],
}

/// Parses a bmbt block (CRC checked by the caller).
pub(crate) fn parse_block(b: &[u8], want: &BlockCheck<'_>) -> Result<Node, String> {
    let (magic, hdr) = if want.crc {
        (BMAP_CRC_MAGIC, LBLOCK_CRC_LEN)
    } else {
        (BMAP_MAGIC, LBLOCK_LEN)
    };
    if b.len() < hdr + 16 {
        return Err("block too small".into());
    }
    if be32(b, 0) != magic {
        return Err(format!("bad magic {:#010x}", be32(b, 0)));
    }
    let level = be16(b, 4);
    let n = usize::from(be16(b, 6));
    if level != want.level {
        return Err(format!("level {level}, expected {}", want.level));
    }
    if want.crc {
        if be64(b, 24) != want.daddr {
            return Err(format!(
                "block says it is at sector {}, read from sector {}",
                be64(b, 24),
                want.daddr
            ));
        }
        if &b[40..56] != want.uuid {
            return Err("UUID is not the filesystem's".into());
        }
        if be64(b, 56) != want.owner {
            return Err(format!("owner is inode {}", be64(b, 56)));
        }
    }
    let space = b.len() - hdr;
    if level == 0 {
        let max = space / REC_SIZE;
        if n == 0 || n > max {
            return Err(format!("{n} records (room for {max})"));
        }
        Ok(Node::Leaf(
            (0..n).map(|i| extent_rec(b, hdr + i * REC_SIZE)).collect(),
        ))
    } else {
        let max = space / 16;
        if n == 0 || n > max {
            return Err(format!("{n} keys (room for {max})"));
        }
        let keys = (0..n).map(|i| be64(b, hdr + i * 8)).collect();
        let ptrs = (0..n).map(|i| be64(b, hdr + max * 8 + i * 8)).collect();
        Ok(Node::Interior { level, keys, ptrs })
    }
}

/// Checks that `ext` is sorted, non-overlapping and non-empty; `Err(index)` of the first bad
/// record.
pub(crate) fn check_sorted(ext: &[Extent]) -> Result<(), usize> {
    let mut end = 0u64;
    for (i, e) in ext.iter().enumerate() {
        if e.len == 0 || e.off < end {
            return Err(i);
        }
        end = e.off.checked_add(e.len).ok_or(i)?;
    }
    Ok(())
}

/// Encodes an extent record (tests and fuzz seeds).
#[cfg(test)]
pub(crate) fn encode(e: &Extent) -> [u8; 16] {
    let l0 = (u64::from(e.unwritten) << 63) | (e.off << 9) | (e.start >> 43);
    let l1 = (e.start << 21) | e.len;
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&l0.to_be_bytes());
    r[8..].copy_from_slice(&l1.to_be_bytes());
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip() {
        let e = Extent {
            off: 0x3_ffff_ffff,
            start: (5 << 20) | 77,
            len: 0x1f_ffff,
            unwritten: true,
        };
        assert_eq!(extent_rec(&encode(&e), 0), e);
    }

    #[test]
    fn root_bounds() {
        let mut f = vec![0u8; 4 + 16 * 2];
        f[0..2].copy_from_slice(&1u16.to_be_bytes());
        f[2..4].copy_from_slice(&2u16.to_be_bytes());
        f[12..20].copy_from_slice(&99u64.to_be_bytes());
        f[4 + 16 + 8..4 + 16 + 16].copy_from_slice(&1234u64.to_be_bytes());
        match parse_root(&f).expect("root") {
            Node::Interior { keys, ptrs, .. } => {
                assert_eq!(keys, vec![0, 99]);
                assert_eq!(ptrs[1], 1234);
            }
            Node::Leaf(_) => panic!("leaf"),
        }
        f[2..4].copy_from_slice(&3u16.to_be_bytes());
        assert!(parse_root(&f).is_err());
    }

    #[test]
    fn sortedness() {
        let e = |off, len| Extent {
            off,
            start: 0,
            len,
            unwritten: false,
        };
        assert!(check_sorted(&[e(0, 2), e(2, 1), e(10, 5)]).is_ok());
        assert_eq!(check_sorted(&[e(0, 2), e(1, 1)]), Err(1));
        assert_eq!(check_sorted(&[e(0, 0)]), Err(0));
    }
}
