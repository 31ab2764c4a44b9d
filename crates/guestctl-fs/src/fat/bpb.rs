//! The boot sector / BIOS parameter block: an I/O-free parser over the first sector.

use crate::bytes::{le16, le32};
use crate::{Error, Result};

/// Which FAT width the volume uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FatKind {
    Fat12,
    Fat16,
    Fat32,
}

/// The geometry and identity of a FAT volume, all in bytes or clusters.
#[derive(Debug, Clone)]
pub(crate) struct Bpb {
    pub kind: FatKind,
    pub cluster_size: u32,
    /// Byte offset of the FAT copy that is read (the active one on FAT32 without mirroring).
    pub fat_offset: u64,
    /// Bytes of one FAT copy.
    pub fat_bytes: u64,
    /// Byte offset and length of the fixed root directory (FAT12/16; zero length on FAT32).
    pub root_offset: u64,
    pub root_bytes: u64,
    /// Byte offset of cluster 2.
    pub data_offset: u64,
    /// Number of data clusters (valid cluster numbers are `2..cluster_count + 2`).
    pub cluster_count: u32,
    /// First cluster of the FAT32 root directory.
    pub root_cluster: u32,
    /// Total bytes of the volume.
    pub total_bytes: u64,
    pub serial: Option<u32>,
    pub label: Option<[u8; 11]>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::corrupt(msg.into())
        .structure("FAT boot sector")
        .at(0)
}

/// The most clusters a FAT32 volume may have (28-bit entries minus reserved values).
const MAX_FAT32_CLUSTERS: u32 = 0x0FFF_FFF5;

impl Bpb {
    /// Parses the boot sector (`b` holds at least its first 512 bytes).
    pub fn parse(b: &[u8]) -> Result<Bpb> {
        if b.len() < 512 {
            return Err(bad("boot sector shorter than 512 bytes"));
        }
        if &b[3..11] == b"EXFAT   " {
            return Err(Error::unsupported("exFAT is not supported yet")
                .structure("FAT boot sector")
                .at(0));
        }
        let bps = u32::from(le16(b, 11));
        if !matches!(bps, 512 | 1024 | 2048 | 4096) {
            return Err(bad(format!(
                "bytes per sector is {bps}, not 512, 1024, 2048 or 4096"
            )));
        }
        let spc = u32::from(b[13]);
        if spc == 0 || !spc.is_power_of_two() {
            return Err(bad(format!(
                "sectors per cluster is {spc}, not a power of two"
            )));
        }
        let reserved = u64::from(le16(b, 14));
        if reserved == 0 {
            return Err(bad("no reserved sectors"));
        }
        let nfats = u64::from(b[16]);
        if nfats == 0 {
            return Err(bad("the number of FATs is 0"));
        }
        let root_entries = u64::from(le16(b, 17));
        let tot16 = u64::from(le16(b, 19));
        let fat16_len = u64::from(le16(b, 22));
        let tot32 = u64::from(le32(b, 32));
        let total_sectors = if tot16 != 0 { tot16 } else { tot32 };
        let fat32 = fat16_len == 0;
        let fat_sectors = if fat32 {
            u64::from(le32(b, 36))
        } else {
            fat16_len
        };
        if fat_sectors == 0 {
            return Err(bad("the FAT size is 0"));
        }
        let bps64 = u64::from(bps);
        let root_sectors = (root_entries * 32).div_ceil(bps64);
        if fat32 && root_entries != 0 {
            return Err(bad("FAT32 volume with a fixed root directory"));
        }
        if !fat32 && root_entries == 0 {
            return Err(bad("FAT12/16 volume without root directory entries"));
        }
        let first_data = reserved + nfats * fat_sectors + root_sectors;
        if total_sectors <= first_data {
            return Err(bad(format!(
                "total sectors ({total_sectors}) leave no room for data after sector {first_data}"
            )));
        }
        let clusters = (total_sectors - first_data) / u64::from(spc);
        let ext_flags = le16(b, 40);
        let (kind, bits) = if fat32 {
            (FatKind::Fat32, 32u64)
        } else if clusters < 4085 {
            (FatKind::Fat12, 12)
        } else {
            (FatKind::Fat16, 16)
        };
        // Entries that fit in one FAT copy (two reserved ones first).
        let fat_bytes = fat_sectors * bps64;
        let capacity = (fat_bytes * 8 / bits).saturating_sub(2);
        let max = match kind {
            FatKind::Fat12 => 4084,
            FatKind::Fat16 => 65524,
            FatKind::Fat32 => u64::from(MAX_FAT32_CLUSTERS),
        };
        if clusters == 0 || clusters > max {
            return Err(bad(format!(
                "{clusters} clusters is impossible for {kind:?}"
            )));
        }
        if clusters > capacity {
            return Err(bad(format!(
                "{clusters} clusters but the FAT ({fat_bytes} bytes) holds only {capacity} entries"
            )));
        }
        let active = if fat32 && ext_flags & 0x80 != 0 {
            u64::from(ext_flags & 0x0F)
        } else {
            0
        };
        if active >= nfats {
            return Err(bad(format!("active FAT {active} of {nfats}")));
        }
        let cluster_count = clusters as u32;
        let root_cluster = if fat32 { le32(b, 44) & 0x0FFF_FFFF } else { 0 };
        if fat32 && (root_cluster < 2 || root_cluster - 2 >= cluster_count) {
            return Err(bad(format!(
                "root cluster {root_cluster} is not a data cluster"
            )));
        }
        let ebpb = if fat32 { 64 } else { 36 };
        let (serial, label) = if b[ebpb + 2] == 0x29 || b[ebpb + 2] == 0x28 {
            let serial = le32(b, ebpb + 3);
            let label = if b[ebpb + 2] == 0x29 {
                let mut l = [0u8; 11];
                l.copy_from_slice(&b[ebpb + 7..ebpb + 18]);
                Some(l)
            } else {
                None
            };
            (Some(serial), label)
        } else {
            (None, None)
        };
        Ok(Bpb {
            kind,
            cluster_size: bps * spc,
            fat_offset: (reserved + active * fat_sectors) * bps64,
            fat_bytes,
            root_offset: (reserved + nfats * fat_sectors) * bps64,
            root_bytes: root_entries * 32,
            data_offset: first_data * bps64,
            cluster_count,
            root_cluster,
            total_bytes: total_sectors * bps64,
            serial,
            label,
        })
    }

    /// Byte offset on the device of data cluster `c` (which must be valid).
    pub fn cluster_offset(&self, c: u32) -> u64 {
        self.data_offset + u64::from(c - 2) * u64::from(self.cluster_size)
    }

    /// Whether `c` names a data cluster.
    pub fn valid_cluster(&self, c: u32) -> bool {
        c >= 2 && c - 2 < self.cluster_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fat16_sector() -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[11..13].copy_from_slice(&512u16.to_le_bytes());
        b[13] = 4;
        b[14..16].copy_from_slice(&4u16.to_le_bytes());
        b[16] = 2;
        b[17..19].copy_from_slice(&512u16.to_le_bytes());
        b[32..36].copy_from_slice(&100_000u32.to_le_bytes());
        b[22..24].copy_from_slice(&100u16.to_le_bytes());
        b[38] = 0x29;
        b[39..43].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        b[43..54].copy_from_slice(b"HELLO      ");
        b
    }

    #[test]
    fn parses_fat16_geometry() {
        let p = Bpb::parse(&fat16_sector()).expect("parses");
        assert_eq!(p.kind, FatKind::Fat16);
        assert_eq!(p.cluster_size, 2048);
        assert_eq!(p.fat_offset, 4 * 512);
        assert_eq!(p.root_offset, (4 + 200) * 512);
        assert_eq!(p.data_offset, (4 + 200 + 32) * 512);
        assert_eq!(p.cluster_count, (100_000 - 236) / 4);
        assert_eq!(p.serial, Some(0x1234_5678));
    }

    #[test]
    fn rejects_zero_sectors_per_cluster_and_exfat() {
        let mut b = fat16_sector();
        b[13] = 0;
        assert!(Bpb::parse(&b).is_err());
        let mut b = fat16_sector();
        b[3..11].copy_from_slice(b"EXFAT   ");
        assert_eq!(
            Bpb::parse(&b).expect_err("exFAT").kind(),
            crate::ErrorKind::Unsupported
        );
    }

    #[test]
    fn rejects_fat_too_small_for_clusters() {
        let mut b = fat16_sector();
        b[22..24].copy_from_slice(&10u16.to_le_bytes());
        assert!(Bpb::parse(&b).is_err());
    }
}
