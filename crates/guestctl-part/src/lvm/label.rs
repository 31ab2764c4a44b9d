//! The binary parts of an LVM2 physical volume: the label sector (`LABELONE` + the PV
//! header), the metadata area header (`mda_header`) and its raw location list.
//!
//! All functions here are pure: they take bytes and return values or errors. Offsets are
//! little-endian at the positions of lvm2's `lib/format_text/layout.h` and `lib/label/label.h`.

use guestctl_block::Error;

use super::{Result, MAX_AREAS, MAX_TEXT};

/// Bytes in a sector, as LVM counts its label and header sectors.
pub const SECTOR: u64 = 512;
/// The label may sit in any of the first this many sectors.
pub const LABEL_SCAN_SECTORS: u64 = 4;
/// Size of the metadata area header; wrapped metadata text continues right after it.
pub const MDA_HEADER_SIZE: u64 = 512;
/// `mda_header` magic.
pub const MDA_MAGIC: &[u8; 16] =
    b"\x20\x4c\x56\x4d\x32\x20\x78\x5b\x35\x41\x25\x72\x30\x4e\x2a\x3e";
/// The CRC seed lvm2 uses for labels, mda headers and metadata text.
pub const INITIAL_CRC: u32 = 0xf597_a6cf;

/// lvm2's checksum: CRC-32 (reflected polynomial 0xEDB88320) started from `seed`, without the
/// final inversion of the zlib convention.
pub fn lvm_crc(seed: u32, data: &[u8]) -> u32 {
    // crc32fast continues from a finished zlib-style CRC, i.e. from an inverted state.
    let mut h = crc32fast::Hasher::new_with_initial(!seed);
    h.update(data);
    !h.finalize()
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// A `disk_locn`: a byte range of the PV (offset from the start of the PV device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskArea {
    /// Byte offset from the start of the device.
    pub offset: u64,
    /// Length in bytes (0 for a data area means "to the end of the device").
    pub size: u64,
}

/// A parsed PV label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// The sector (0..4) the label was found in.
    pub sector: u64,
    /// The PV UUID, 32 characters without dashes as stored.
    pub pv_uuid: String,
    /// Device size recorded by pvcreate, in bytes.
    pub device_size: u64,
    /// Data areas (normally one, starting at `pe_start`).
    pub data_areas: Vec<DiskArea>,
    /// Metadata areas (0, 1 or 2).
    pub metadata_areas: Vec<DiskArea>,
}

/// Looks for an LVM2 label in `head`, the first [`LABEL_SCAN_SECTORS`] sectors of a device
/// (fewer if the device is shorter). `Ok(None)`: no `LABELONE` sector at all (not a PV).
/// A `LABELONE` sector that fails its checks is an error naming the sector's offset.
pub fn parse_label(head: &[u8]) -> Result<Option<PvLabel>> {
    let mut first_err = None;
    for sector in 0..LABEL_SCAN_SECTORS {
        let start = (sector * SECTOR) as usize;
        let Some(s) = head.get(start..start + SECTOR as usize) else {
            break;
        };
        if &s[..8] != b"LABELONE" {
            continue;
        }
        match parse_label_sector(s, sector) {
            Ok(l) => return Ok(Some(l)),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e.structure("LVM2 label").at(start as u64));
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

fn parse_label_sector(s: &[u8], sector: u64) -> Result<PvLabel> {
    let recorded_sector = u64_at(s, 8);
    if recorded_sector != sector {
        return Err(Error::corrupt(format!(
            "label says it is in sector {recorded_sector}, found in sector {sector}"
        )));
    }
    let crc = u32_at(s, 16);
    let want = lvm_crc(INITIAL_CRC, &s[20..]);
    if crc != want {
        return Err(Error::corrupt(format!(
            "label checksum {crc:#010x} does not match the computed {want:#010x}"
        )));
    }
    let contents = u32_at(s, 20) as usize;
    if &s[24..32] != b"LVM2 001" {
        return Err(Error::unsupported(format!(
            "label type {:?} is not \"LVM2 001\"",
            String::from_utf8_lossy(&s[24..32])
        )));
    }
    // pv_header: uuid[32], device_size u64, then disk_locn lists (16 bytes each).
    if contents < 32 || contents + 32 + 8 + 16 > s.len() {
        return Err(Error::corrupt(format!(
            "PV header offset {contents} lies outside the label sector"
        )));
    }
    let uuid_bytes = &s[contents..contents + 32];
    if !uuid_bytes.iter().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::corrupt("PV UUID is not 32 alphanumeric characters"));
    }
    let pv_uuid = String::from_utf8_lossy(uuid_bytes).into_owned();
    let device_size = u64_at(s, contents + 32);
    let mut at = contents + 40;
    let mut lists = [Vec::new(), Vec::new()];
    for (which, list) in lists.iter_mut().enumerate() {
        loop {
            if at + 16 > s.len() {
                return Err(Error::corrupt(format!(
                    "{} area list runs past the end of the label sector",
                    ["data", "metadata"][which]
                )));
            }
            let offset = u64_at(s, at);
            let size = u64_at(s, at + 8);
            at += 16;
            if offset == 0 {
                break;
            }
            if list.len() >= MAX_AREAS {
                return Err(Error::corrupt(format!(
                    "more than {MAX_AREAS} {} areas",
                    ["data", "metadata"][which]
                )));
            }
            list.push(DiskArea { offset, size });
        }
    }
    let [data_areas, metadata_areas] = lists;
    Ok(PvLabel {
        sector,
        pv_uuid,
        device_size,
        data_areas,
        metadata_areas,
    })
}

/// One `raw_locn` of a metadata area header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawLocation {
    /// Offset of the text from the start of the metadata area.
    pub offset: u64,
    /// Text size in bytes.
    pub size: u64,
    /// lvm2 CRC of the text.
    pub checksum: u32,
    /// `RAW_LOCN_IGNORED`: this area is not used (pvchange --metadataignore).
    pub ignored: bool,
}

/// A parsed `mda_header`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdaHeader {
    /// Format version (1).
    pub version: u32,
    /// Absolute byte offset of the area on the PV, as the header records it.
    pub start: u64,
    /// Area size in bytes (header included).
    pub size: u64,
    /// Raw locations; the first one is the committed metadata.
    pub locations: Vec<RawLocation>,
}

/// Parses the 512-byte metadata area header (checksum, magic, version, location list).
pub fn parse_mda_header(b: &[u8]) -> Result<MdaHeader> {
    if b.len() < MDA_HEADER_SIZE as usize {
        return Err(Error::corrupt(
            "metadata area header is shorter than 512 bytes",
        ));
    }
    let b = &b[..MDA_HEADER_SIZE as usize];
    if &b[4..20] != MDA_MAGIC {
        return Err(Error::corrupt("bad metadata area header magic"));
    }
    let crc = u32_at(b, 0);
    let want = lvm_crc(INITIAL_CRC, &b[4..]);
    if crc != want {
        return Err(Error::corrupt(format!(
            "metadata area header checksum {crc:#010x} does not match the computed {want:#010x}"
        )));
    }
    let version = u32_at(b, 20);
    if version != 1 {
        return Err(Error::unsupported(format!(
            "metadata area header version {version} (only 1 is known)"
        )));
    }
    let start = u64_at(b, 24);
    let size = u64_at(b, 32);
    if size <= MDA_HEADER_SIZE {
        return Err(Error::corrupt(format!(
            "metadata area of {size} bytes has no room after its header"
        )));
    }
    let mut locations = Vec::new();
    let mut at = 40;
    while at + 24 <= b.len() {
        let offset = u64_at(b, at);
        if offset == 0 {
            break;
        }
        locations.push(RawLocation {
            offset,
            size: u64_at(b, at + 8),
            checksum: u32_at(b, at + 16),
            ignored: u32_at(b, at + 20) & 1 != 0,
        });
        at += 24;
    }
    Ok(MdaHeader {
        version,
        start,
        size,
        locations,
    })
}

/// Where the text of `loc` lies in an area of `area_size` bytes: one or two byte ranges
/// `(offset from area start, length)`. Text that reaches the end of the circular buffer
/// continues right after the 512-byte header.
pub fn text_ranges(area_size: u64, loc: &RawLocation) -> Result<Vec<(u64, u64)>> {
    if loc.size == 0 {
        return Err(Error::corrupt("metadata location has size 0"));
    }
    if loc.size > MAX_TEXT as u64 {
        return Err(Error::refused(format!(
            "metadata text of {} bytes is larger than the {MAX_TEXT}-byte limit",
            loc.size
        )));
    }
    if loc.offset < MDA_HEADER_SIZE || loc.offset >= area_size {
        return Err(Error::corrupt(format!(
            "metadata text offset {} lies outside the circular buffer (512..{area_size})",
            loc.offset
        )));
    }
    let ring = area_size - MDA_HEADER_SIZE;
    if loc.size > ring {
        return Err(Error::corrupt(format!(
            "metadata text of {} bytes is larger than its {ring}-byte circular buffer",
            loc.size
        )));
    }
    let first = (area_size - loc.offset).min(loc.size);
    let mut v = vec![(loc.offset, first)];
    if first < loc.size {
        v.push((MDA_HEADER_SIZE, loc.size - first));
    }
    Ok(v)
}

/// Checks the text of a location against its recorded checksum.
pub fn check_text(loc: &RawLocation, text: &[u8]) -> Result<()> {
    let got = lvm_crc(INITIAL_CRC, text);
    if got != loc.checksum {
        return Err(Error::corrupt(format!(
            "metadata text checksum {got:#010x} does not match the recorded {:#010x}",
            loc.checksum
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_lvm2_reference_loop() {
        // lvm2's calc_crc: a nibble-wise table loop of the reflected polynomial, no final xor.
        fn reference(mut crc: u32, data: &[u8]) -> u32 {
            for &b in data {
                crc ^= u32::from(b);
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        (crc >> 1) ^ 0xedb8_8320
                    } else {
                        crc >> 1
                    };
                }
            }
            crc
        }
        let data = b"The quick brown fox jumps over the lazy dog";
        assert_eq!(lvm_crc(INITIAL_CRC, data), reference(INITIAL_CRC, data));
        assert_eq!(lvm_crc(INITIAL_CRC, b""), INITIAL_CRC);
    }

    #[test]
    fn wrapped_ranges() {
        let loc = RawLocation {
            offset: 900,
            size: 300,
            checksum: 0,
            ignored: false,
        };
        assert_eq!(
            text_ranges(1024, &loc).expect("ranges"),
            vec![(900, 124), (512, 176)]
        );
        let big = RawLocation { size: 600, ..loc };
        assert!(text_ranges(1024, &big).is_err());
    }
}
