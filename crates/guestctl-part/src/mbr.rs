//! The MBR partition table (I/O-free): four 16-byte entries at byte 446 and the 0x55AA
//! signature. The same layout serves extended boot records (EBRs).

/// One entry of an MBR or EBR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Slot 0..=3.
    pub slot: usize,
    /// Boot flag (0x80) set.
    pub bootable: bool,
    /// Partition type byte.
    pub kind: u8,
    /// First sector (relative to the table's base).
    pub start: u64,
    /// Number of sectors.
    pub sectors: u64,
}

impl Entry {
    /// Whether this entry links to an extended partition (DOS 0x05, LBA 0x0F, Linux 0x85).
    pub fn is_extended(&self) -> bool {
        matches!(self.kind, 0x05 | 0x0F | 0x85)
    }
}

/// Why a sector is not an MBR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotMbr {
    /// No 0x55AA at byte 510.
    NoSignature,
    /// A status byte other than 0x00/0x80 (boot sectors of filesystems look like this).
    BadStatus(usize, u8),
}

/// Parses the four entries of `sector` (at least 512 bytes). Empty slots (type 0 or zero
/// sectors) are left out.
pub fn parse(sector: &[u8]) -> Result<Vec<Entry>, NotMbr> {
    if sector.len() < 512 || sector[510] != 0x55 || sector[511] != 0xAA {
        return Err(NotMbr::NoSignature);
    }
    let mut out = Vec::new();
    for slot in 0..4 {
        let e = &sector[446 + 16 * slot..446 + 16 * (slot + 1)];
        let status = e[0];
        if status != 0 && status != 0x80 {
            return Err(NotMbr::BadStatus(slot, status));
        }
        let kind = e[4];
        let start = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
        let sectors = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
        if kind == 0 || sectors == 0 {
            continue;
        }
        out.push(Entry {
            slot,
            bootable: status == 0x80,
            kind,
            start,
            sectors,
        });
    }
    Ok(out)
}

/// A short name for common MBR type bytes.
pub fn type_name(kind: u8) -> &'static str {
    match kind {
        0x01 => "FAT12",
        0x04 | 0x06 | 0x0E => "FAT16",
        0x05 | 0x0F | 0x85 => "extended",
        0x07 => "NTFS/exFAT/HPFS",
        0x0B | 0x0C => "FAT32",
        0x11 | 0x14 | 0x16 | 0x1B | 0x1C | 0x1E => "hidden FAT",
        0x27 => "Windows recovery",
        0x82 => "Linux swap",
        0x83 => "Linux",
        0x8E => "Linux LVM",
        0xA5 => "FreeBSD",
        0xA6 => "OpenBSD",
        0xA9 => "NetBSD",
        0xEE => "GPT protective",
        0xEF => "EFI system",
        0xFD => "Linux RAID",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_and_rejects_boot_sectors() {
        let mut s = vec![0u8; 512];
        s[510] = 0x55;
        s[511] = 0xAA;
        let e = &mut s[446 + 16..446 + 32];
        e[0] = 0x80;
        e[4] = 0x83;
        e[8..12].copy_from_slice(&2048u32.to_le_bytes());
        e[12..16].copy_from_slice(&4096u32.to_le_bytes());
        let v = parse(&s).expect("mbr");
        assert_eq!(
            v,
            vec![Entry {
                slot: 1,
                bootable: true,
                kind: 0x83,
                start: 2048,
                sectors: 4096
            }]
        );
        s[446] = 0x12;
        assert_eq!(parse(&s), Err(NotMbr::BadStatus(0, 0x12)));
        assert_eq!(parse(&[0u8; 512]), Err(NotMbr::NoSignature));
        assert_eq!(parse(&[0u8; 10]), Err(NotMbr::NoSignature));
    }
}
