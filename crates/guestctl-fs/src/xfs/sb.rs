//! The XFS superblock (`xfs_dsb`, big-endian, at byte 0 of every allocation group; the
//! primary one in AG 0 is authoritative): geometry, feature bits, the log's location.

use crate::bytes::{be16, be32, be64};
use crate::{Error, ErrorKind, Result};

/// `XFSB`.
pub(crate) const SB_MAGIC: u32 = 0x5846_5342;
/// Bytes of the superblock read and checksummed (the sector size is at least this).
pub(crate) const SB_READ: usize = 512;

/// `sb_versionnum` bits.
pub(crate) mod version {
    pub const NUM_MASK: u16 = 0x000f;
    /// Version 2 log.
    pub const LOGV2: u16 = 0x0400;
    pub const DIRV2: u16 = 0x2000;
    /// ASCII case-insensitive names ("borg" bit).
    pub const BORG: u16 = 0x4000;
    pub const MOREBITS: u16 = 0x8000;
}

/// `sb_features2` bits.
pub(crate) mod features2 {
    pub const FTYPE: u32 = 0x0200;
}

/// v5 `sb_features_incompat` bits.
pub(crate) mod incompat {
    pub const FTYPE: u32 = 0x0001;
    pub const SPINODES: u32 = 0x0002;
    pub const META_UUID: u32 = 0x0004;
    pub const BIGTIME: u32 = 0x0008;
    pub const NEEDSREPAIR: u32 = 0x0010;
    pub const NREXT64: u32 = 0x0020;
    pub const EXCHRANGE: u32 = 0x0040;
    pub const PARENT: u32 = 0x0080;
    pub const METADIR: u32 = 0x0100;
    /// Everything this reader understands. `METADIR` (6.13's metadata directory tree) only
    /// moves internal inodes; user files read the same.
    pub const KNOWN: u32 =
        FTYPE | SPINODES | META_UUID | BIGTIME | NEEDSREPAIR | NREXT64 | EXCHRANGE | PARENT;
    /// Names of the bits, for messages.
    pub const NAMES: &[(u32, &str)] = &[
        (FTYPE, "ftype"),
        (SPINODES, "sparse inodes"),
        (META_UUID, "meta_uuid"),
        (BIGTIME, "bigtime"),
        (NEEDSREPAIR, "needsrepair"),
        (NREXT64, "nrext64"),
        (EXCHRANGE, "exchange-range"),
        (PARENT, "parent pointers"),
        (METADIR, "metadir"),
        (0x0200, "zoned"),
    ];
}

/// The fields of the superblock the reader uses.
#[derive(Debug, Clone)]
pub(crate) struct Superblock {
    pub block_size: u32,
    pub dblocks: u64,
    pub rblocks: u64,
    pub uuid: [u8; 16],
    pub logstart: u64,
    pub rootino: u64,
    pub agblocks: u32,
    pub agcount: u32,
    pub logblocks: u32,
    pub versionnum: u16,
    pub sectsize: u16,
    pub inodesize: u16,
    pub inopblock: u16,
    pub fname: [u8; 12],
    pub blocklog: u8,
    pub inodelog: u8,
    pub inopblog: u8,
    pub agblklog: u8,
    pub inprogress: u8,
    pub fdblocks: u64,
    pub dirblklog: u8,
    pub logsectsize: u16,
    pub logsunit: u32,
    pub features2: u32,
    pub features_incompat: u32,
    pub meta_uuid: [u8; 16],
}

fn bad(msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into()).structure("xfs superblock").at(0)
}

impl Superblock {
    /// Parses the first 512 bytes of an AG (big-endian `xfs_dsb`). Checks geometry
    /// consistency; the CRC is checked separately ([`Superblock::verify_crc`]).
    pub(crate) fn parse(b: &[u8]) -> Result<Superblock> {
        if b.len() < SB_READ {
            return Err(bad("short superblock"));
        }
        if be32(b, 0) != SB_MAGIC {
            return Err(bad(format!("bad magic {:#010x}", be32(b, 0))));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[0x20..0x30]);
        let mut fname = [0u8; 12];
        fname.copy_from_slice(&b[0x6C..0x78]);
        let mut meta_uuid = [0u8; 16];
        meta_uuid.copy_from_slice(&b[0xF8..0x108]);
        let sb = Superblock {
            block_size: be32(b, 0x04),
            dblocks: be64(b, 0x08),
            rblocks: be64(b, 0x10),
            uuid,
            logstart: be64(b, 0x30),
            rootino: be64(b, 0x38),
            agblocks: be32(b, 0x54),
            agcount: be32(b, 0x58),
            logblocks: be32(b, 0x60),
            versionnum: be16(b, 0x64),
            sectsize: be16(b, 0x66),
            inodesize: be16(b, 0x68),
            inopblock: be16(b, 0x6A),
            fname,
            blocklog: b[0x78],
            inodelog: b[0x7A],
            inopblog: b[0x7B],
            agblklog: b[0x7C],
            inprogress: b[0x7E],
            fdblocks: be64(b, 0x90),
            dirblklog: b[0xC0],
            logsectsize: be16(b, 0xC2),
            logsunit: be32(b, 0xC4),
            features2: be32(b, 0xC8),
            features_incompat: be32(b, 0xD8),
            meta_uuid,
        };
        sb.check()?;
        Ok(sb)
    }

    fn check(&self) -> Result<()> {
        let v = self.version();
        if v != 4 && v != 5 {
            return Err(Error::unsupported(format!(
                "XFS superblock version {v} (only 4 and 5 exist)"
            ))
            .structure("xfs superblock"));
        }
        let bs = self.block_size;
        if !(512..=65536).contains(&bs)
            || !bs.is_power_of_two()
            || u32::from(self.blocklog) >= 32
            || 1u32 << self.blocklog != bs
        {
            return Err(bad(format!(
                "block size {bs} (log {}) is not a power of two in 512..65536",
                self.blocklog
            )));
        }
        let ss = u32::from(self.sectsize);
        if !(512..=32768).contains(&ss) || !ss.is_power_of_two() || ss > bs {
            return Err(bad(format!("sector size {ss}")));
        }
        let is = u32::from(self.inodesize);
        if !(256..=2048).contains(&is)
            || !is.is_power_of_two()
            || 1u32 << self.inodelog != is
            || is > bs
        {
            return Err(bad(format!("inode size {is} (log {})", self.inodelog)));
        }
        if u32::from(self.inopblock) != bs / is
            || u32::from(self.inopblog) != self.blocklog as u32 - self.inodelog as u32
        {
            return Err(bad(format!(
                "{} inodes per block (log {}) do not match the block and inode sizes",
                self.inopblock, self.inopblog
            )));
        }
        if self.agblocks < 16 || self.agcount == 0 {
            return Err(bad(format!(
                "{} allocation groups of {} blocks",
                self.agcount, self.agblocks
            )));
        }
        let log = u32::from(self.agblklog);
        if log > 31
            || (1u64 << log) < u64::from(self.agblocks)
            || (1u64 << log) >= 2 * u64::from(self.agblocks)
        {
            return Err(bad(format!(
                "AG block log {log} does not match {} blocks per AG",
                self.agblocks
            )));
        }
        if self.dblocks > u64::from(self.agcount) * u64::from(self.agblocks)
            || self.dblocks <= u64::from(self.agcount - 1) * u64::from(self.agblocks)
        {
            return Err(bad(format!(
                "{} blocks do not fit {} AGs of {} blocks",
                self.dblocks, self.agcount, self.agblocks
            )));
        }
        if u32::from(self.dirblklog) + u32::from(self.blocklog) > 16 {
            return Err(bad(format!(
                "directory block size 2^{} x {bs} is over 64 KiB",
                self.dirblklog
            )));
        }
        if u64::from(self.agblklog) + u64::from(self.inopblog) > 56 {
            return Err(bad("inode numbers wider than 56 bits"));
        }
        if v == 4 && self.versionnum & version::DIRV2 == 0 {
            return Err(Error::unsupported(
                "XFS version 1 directories (IRIX-era filesystems) are not read",
            )
            .structure("xfs superblock"));
        }
        Ok(())
    }

    /// 4 or 5.
    pub(crate) fn version(&self) -> u16 {
        self.versionnum & version::NUM_MASK
    }

    /// v5: metadata carries CRCs, owners, LSNs and UUIDs.
    pub(crate) fn has_crc(&self) -> bool {
        self.version() == 5
    }

    /// Directory entries record the file type.
    pub(crate) fn has_ftype(&self) -> bool {
        if self.has_crc() {
            self.features_incompat & incompat::FTYPE != 0
        } else {
            self.has_morebits() && self.features2 & features2::FTYPE != 0
        }
    }

    fn has_morebits(&self) -> bool {
        self.versionnum & version::MOREBITS != 0
    }

    /// ASCII case-insensitive directories.
    pub(crate) fn has_asciici(&self) -> bool {
        self.versionnum & version::BORG != 0
    }

    pub(crate) fn has_incompat(&self, bit: u32) -> bool {
        self.has_crc() && self.features_incompat & bit != 0
    }

    /// Unknown incompatible features, named, or `None`.
    pub(crate) fn unknown_incompat(&self) -> Option<String> {
        if !self.has_crc() {
            return None;
        }
        let unknown = self.features_incompat & !incompat::KNOWN;
        if unknown == 0 {
            return None;
        }
        let mut names: Vec<String> = incompat::NAMES
            .iter()
            .filter(|(bit, _)| unknown & bit != 0)
            .map(|(_, n)| (*n).to_string())
            .collect();
        let named: u32 = incompat::NAMES.iter().map(|(b, _)| b).fold(0, |a, b| a | b);
        if unknown & !named != 0 {
            names.push(format!("{:#x}", unknown & !named));
        }
        Some(names.join(", "))
    }

    /// The UUID stamped into v5 metadata (`meta_uuid` when the UUID was changed later).
    pub(crate) fn meta_uuid(&self) -> &[u8; 16] {
        if self.has_incompat(incompat::META_UUID) {
            &self.meta_uuid
        } else {
            &self.uuid
        }
    }

    /// Verifies the v5 superblock CRC (crc32c of the first sector with the CRC field zeroed).
    pub(crate) fn verify_crc(&self, sector: &[u8]) -> Result<()> {
        if !self.has_crc() {
            return Ok(());
        }
        let n = usize::from(self.sectsize).min(sector.len());
        super::csum::verify(&sector[..n], 0xE0).map_err(|(stored, computed)| {
            Error::new(
                ErrorKind::Checksum,
                format!(
                    "superblock CRC {stored:#010x} does not match the computed {computed:#010x}"
                ),
            )
            .structure("xfs superblock")
            .at(0)
        })
    }

    /// The label as blkid prints it.
    pub(crate) fn label(&self) -> String {
        let end = self.fname.iter().position(|&c| c == 0).unwrap_or(12);
        String::from_utf8_lossy(&self.fname[..end]).into_owned()
    }

    /// The UUID as blkid prints it.
    pub(crate) fn uuid_string(&self) -> String {
        let h: String = self.uuid.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// Directory block size in bytes.
    pub(crate) fn dir_block_size(&self) -> u32 {
        self.block_size << self.dirblklog
    }

    /// Filesystem block number (`agno << agblklog | agbno`) → linear block on the device.
    /// `None` when the AG or the AG block is out of range.
    pub(crate) fn fsb_to_linear(&self, fsb: u64) -> Option<u64> {
        let agno = fsb >> self.agblklog;
        let agbno = fsb & ((1u64 << self.agblklog) - 1);
        if agno >= u64::from(self.agcount) || agbno >= u64::from(self.agblocks) {
            return None;
        }
        let lin = agno * u64::from(self.agblocks) + agbno;
        (lin < self.dblocks).then_some(lin)
    }

    /// The byte offset of inode `ino`, or `None` when it cannot exist.
    pub(crate) fn inode_offset(&self, ino: u64) -> Option<u64> {
        let shift = u32::from(self.agblklog) + u32::from(self.inopblog);
        let agno = ino >> shift;
        let agbno = (ino >> self.inopblog) & ((1u64 << self.agblklog) - 1);
        let idx = ino & ((1u64 << self.inopblog) - 1);
        if agno >= u64::from(self.agcount) || agbno >= u64::from(self.agblocks) {
            return None;
        }
        let lin = agno * u64::from(self.agblocks) + agbno;
        if lin >= self.dblocks {
            return None;
        }
        Some((lin << self.blocklog) + (idx << self.inodelog))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v5 superblock like mkfs.xfs makes for a 64 MiB filesystem (4 AGs of 4096 4k blocks).
    pub(crate) fn sample() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..4].copy_from_slice(&SB_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&4096u32.to_be_bytes());
        b[8..16].copy_from_slice(&16384u64.to_be_bytes());
        b[0x38..0x40].copy_from_slice(&128u64.to_be_bytes());
        b[0x54..0x58].copy_from_slice(&4096u32.to_be_bytes());
        b[0x58..0x5C].copy_from_slice(&4u32.to_be_bytes());
        b[0x64..0x66].copy_from_slice(&0xB4A5u16.to_be_bytes());
        b[0x66..0x68].copy_from_slice(&512u16.to_be_bytes());
        b[0x68..0x6A].copy_from_slice(&512u16.to_be_bytes());
        b[0x6A..0x6C].copy_from_slice(&8u16.to_be_bytes());
        b[0x78] = 12;
        b[0x79] = 9;
        b[0x7A] = 9;
        b[0x7B] = 3;
        b[0x7C] = 12;
        b[0xD8..0xDC].copy_from_slice(&(incompat::FTYPE | incompat::BIGTIME).to_be_bytes());
        b
    }

    #[test]
    fn parses_and_maps() {
        let sb = Superblock::parse(&sample()).expect("valid");
        assert!(sb.has_crc() && sb.has_ftype());
        assert_eq!(sb.inode_offset(128), Some(16 * 4096));
        assert_eq!(sb.fsb_to_linear((1 << 12) | 5), Some(4096 + 5));
        assert_eq!(sb.fsb_to_linear(4 << 12), None);
        assert_eq!(sb.fsb_to_linear(4096), Some(4096));
        // AGs of 3000 blocks: AG block numbers 3000..4096 do not exist.
        let mut b = sample();
        b[0x54..0x58].copy_from_slice(&3000u32.to_be_bytes());
        b[8..16].copy_from_slice(&12000u64.to_be_bytes());
        let sb = Superblock::parse(&b).expect("valid");
        assert_eq!(sb.fsb_to_linear(3500), None);
        assert_eq!(sb.fsb_to_linear((1 << 12) | 2999), Some(5999));
    }

    #[test]
    fn rejects_bad_geometry() {
        let mut b = sample();
        b[0x7C] = 20;
        assert!(Superblock::parse(&b).is_err());
        let mut b = sample();
        b[0x78] = 11;
        assert!(Superblock::parse(&b).is_err());
        let mut b = sample();
        b[0xD8..0xDC].copy_from_slice(&0x8000_0000u32.to_be_bytes());
        let sb = Superblock::parse(&b).expect("parses");
        assert!(sb.unknown_incompat().is_some());
    }
}
