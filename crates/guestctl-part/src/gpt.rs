//! GPT (I/O-free): the header (with its CRC32) and the partition entry array (with its
//! CRC32), for any sector size, entry count and entry size within bounds.

/// "EFI PART".
pub const SIGNATURE: &[u8; 8] = b"EFI PART";
/// The largest partition entry array read (bytes).
pub const MAX_ENTRY_ARRAY: u64 = 16 << 20;

/// A validated GPT header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// LBA of this header.
    pub my_lba: u64,
    /// LBA of the other copy.
    pub alternate_lba: u64,
    /// First usable LBA.
    pub first_usable: u64,
    /// Last usable LBA.
    pub last_usable: u64,
    /// Disk GUID (as stored, mixed-endian).
    pub disk_guid: [u8; 16],
    /// LBA of the entry array.
    pub entries_lba: u64,
    /// Number of entries.
    pub entry_count: u32,
    /// Size of one entry.
    pub entry_size: u32,
    /// CRC32 of the entry array.
    pub entries_crc: u32,
}

impl Header {
    /// Bytes of the entry array.
    pub fn array_len(&self) -> u64 {
        u64::from(self.entry_count) * u64::from(self.entry_size)
    }
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from(le32(b, o)) | (u64::from(le32(b, o + 4)) << 32)
}

/// Parses and checks the header in `sector` (one whole sector).
pub fn parse_header(sector: &[u8]) -> Result<Header, String> {
    if sector.len() < 92 || &sector[..8] != SIGNATURE {
        return Err("no \"EFI PART\" signature".into());
    }
    let size = le32(sector, 12) as usize;
    if size < 92 || size > sector.len() {
        return Err(format!("header size {size}"));
    }
    let stored = le32(sector, 16);
    let mut h = sector[..size].to_vec();
    h[16..20].fill(0);
    let computed = crc32fast::hash(&h);
    if stored != computed {
        return Err(format!(
            "header CRC32 {stored:#010x} does not match the computed {computed:#010x}"
        ));
    }
    let mut disk_guid = [0u8; 16];
    disk_guid.copy_from_slice(&sector[56..72]);
    let hdr = Header {
        my_lba: le64(sector, 24),
        alternate_lba: le64(sector, 32),
        first_usable: le64(sector, 40),
        last_usable: le64(sector, 48),
        disk_guid,
        entries_lba: le64(sector, 72),
        entry_count: le32(sector, 80),
        entry_size: le32(sector, 84),
        entries_crc: le32(sector, 88),
    };
    if hdr.entry_size < 128 || hdr.entry_size % 8 != 0 {
        return Err(format!("partition entry size {}", hdr.entry_size));
    }
    if hdr.array_len() > MAX_ENTRY_ARRAY {
        return Err(format!(
            "{} entries of {} bytes",
            hdr.entry_count, hdr.entry_size
        ));
    }
    if hdr.first_usable > hdr.last_usable {
        return Err(format!(
            "first usable LBA {} after last {}",
            hdr.first_usable, hdr.last_usable
        ));
    }
    Ok(hdr)
}

/// One used entry of the array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Index in the array (partition number - 1).
    pub index: u32,
    /// Partition type GUID (as stored).
    pub type_guid: [u8; 16],
    /// Unique partition GUID (as stored).
    pub part_guid: [u8; 16],
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Attribute bits.
    pub attributes: u64,
    /// Name (UTF-16LE, up to the first NUL; 0xFFFF padding also ends it).
    pub name: String,
}

/// Parses the entry array after checking its CRC32. Unused entries (zero type GUID) are left
/// out; entries whose LBAs are reversed are errors.
pub fn parse_entries(hdr: &Header, array: &[u8]) -> Result<Vec<Entry>, String> {
    if (array.len() as u64) < hdr.array_len() {
        return Err("partition entry array is truncated".into());
    }
    let array = &array[..hdr.array_len() as usize];
    let computed = crc32fast::hash(array);
    if computed != hdr.entries_crc {
        return Err(format!(
            "partition entry array CRC32 {:#010x} does not match the computed {computed:#010x}",
            hdr.entries_crc
        ));
    }
    let mut out = Vec::new();
    for (i, e) in array.chunks_exact(hdr.entry_size as usize).enumerate() {
        let mut type_guid = [0u8; 16];
        type_guid.copy_from_slice(&e[..16]);
        if type_guid == [0; 16] {
            continue;
        }
        let mut part_guid = [0u8; 16];
        part_guid.copy_from_slice(&e[16..32]);
        let first_lba = le64(e, 32);
        let last_lba = le64(e, 40);
        if last_lba < first_lba {
            return Err(format!(
                "partition {} ends (LBA {last_lba}) before it starts ({first_lba})",
                i + 1
            ));
        }
        let units: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0 && u != 0xFFFF)
            .collect();
        out.push(Entry {
            index: i as u32,
            type_guid,
            part_guid,
            first_lba,
            last_lba,
            attributes: le64(e, 48),
            name: String::from_utf16_lossy(&units),
        });
    }
    Ok(out)
}

/// A GUID as text (the mixed-endian layout GPT stores), upper case like sgdisk.
pub fn guid_string(g: &[u8; 16]) -> String {
    format!(
        "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]
    )
}

/// A short name for common partition type GUIDs.
pub fn type_name(guid: &str) -> &'static str {
    match guid {
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" => "EFI system",
        "21686148-6449-6E6F-744E-656564454649" => "BIOS boot",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4" => "Linux filesystem",
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" => "Linux swap",
        "E6D6D379-F507-44C2-A23C-238F2A3DF928" => "Linux LVM",
        "A19D880F-05FC-4D3B-A006-743F0F84911E" => "Linux RAID",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" => "Linux root (x86-64)",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915" => "Linux home",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172" => "Linux extended boot",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" => "Microsoft basic data",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" => "Microsoft reserved",
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC" => "Windows recovery",
        "516E7CB4-6ECF-11D6-8FF8-00022D09712B" => "FreeBSD",
        "6A898CC3-1DD2-11B2-99A6-080020736631" => "ZFS / Solaris /usr",
        "48465300-0000-11AA-AA11-00306543ECAC" => "Apple HFS+",
        "AA31E02A-400F-11DB-9590-000C2911D1B8" => "VMware VMFS",
        "9D275380-40AD-11DB-BF97-000C2911D1B8" => "VMware vmkcore",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(entries: &[u8], count: u32) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(SIGNATURE);
        h[8..12].copy_from_slice(&0x10000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[32..40].copy_from_slice(&1000u64.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&966u64.to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&count.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32fast::hash(entries).to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    }

    #[test]
    fn header_and_entries_round_trip() {
        let mut entries = vec![0u8; 128 * 4];
        entries[0] = 0xAF; // some type GUID
        entries[32..40].copy_from_slice(&100u64.to_le_bytes());
        entries[40..48].copy_from_slice(&199u64.to_le_bytes());
        for (i, c) in "root".encode_utf16().enumerate() {
            entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&c.to_le_bytes());
        }
        let h = header(&entries, 4);
        let hdr = parse_header(&h).expect("header");
        let e = parse_entries(&hdr, &entries).expect("entries");
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].first_lba, e[0].last_lba, e[0].name.as_str()),
            (100, 199, "root")
        );
        let mut bad = h.clone();
        bad[40] ^= 1;
        assert!(parse_header(&bad).expect_err("crc").contains("CRC32"));
        let mut bad_entries = entries.clone();
        bad_entries[33] ^= 1;
        assert!(parse_entries(&hdr, &bad_entries).is_err());
    }

    #[test]
    fn guid_text_is_mixed_endian() {
        let g = [
            0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
            0xC9, 0x3B,
        ];
        assert_eq!(guid_string(&g), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
        assert_eq!(type_name(&guid_string(&g)), "EFI system");
    }
}
