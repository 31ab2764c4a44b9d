//! Extent tree nodes (I/O-free): a 12-byte header, then index or leaf entries of 12 bytes,
//! and (in blocks, with metadata_csum) a 4-byte checksum after `eh_max` entries.

use crate::bytes::{le16, le32};

pub(crate) const MAGIC: u16 = 0xF30A;
/// The deepest tree the kernel builds is 5 levels; deeper is corrupt.
pub(crate) const MAX_DEPTH: u16 = 5;
/// Extent lengths above this mark uninitialized (preallocated, reads as zero) extents.
const INIT_MAX_LEN: u16 = 32768;

/// A parsed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// Interior: `(first logical block, child block)` sorted by logical block.
    Index(Vec<(u32, u64)>),
    /// Leaf: extents.
    Leaf(Vec<Extent>),
}

/// One leaf extent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    pub lblk: u32,
    pub len: u32,
    pub pblk: u64,
    pub uninit: bool,
}

/// Header fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub entries: u16,
    pub max: u16,
    pub depth: u16,
}

/// Parses a node from `b` (the 60-byte `i_block` or a whole block).
pub(crate) fn parse(b: &[u8]) -> Result<(Header, Node), String> {
    if b.len() < 12 {
        return Err("extent node is too small".into());
    }
    let magic = le16(b, 0);
    if magic != MAGIC {
        return Err(format!(
            "extent header magic {magic:#06x} (expected 0xf30a)"
        ));
    }
    let h = Header {
        entries: le16(b, 2),
        max: le16(b, 4),
        depth: le16(b, 6),
    };
    if h.depth > MAX_DEPTH {
        return Err(format!("extent tree depth {} exceeds {MAX_DEPTH}", h.depth));
    }
    let cap = (b.len() - 12) / 12;
    if usize::from(h.max) > cap || h.entries > h.max {
        return Err(format!(
            "extent node claims {} of {} entries; {cap} fit",
            h.entries, h.max
        ));
    }
    let n = usize::from(h.entries);
    let node = if h.depth > 0 {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let o = 12 + 12 * i;
            let lblk = le32(b, o);
            let child = u64::from(le32(b, o + 4)) | (u64::from(le16(b, o + 8)) << 32);
            if let Some(&(prev, _)) = v.last() {
                if lblk <= prev {
                    return Err("extent index entries are not sorted".into());
                }
            }
            v.push((lblk, child));
        }
        Node::Index(v)
    } else {
        let mut v: Vec<Extent> = Vec::with_capacity(n);
        for i in 0..n {
            let o = 12 + 12 * i;
            let raw_len = le16(b, o + 4);
            let (len, uninit) = if raw_len > INIT_MAX_LEN {
                (raw_len - INIT_MAX_LEN, true)
            } else {
                (raw_len, false)
            };
            let e = Extent {
                lblk: le32(b, o),
                len: u32::from(len),
                pblk: u64::from(le32(b, o + 8)) | (u64::from(le16(b, o + 6)) << 32),
                uninit,
            };
            if let Some(p) = v.last() {
                if u64::from(e.lblk) < u64::from(p.lblk) + u64::from(p.len) {
                    return Err("extents overlap or are not sorted".into());
                }
            }
            if e.len == 0 {
                continue;
            }
            v.push(e);
        }
        Node::Leaf(v)
    };
    Ok((h, node))
}

/// The offset of the checksum in an extent block, if it fits.
pub(crate) fn tail_offset(h: &Header, block_len: usize) -> Option<usize> {
    let o = 12 + 12 * usize::from(h.max);
    (o + 4 <= block_len).then_some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(entries: &[(u32, u16, u64)]) -> Vec<u8> {
        let mut b = vec![0u8; 60];
        b[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        b[2..4].copy_from_slice(&(entries.len() as u16).to_le_bytes());
        b[4..6].copy_from_slice(&4u16.to_le_bytes());
        for (i, &(l, len, p)) in entries.iter().enumerate() {
            let o = 12 + 12 * i;
            b[o..o + 4].copy_from_slice(&l.to_le_bytes());
            b[o + 4..o + 6].copy_from_slice(&len.to_le_bytes());
            b[o + 6..o + 8].copy_from_slice(&((p >> 32) as u16).to_le_bytes());
            b[o + 8..o + 12].copy_from_slice(&(p as u32).to_le_bytes());
        }
        b
    }

    #[test]
    fn parses_leaf_with_uninit() {
        let b = leaf(&[(0, 4, 100), (10, 32768 + 2, 1 << 33)]);
        let (_, n) = parse(&b).expect("parse");
        let Node::Leaf(v) = n else { panic!("leaf") };
        assert_eq!(
            v[1],
            Extent {
                lblk: 10,
                len: 2,
                pblk: 1 << 33,
                uninit: true
            }
        );
    }

    #[test]
    fn rejects_overlap_and_bad_counts() {
        assert!(parse(&leaf(&[(0, 4, 100), (2, 4, 200)])).is_err());
        let mut b = leaf(&[(0, 4, 100)]);
        b[4] = 200;
        assert!(parse(&b).is_err());
        b[4] = 4;
        b[6] = 9;
        assert!(parse(&b).is_err());
        assert!(parse(&[0u8; 5]).is_err());
    }
}
