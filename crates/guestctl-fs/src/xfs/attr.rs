//! Extended attributes, I/O-free: the shortform attribute fork, attribute leaf blocks
//! (`0xfbee`, v5 `0x3bee`) with local and remote values, remote value block headers (`XARM`),
//! and XFS's on-disk POSIX ACLs (`SGI_ACL_FILE`, `SGI_ACL_DEFAULT`) turned into the kernel's
//! `system.posix_acl_*` form, the way `getfattr` shows them.

use crate::bytes::{be16, be32};

pub(crate) const ATTR_LEAF: u16 = 0xfbee;
pub(crate) const ATTR_LEAF_V3: u16 = 0x3bee;
/// `XARM`.
pub(crate) const RMT_MAGIC: u32 = 0x5841_524d;
/// Header of a v5 remote value block.
pub(crate) const RMT_HDR: usize = 56;

/// Entry flags.
pub(crate) mod flags {
    pub const LOCAL: u8 = 0x01;
    pub const ROOT: u8 = 0x02;
    pub const SECURE: u8 = 0x04;
    pub const PARENT: u8 = 0x08;
    pub const INCOMPLETE: u8 = 0x80;
}

/// Where an attribute's value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Inline(Vec<u8>),
    /// In the attribute fork from block `blk`, `len` bytes.
    Remote {
        blk: u32,
        len: u32,
    },
}

/// One attribute as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawAttr {
    pub flags: u8,
    pub name: Vec<u8>,
    pub value: Value,
}

impl RawAttr {
    /// Attributes users see (not parent pointers, not half-set ones).
    pub(crate) fn visible(&self) -> bool {
        self.flags & (flags::PARENT | flags::INCOMPLETE) == 0
    }

    /// The full name as `getfattr` prints it, and whether the value is an XFS ACL to convert.
    pub(crate) fn full_name(&self) -> (Vec<u8>, bool) {
        if self.flags & flags::ROOT != 0 {
            match self.name.as_slice() {
                b"SGI_ACL_FILE" => return (b"system.posix_acl_access".to_vec(), true),
                b"SGI_ACL_DEFAULT" => return (b"system.posix_acl_default".to_vec(), true),
                _ => {}
            }
        }
        let prefix: &[u8] = if self.flags & flags::ROOT != 0 {
            b"trusted."
        } else if self.flags & flags::SECURE != 0 {
            b"security."
        } else {
            b"user."
        };
        let mut v = prefix.to_vec();
        v.extend_from_slice(&self.name);
        (v, false)
    }
}

/// Parses a shortform attribute fork.
pub(crate) fn parse_shortform(fork: &[u8]) -> Result<Vec<RawAttr>, String> {
    if fork.len() < 4 {
        return Err("attribute fork too small".into());
    }
    let total = usize::from(be16(fork, 0));
    if total < 4 || total > fork.len() {
        return Err(format!(
            "shortform attributes of {total} bytes in a {}-byte fork",
            fork.len()
        ));
    }
    let b = &fork[..total];
    let count = usize::from(b[2]);
    let mut pos = 4;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        if pos + 3 > b.len() {
            return Err(format!("attribute {i} at byte {pos} past the end"));
        }
        let nl = usize::from(b[pos]);
        let vl = usize::from(b[pos + 1]);
        let fl = b[pos + 2];
        if nl == 0 || pos + 3 + nl + vl > b.len() {
            return Err(format!("attribute {i} at byte {pos} runs past the end"));
        }
        out.push(RawAttr {
            flags: fl,
            name: b[pos + 3..pos + 3 + nl].to_vec(),
            value: Value::Inline(b[pos + 3 + nl..pos + 3 + nl + vl].to_vec()),
        });
        pos += 3 + nl + vl;
    }
    Ok(out)
}

/// Header size of an attribute leaf block.
pub(crate) fn leaf_hdr(v5: bool) -> usize {
    if v5 {
        80
    } else {
        32
    }
}

/// Whether `b` has the attribute-leaf magic for `v5`.
pub(crate) fn is_leaf(b: &[u8], v5: bool) -> bool {
    let m = be16(b, 8);
    if v5 {
        m == ATTR_LEAF_V3
    } else {
        m == ATTR_LEAF
    }
}

/// Parses an attribute leaf block: its attributes and the next leaf (`forw`, 0 = none).
pub(crate) fn parse_leaf(b: &[u8], v5: bool) -> Result<(Vec<RawAttr>, u32), String> {
    let hdr = leaf_hdr(v5);
    if b.len() < hdr + 8 {
        return Err(format!("attribute leaf of {} bytes", b.len()));
    }
    if !is_leaf(b, v5) {
        return Err(format!("bad attribute leaf magic {:#06x}", be16(b, 8)));
    }
    let count_off = if v5 { 56 } else { 12 };
    let count = usize::from(be16(b, count_off));
    if count > (b.len() - hdr) / 8 {
        return Err(format!("{count} attribute entries do not fit the block"));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let e = hdr + i * 8;
        let idx = usize::from(be16(b, e + 4));
        let fl = b[e + 6];
        if idx < hdr + count * 8 || idx >= b.len() {
            return Err(format!("attribute entry {i} names byte {idx}"));
        }
        if fl & flags::LOCAL != 0 {
            let vl = usize::from(be16(b, idx));
            let nl = usize::from(*b.get(idx + 2).ok_or("name past the block")?);
            if nl == 0 || idx + 3 + nl + vl > b.len() {
                return Err(format!(
                    "local attribute {i} at byte {idx} runs past the block"
                ));
            }
            out.push(RawAttr {
                flags: fl,
                name: b[idx + 3..idx + 3 + nl].to_vec(),
                value: Value::Inline(b[idx + 3 + nl..idx + 3 + nl + vl].to_vec()),
            });
        } else {
            let blk = be32(b, idx);
            let len = be32(b, idx + 4);
            let nl = usize::from(*b.get(idx + 8).ok_or("name past the block")?);
            if nl == 0 || idx + 9 + nl > b.len() {
                return Err(format!(
                    "remote attribute {i} at byte {idx} runs past the block"
                ));
            }
            out.push(RawAttr {
                flags: fl,
                name: b[idx + 9..idx + 9 + nl].to_vec(),
                value: Value::Remote { blk, len },
            });
        }
    }
    Ok((out, be32(b, 0)))
}

/// Blocks a remote value of `len` bytes occupies with `bs`-byte blocks.
pub(crate) fn remote_blocks(len: u32, bs: usize, v5: bool) -> u64 {
    let per = if v5 { bs - RMT_HDR } else { bs };
    u64::from(len).div_ceil(per as u64)
}

/// Converts XFS's on-disk ACL (big-endian count + 12-byte entries) to the
/// `posix_acl_xattr` form (little-endian version 2 + 8-byte entries).
pub(crate) fn acl_to_xattr(disk: &[u8]) -> Option<Vec<u8>> {
    let count = be32(disk, 0) as usize;
    if disk.len() < 4 || count > (disk.len() - 4) / 12 {
        return None;
    }
    let mut out = 2u32.to_le_bytes().to_vec();
    for i in 0..count {
        let e = 4 + i * 12;
        let tag = be32(disk, e);
        let id = match tag {
            0x01 | 0x04 | 0x10 | 0x20 => u32::MAX,
            0x02 | 0x08 => be32(disk, e + 4),
            _ => return None,
        };
        let perm = be16(disk, e + 8);
        out.extend_from_slice(&(tag as u16).to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortform_names_and_bounds() {
        let mut f = vec![0u8, 0, 2, 0];
        f.extend_from_slice(&[1, 2, 0, b'k', b'v', b'1']);
        f.extend_from_slice(&[7, 3, flags::SECURE]);
        f.extend_from_slice(b"selinuxabc");
        let total = f.len() as u16;
        f[0..2].copy_from_slice(&total.to_be_bytes());
        f.resize(100, 0);
        let a = parse_shortform(&f).expect("sf");
        assert_eq!(a[0].full_name().0, b"user.k");
        assert_eq!(a[1].full_name().0, b"security.selinux");
        assert_eq!(a[1].value, Value::Inline(b"abc".to_vec()));
        f[0..2].copy_from_slice(&(total - 1).to_be_bytes());
        assert!(parse_shortform(&f).is_err());
    }

    #[test]
    fn acl_conversion() {
        // user::rw-, user:1000:r--, group::r--, mask::r--, other::---
        let mut d = 5u32.to_be_bytes().to_vec();
        for (tag, id, perm) in [
            (1u32, 0u32, 6u16),
            (2, 1000, 4),
            (4, 0, 4),
            (0x10, 0, 4),
            (0x20, 0, 0),
        ] {
            d.extend_from_slice(&tag.to_be_bytes());
            d.extend_from_slice(&id.to_be_bytes());
            d.extend_from_slice(&perm.to_be_bytes());
            d.extend_from_slice(&[0, 0]);
        }
        let x = acl_to_xattr(&d).expect("acl");
        assert_eq!(x.len(), 4 + 5 * 8);
        assert_eq!(&x[4..12], &[1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(&x[12..20], &[2, 0, 4, 0, 0xe8, 3, 0, 0]);
        assert!(acl_to_xattr(&d[..20]).is_none());
    }

    #[test]
    fn remote_block_count() {
        assert_eq!(remote_blocks(4096, 4096, false), 1);
        assert_eq!(remote_blocks(4096, 4096, true), 2);
        assert_eq!(remote_blocks(0, 4096, true), 0);
    }
}
