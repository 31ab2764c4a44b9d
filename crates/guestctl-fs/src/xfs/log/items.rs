//! Log item formats (host byte order, `xfs_log_format.h`): buffer, inode, icreate, and the
//! intent and done items whose ids pair them.

use super::trans::Item;
use super::Endian;
use crate::bytes::be32;
use crate::{Error, Result};

pub(super) const LI_EFI: u16 = 0x1236;
pub(super) const LI_EFD: u16 = 0x1237;
pub(super) const LI_IUNLINK: u16 = 0x1238;
pub(super) const LI_INODE: u16 = 0x123b;
pub(super) const LI_BUF: u16 = 0x123c;
pub(super) const LI_DQUOT: u16 = 0x123d;
pub(super) const LI_QUOTAOFF: u16 = 0x123e;
pub(super) const LI_ICREATE: u16 = 0x123f;

/// Intent items and the done items that finish them: (intent, done, name, what it does).
pub(super) const INTENTS: &[(u16, u16, &str, &str)] = &[
    (LI_EFI, LI_EFD, "EFI", "extent freeing"),
    (0x1240, 0x1241, "RUI", "reverse-mapping update"),
    (0x1242, 0x1243, "CUI", "reference-count update"),
    (0x1244, 0x1245, "BUI", "block-mapping update"),
    (0x1246, 0x1247, "ATTRI", "extended-attribute update"),
    (0x1248, 0x1249, "XMI", "file mapping exchange"),
    (0x124a, 0x124b, "EFI_RT", "realtime extent freeing"),
    (0x124c, 0x124d, "RUI_RT", "realtime reverse-mapping update"),
    (0x124e, 0x124f, "CUI_RT", "realtime reference-count update"),
];

/// Intents whose unfinished work would change what files read.
pub(super) const CHANGES_FILES: &[&str] = &["BUI", "ATTRI", "XMI"];

/// `blf_flags` bits.
pub(super) const BLF_INODE_BUF: u16 = 1 << 0;
pub(super) const BLF_CANCEL: u16 = 1 << 1;
pub(super) const BLF_DQUOT_BUF: u16 = (1 << 2) | (1 << 3) | (1 << 4);
/// Most words of a dirty bitmap (`XFS_BLF_DATAMAP_SIZE`).
const BLF_DATAMAP_WORDS: usize = 17;
/// Bytes one bitmap bit covers (`XFS_BLF_CHUNK`).
pub(super) const BLF_CHUNK: usize = 128;

/// `ilf_fields` bits.
pub(super) mod ilog {
    pub const CORE: u32 = 0x001;
    pub const DDATA: u32 = 0x002;
    pub const DEXT: u32 = 0x004;
    pub const DBROOT: u32 = 0x008;
    pub const DEV: u32 = 0x010;
    pub const ADATA: u32 = 0x040;
    pub const AEXT: u32 = 0x080;
    pub const ABROOT: u32 = 0x100;
    pub const DOWNER: u32 = 0x200;
    pub const AOWNER: u32 = 0x400;
    pub const DFORK: u32 = DDATA | DEXT | DBROOT;
    pub const AFORK: u32 = ADATA | AEXT | ABROOT;
}

fn bad(item: &Item, what: &'static str, msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure(what).at(item.offset)
}

/// The item type: the first 16 bits of its first region.
pub(super) fn item_type(e: Endian, item: &Item) -> u16 {
    item.regions.first().map_or(0, |r| e.u16(r, 0))
}

/// `xfs_buf_log_format`.
#[derive(Debug, Clone)]
pub(super) struct BufFormat {
    pub flags: u16,
    /// Length in 512-byte sectors.
    pub len: u16,
    /// Disk address in 512-byte sectors.
    pub blkno: u64,
    pub map: Vec<u32>,
}

impl BufFormat {
    pub(super) fn parse(e: Endian, item: &Item) -> Result<BufFormat> {
        const WHAT: &str = "xfs log buffer item";
        let r = &item.regions[0];
        if r.len() < 20 {
            return Err(bad(item, WHAT, format!("format of {} bytes", r.len())));
        }
        let words = e.u32(r, 16) as usize;
        if words > BLF_DATAMAP_WORDS || r.len() < 20 + 4 * words {
            return Err(bad(
                item,
                WHAT,
                format!("dirty bitmap of {words} words in a {}-byte format", r.len()),
            ));
        }
        let blkno = e.u64(r, 8);
        if blkno >> 63 != 0 {
            return Err(bad(item, WHAT, format!("negative block number {blkno:#x}")));
        }
        Ok(BufFormat {
            flags: e.u16(r, 4),
            len: e.u16(r, 6),
            blkno,
            map: (0..words).map(|i| e.u32(r, 20 + 4 * i)).collect(),
        })
    }

    fn bit(&self, b: usize) -> bool {
        self.map
            .get(b / 32)
            .is_some_and(|w| (w >> (b % 32)) & 1 != 0)
    }

    /// Runs of set bits: `(first bit, count)`, in order (`xfs_next_bit`, `xfs_contig_bits`).
    pub(super) fn runs(&self) -> Vec<(usize, usize)> {
        let n = self.map.len() * 32;
        let mut out = Vec::new();
        let mut b = 0;
        while b < n {
            if !self.bit(b) {
                b += 1;
                continue;
            }
            let start = b;
            while b < n && self.bit(b) {
                b += 1;
            }
            out.push((start, b - start));
        }
        out
    }
}

/// `xfs_inode_log_format` (56 bytes) or its packed 32-bit form (52 bytes).
#[derive(Debug, Clone)]
pub(super) struct InodeFormat {
    pub size: u16,
    pub fields: u32,
    pub ino: u64,
    pub rdev: u32,
    pub blkno: u64,
    pub len: u32,
    pub boffset: u32,
}

impl InodeFormat {
    pub(super) fn parse(e: Endian, item: &Item) -> Result<InodeFormat> {
        const WHAT: &str = "xfs log inode item";
        let r = &item.regions[0];
        // (ino, rdev, blkno, len, boffset) offsets.
        let (ino, rdev, blkno, len, boffset) = match r.len() {
            56 => (16, 24, 40, 48, 52),
            52 => (12, 20, 36, 44, 48),
            n => return Err(bad(item, WHAT, format!("format of {n} bytes"))),
        };
        let f = InodeFormat {
            size: e.u16(r, 2),
            fields: e.u32(r, 4),
            ino: e.u64(r, ino),
            rdev: e.u32(r, rdev),
            blkno: e.u64(r, blkno),
            len: e.u32(r, len),
            boffset: e.u32(r, boffset),
        };
        if f.blkno >> 63 != 0 || f.len == 0 || f.len > 1 << 16 {
            return Err(bad(
                item,
                WHAT,
                format!(
                    "inode {} in a buffer of {} sectors at {:#x}",
                    f.ino, f.len, f.blkno
                ),
            ));
        }
        Ok(f)
    }
}

/// `xfs_icreate_log` (type and size in host order, the rest big-endian).
#[derive(Debug, Clone)]
pub(super) struct Icreate {
    pub ag: u32,
    pub agbno: u32,
    pub count: u32,
    pub isize: u32,
    pub length: u32,
    pub gen: u32,
}

impl Icreate {
    pub(super) fn parse(e: Endian, item: &Item) -> Result<Icreate> {
        const WHAT: &str = "xfs log icreate item";
        let r = &item.regions[0];
        if r.len() < 28 {
            return Err(bad(item, WHAT, format!("format of {} bytes", r.len())));
        }
        if e.u16(r, 2) != 1 {
            return Err(bad(item, WHAT, "icreate item of more than one region"));
        }
        Ok(Icreate {
            ag: be32(r, 4),
            agbno: be32(r, 8),
            count: be32(r, 12),
            isize: be32(r, 16),
            length: be32(r, 20),
            gen: be32(r, 24),
        })
    }
}

/// The id of an intent or done item (both keep it at byte 8).
pub(super) fn intent_id(e: Endian, item: &Item) -> Option<u64> {
    let r = item.regions.first()?;
    (r.len() >= 16).then(|| e.u64(r, 8))
}
