//! The ext2/3/4 superblock: parsed from its 1024 bytes (at byte 1024 of the filesystem),
//! validated enough that every later size computation is bounded.

use super::csum::crc32c_raw;
use crate::bytes::{le16, le32, le64};
use crate::{Error, ErrorKind, Result};

/// Byte offset of the primary superblock.
pub(crate) const SUPERBLOCK_OFFSET: u64 = 1024;
/// Size of the superblock structure.
pub(crate) const SUPERBLOCK_SIZE: usize = 1024;
const MAGIC: u16 = 0xEF53;

pub(crate) mod compat {
    pub const HAS_JOURNAL: u32 = 0x4;
    pub const SPARSE_SUPER2: u32 = 0x200;
    pub const FAST_COMMIT: u32 = 0x400;
}

pub(crate) mod incompat {
    pub const COMPRESSION: u32 = 0x1;
    pub const FILETYPE: u32 = 0x2;
    pub const RECOVER: u32 = 0x4;
    pub const JOURNAL_DEV: u32 = 0x8;
    pub const META_BG: u32 = 0x10;
    pub const EXTENTS: u32 = 0x40;
    pub const BIT64: u32 = 0x80;
    pub const MMP: u32 = 0x100;
    pub const FLEX_BG: u32 = 0x200;
    pub const EA_INODE: u32 = 0x400;
    pub const DIRDATA: u32 = 0x1000;
    pub const CSUM_SEED: u32 = 0x2000;
    pub const LARGEDIR: u32 = 0x4000;
    pub const INLINE_DATA: u32 = 0x8000;
    pub const ENCRYPT: u32 = 0x10000;
    pub const CASEFOLD: u32 = 0x20000;
    /// Everything this reader understands (the others refuse the filesystem).
    pub const KNOWN: u32 = FILETYPE
        | RECOVER
        | META_BG
        | EXTENTS
        | BIT64
        | MMP
        | FLEX_BG
        | EA_INODE
        | CSUM_SEED
        | LARGEDIR
        | INLINE_DATA
        | ENCRYPT
        | CASEFOLD;
}

pub(crate) mod ro_compat {
    pub const SPARSE_SUPER: u32 = 0x1;
    pub const HUGE_FILE: u32 = 0x8;
    pub const GDT_CSUM: u32 = 0x10;
    pub const BIGALLOC: u32 = 0x200;
    pub const METADATA_CSUM: u32 = 0x400;
}

/// The superblock fields the reader uses.
#[derive(Debug, Clone)]
pub(crate) struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub free_blocks: u64,
    pub first_data_block: u32,
    pub log_block_size: u32,
    pub log_cluster_size: u32,
    pub blocks_per_group: u32,
    pub inodes_per_group: u32,
    pub rev_level: u32,
    pub first_ino: u32,
    pub inode_size: u16,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub journal_inum: u32,
    pub desc_size: u16,
    pub first_meta_bg: u32,
    pub backup_bgs: [u32; 2],
    pub checksum_type: u8,
    pub checksum_seed: u32,
    pub checksum: u32,
    /// The raw bytes, for the checksum.
    pub raw: Vec<u8>,
}

impl Superblock {
    /// Parses and validates the 1024 superblock bytes.
    pub(crate) fn parse(b: &[u8]) -> Result<Superblock> {
        let structure = "ext superblock";
        if b.len() < SUPERBLOCK_SIZE {
            return Err(Error::corrupt("superblock is truncated").structure(structure));
        }
        let magic = le16(b, 0x38);
        if magic != MAGIC {
            return Err(Error::corrupt(format!(
                "bad magic {magic:#06x} (expected 0xef53): not an ext2/3/4 filesystem"
            ))
            .structure(structure)
            .at(SUPERBLOCK_OFFSET + 0x38));
        }
        let incompat = le32(b, 0x60);
        let bit64 = incompat & incompat::BIT64 != 0;
        let hi = |off| {
            if bit64 {
                u64::from(le32(b, off)) << 32
            } else {
                0
            }
        };
        let rev_level = le32(b, 0x4C);
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[0x68..0x78]);
        let mut volume_name = [0u8; 16];
        volume_name.copy_from_slice(&b[0x78..0x88]);
        let sb = Superblock {
            inodes_count: le32(b, 0x0),
            blocks_count: u64::from(le32(b, 0x4)) | hi(0x150),
            free_blocks: u64::from(le32(b, 0xC)) | hi(0x158),
            first_data_block: le32(b, 0x14),
            log_block_size: le32(b, 0x18),
            log_cluster_size: le32(b, 0x1C),
            blocks_per_group: le32(b, 0x20),
            inodes_per_group: le32(b, 0x28),
            rev_level,
            first_ino: if rev_level == 0 { 11 } else { le32(b, 0x54) },
            inode_size: if rev_level == 0 { 128 } else { le16(b, 0x58) },
            feature_compat: if rev_level == 0 { 0 } else { le32(b, 0x5C) },
            feature_incompat: if rev_level == 0 { 0 } else { incompat },
            feature_ro_compat: if rev_level == 0 { 0 } else { le32(b, 0x64) },
            uuid,
            volume_name,
            journal_inum: le32(b, 0xE0),
            desc_size: le16(b, 0xFE),
            first_meta_bg: le32(b, 0x104),
            backup_bgs: [le32(b, 0x24C), le32(b, 0x250)],
            checksum_type: b[0x175],
            checksum_seed: le32(b, 0x270),
            checksum: le32(b, 0x3FC),
            raw: b[..SUPERBLOCK_SIZE].to_vec(),
        };
        let _ = le64; // (64-bit fields are assembled from halves above)
        sb.validate()?;
        Ok(sb)
    }

    fn validate(&self) -> Result<()> {
        let bad = |what: String| {
            Err(Error::corrupt(what)
                .structure("ext superblock")
                .at(SUPERBLOCK_OFFSET))
        };
        if self.log_block_size > 6 {
            return bad(format!(
                "block size 2^(10+{}) is larger than 64 KiB",
                self.log_block_size
            ));
        }
        let bs = self.block_size();
        // With bigalloc a group holds 8 * block_size clusters of 2^n blocks each.
        let cluster_shift = if self.feature_ro_compat & ro_compat::BIGALLOC != 0 {
            if self.log_cluster_size < self.log_block_size || self.log_cluster_size > 30 {
                return bad(format!("cluster size 2^(10+{})", self.log_cluster_size));
            }
            self.log_cluster_size - self.log_block_size
        } else {
            0
        };
        if self.blocks_per_group < 8
            || u64::from(self.blocks_per_group) > (8 * u64::from(bs)) << cluster_shift
        {
            return bad(format!("{} blocks per group", self.blocks_per_group));
        }
        if self.inodes_per_group == 0 || u64::from(self.inodes_per_group) > 8 * u64::from(bs) {
            return bad(format!("{} inodes per group", self.inodes_per_group));
        }
        let isz = u32::from(self.inode_size);
        if isz < 128 || !isz.is_power_of_two() || isz > bs {
            return bad(format!("inode size {isz}"));
        }
        if self.blocks_count == 0 || self.blocks_count <= u64::from(self.first_data_block) {
            return bad(format!("block count {}", self.blocks_count));
        }
        if self.blocks_count > (1u64 << 48) {
            return bad(format!("block count {} exceeds 2^48", self.blocks_count));
        }
        let want_first = u32::from(bs == 1024 && cluster_shift == 0);
        if self.first_data_block != want_first {
            return bad(format!(
                "first data block {} for block size {bs}",
                self.first_data_block
            ));
        }
        if self.is_64bit() {
            let ds = self.desc_size;
            if !(32..=1024).contains(&ds) || !ds.is_power_of_two() {
                return bad(format!("group descriptor size {ds}"));
            }
        }
        let groups = self.group_count();
        if u64::from(self.inodes_per_group) * groups < u64::from(self.inodes_count) {
            return bad(format!(
                "{} inodes do not fit in {groups} groups of {}",
                self.inodes_count, self.inodes_per_group
            ));
        }
        if self.first_ino < 11 && self.rev_level > 0 {
            return bad(format!("first non-reserved inode {}", self.first_ino));
        }
        Ok(())
    }

    /// Verifies the superblock's own checksum (metadata_csum only).
    pub(crate) fn verify_checksum(&self) -> Result<()> {
        if !self.has_metadata_csum() {
            return Ok(());
        }
        if self.checksum_type != 1 {
            return Err(Error::unsupported(format!(
                "metadata checksum type {} (only crc32c, 1, exists)",
                self.checksum_type
            ))
            .structure("ext superblock"));
        }
        let calc = crc32c_raw(!0, &self.raw[..0x3FC]);
        if calc != self.checksum {
            return Err(Error::new(
                ErrorKind::Checksum,
                format!(
                    "superblock checksum {:#010x} does not match the computed {calc:#010x}",
                    self.checksum
                ),
            )
            .structure("ext superblock")
            .at(SUPERBLOCK_OFFSET + 0x3FC));
        }
        Ok(())
    }

    pub(crate) fn block_size(&self) -> u32 {
        1024 << self.log_block_size
    }
    pub(crate) fn is_64bit(&self) -> bool {
        self.feature_incompat & incompat::BIT64 != 0
    }
    pub(crate) fn desc_size(&self) -> usize {
        if self.is_64bit() {
            usize::from(self.desc_size)
        } else {
            32
        }
    }
    pub(crate) fn group_count(&self) -> u64 {
        (self.blocks_count - u64::from(self.first_data_block))
            .div_ceil(u64::from(self.blocks_per_group))
    }
    pub(crate) fn has_metadata_csum(&self) -> bool {
        self.feature_ro_compat & ro_compat::METADATA_CSUM != 0
    }
    pub(crate) fn has_gdt_csum(&self) -> bool {
        self.feature_ro_compat & ro_compat::GDT_CSUM != 0
    }
    pub(crate) fn has_incompat(&self, f: u32) -> bool {
        self.feature_incompat & f != 0
    }
    pub(crate) fn has_compat(&self, f: u32) -> bool {
        self.feature_compat & f != 0
    }
    /// The seed of every metadata checksum.
    pub(crate) fn csum_seed(&self) -> u32 {
        if self.has_incompat(incompat::CSUM_SEED) {
            self.checksum_seed
        } else {
            crc32c_raw(!0, &self.uuid)
        }
    }
    /// Whether group `g` holds a superblock backup (and so, with meta_bg, its descriptors
    /// follow it).
    pub(crate) fn group_has_super(&self, g: u64) -> bool {
        if g == 0 {
            return true;
        }
        if self.has_compat(compat::SPARSE_SUPER2) {
            return g == u64::from(self.backup_bgs[0]) || g == u64::from(self.backup_bgs[1]);
        }
        if self.feature_ro_compat & ro_compat::SPARSE_SUPER == 0 || g == 1 {
            return true;
        }
        if g & 1 == 0 {
            return false;
        }
        [3u64, 5, 7].iter().any(|&p| {
            let mut n = g;
            while n % p == 0 {
                n /= p;
            }
            n == 1
        })
    }
    /// The features of `feature_incompat` this reader does not know, as names or hex.
    pub(crate) fn unknown_incompat(&self) -> Option<String> {
        let unknown = self.feature_incompat & !incompat::KNOWN;
        if unknown == 0 {
            return None;
        }
        let mut names = Vec::new();
        for (bit, name) in [
            (incompat::COMPRESSION, "compression"),
            (
                incompat::JOURNAL_DEV,
                "journal_dev (this is an external journal device)",
            ),
            (incompat::DIRDATA, "dirdata"),
        ] {
            if unknown & bit != 0 {
                names.push(name.to_string());
            }
        }
        let rest = unknown & !(incompat::COMPRESSION | incompat::JOURNAL_DEV | incompat::DIRDATA);
        if rest != 0 {
            names.push(format!("{rest:#x}"));
        }
        Some(names.join(", "))
    }
    /// The volume label (NUL-trimmed, lossy UTF-8).
    pub(crate) fn label(&self) -> String {
        let end = self.volume_name.iter().position(|&c| c == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.volume_name[..end]).into_owned()
    }
    /// The UUID as blkid prints it.
    pub(crate) fn uuid_string(&self) -> String {
        let u = &self.uuid;
        let h =
            |r: std::ops::Range<usize>| u[r].iter().map(|b| format!("{b:02x}")).collect::<String>();
        format!(
            "{}-{}-{}-{}-{}",
            h(0..4),
            h(4..6),
            h(6..8),
            h(8..10),
            h(10..16)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[0x38..0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        b[0x0..0x4].copy_from_slice(&64u32.to_le_bytes()); // inodes
        b[0x4..0x8].copy_from_slice(&1024u32.to_le_bytes()); // blocks
        b[0x14..0x18].copy_from_slice(&1u32.to_le_bytes()); // first data block
        b[0x20..0x24].copy_from_slice(&8192u32.to_le_bytes());
        b[0x28..0x2C].copy_from_slice(&64u32.to_le_bytes());
        b[0x4C..0x50].copy_from_slice(&1u32.to_le_bytes());
        b[0x54..0x58].copy_from_slice(&11u32.to_le_bytes());
        b[0x58..0x5A].copy_from_slice(&128u16.to_le_bytes());
        b
    }

    #[test]
    fn parses_minimal_and_rejects_garbage() {
        let sb = Superblock::parse(&minimal()).expect("valid");
        assert_eq!(sb.block_size(), 1024);
        assert_eq!(sb.group_count(), 1);
        let mut bad = minimal();
        bad[0x18] = 7;
        assert!(Superblock::parse(&bad).is_err());
        let mut bad = minimal();
        bad[0x58] = 100;
        assert!(Superblock::parse(&bad).is_err());
        assert!(Superblock::parse(&[0u8; 1024]).is_err());
        assert!(Superblock::parse(&[0u8; 10]).is_err());
    }

    #[test]
    fn sparse_super_groups() {
        let mut b = minimal();
        b[0x64] = 1; // sparse_super
        let sb = Superblock::parse(&b).expect("valid");
        let with: Vec<u64> = (0..50).filter(|&g| sb.group_has_super(g)).collect();
        assert_eq!(with, vec![0, 1, 3, 5, 7, 9, 25, 27, 49]);
    }
}
