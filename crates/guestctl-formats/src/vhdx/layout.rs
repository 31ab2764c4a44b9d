//! The on-disk structures of VHDX (MS-VHDX, "VHDX Format Specification v1.00"), parsed from
//! bytes by I/O-free functions: the file identifier, the two headers, the region table, the
//! metadata table and its items (file parameters, sizes, page 83 data, the parent locator) and
//! the BAT geometry. Every field read from an image is checked here before anything is sized
//! or looped over from it. The writer in `guestctl-convert` builds its structures with the
//! constants and [`checksum`] of this module, so both sides share one definition.

use std::fmt;

use crate::bytes::{bytes16, le32, le64};

/// Little-endian u16 at `off` (callers bound the buffer first).
fn le16(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

/// Bytes `"vhdxfile"` at offset 0.
pub const SIGNATURE: &[u8; 8] = b"vhdxfile";
/// The header section: file identifier, two headers, two region tables, reserved (1 MiB).
pub const HEADER_SECTION: u64 = 1 << 20;
/// Where the two headers live.
pub const HEADER_OFFSETS: [u64; 2] = [64 << 10, 128 << 10];
/// Bytes a header's checksum covers.
pub const HEADER_LEN: usize = 4096;
/// Where the two copies of the region table live.
pub const REGION_TABLE_OFFSETS: [u64; 2] = [192 << 10, 256 << 10];
/// Bytes of a region table (and of the metadata table).
pub const TABLE_LEN: usize = 64 << 10;
/// Alignment of regions, the log, and payload blocks in the file.
pub const MIB: u64 = 1 << 20;
/// Largest virtual disk the format allows: 64 TiB.
pub const MAX_DISK_SIZE: u64 = 64 << 40;
/// Payload block size limits.
pub const MIN_BLOCK_SIZE: u32 = 1 << 20;
/// Largest payload block.
pub const MAX_BLOCK_SIZE: u32 = 256 << 20;
/// Sectors one sector-bitmap block describes (2^23, so a chunk is 2^23 logical sectors).
pub const SECTORS_PER_BITMAP: u64 = 1 << 23;
/// Most region table and metadata table entries.
pub const MAX_TABLE_ENTRIES: u32 = 2047;
/// Largest metadata item.
pub const MAX_ITEM_LEN: u32 = 1 << 20;

/// A GUID as stored (Microsoft byte order: the first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    /// The all-zero GUID.
    pub const ZERO: Guid = Guid([0; 16]);

    /// A GUID from its canonical fields (as written in the spec).
    pub const fn new(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> Guid {
        let a = d1.to_le_bytes();
        let b = d2.to_le_bytes();
        let c = d3.to_le_bytes();
        Guid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d4[0], d4[1], d4[2], d4[3], d4[4],
            d4[5], d4[6], d4[7],
        ])
    }

    /// True for the all-zero GUID.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }

    /// Parses `{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}` (braces optional), as the parent
    /// locator stores `parent_linkage`.
    pub fn parse(s: &str) -> Option<Guid> {
        let s = s.trim();
        let s = s
            .strip_prefix('{')
            .and_then(|x| x.strip_suffix('}'))
            .unwrap_or(s);
        let parts: Vec<&str> = s.split('-').collect();
        let lens = [8, 4, 4, 4, 12];
        if parts.len() != 5 || parts.iter().zip(lens).any(|(p, l)| p.len() != l) {
            return None;
        }
        let hex: String = parts.concat();
        let mut b = [0u8; 16];
        for (i, out) in b.iter_mut().enumerate() {
            *out = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        let d1 = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let d2 = u16::from_be_bytes([b[4], b[5]]);
        let d3 = u16::from_be_bytes([b[6], b[7]]);
        let mut d4 = [0u8; 8];
        d4.copy_from_slice(&b[8..]);
        Some(Guid::new(d1, d2, d3, d4))
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::bytes::uuid_string(&self.0, true))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{self}}}")
    }
}

/// Region table entry: the BAT.
pub const BAT_REGION: Guid = Guid::new(
    0x2dc2_7766,
    0xf623,
    0x4200,
    [0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08],
);
/// Region table entry: the metadata region.
pub const METADATA_REGION: Guid = Guid::new(
    0x8b7c_a206,
    0x4790,
    0x4b9a,
    [0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e],
);
/// Metadata item: file parameters (block size, flags).
pub const FILE_PARAMETERS: Guid = Guid::new(
    0xcaa1_6737,
    0xfa36,
    0x4d43,
    [0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b],
);
/// Metadata item: virtual disk size.
pub const VIRTUAL_DISK_SIZE: Guid = Guid::new(
    0x2fa5_4224,
    0xcd1b,
    0x4876,
    [0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8],
);
/// Metadata item: SCSI page 83 data (the virtual disk's id).
pub const PAGE83_DATA: Guid = Guid::new(
    0xbeca_12ab,
    0xb2e6,
    0x4523,
    [0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46],
);
/// Metadata item: logical sector size.
pub const LOGICAL_SECTOR_SIZE: Guid = Guid::new(
    0x8141_bf1d,
    0xa96f,
    0x4709,
    [0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f],
);
/// Metadata item: physical sector size.
pub const PHYSICAL_SECTOR_SIZE: Guid = Guid::new(
    0xcda3_48c7,
    0x445d,
    0x4471,
    [0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56],
);
/// Metadata item: parent locator.
pub const PARENT_LOCATOR: Guid = Guid::new(
    0xa8d3_5f2d,
    0xb30b,
    0x454d,
    [0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c],
);
/// Parent locator type: a VHDX parent.
pub const PARENT_TYPE_VHDX: Guid = Guid::new(
    0xb04a_efb7,
    0xd19e,
    0x4a81,
    [0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13],
);

/// CRC-32C (Castagnoli) of `buf` with the 4 bytes at `crc_at` taken as zero, as every VHDX
/// checksum is defined.
pub fn checksum(buf: &[u8], crc_at: usize) -> u32 {
    match (buf.get(..crc_at), buf.get(crc_at + 4..)) {
        (Some(head), Some(tail)) => {
            let c = crc32c::crc32c(head);
            let c = crc32c::crc32c_append(c, &[0; 4]);
            crc32c::crc32c_append(c, tail)
        }
        _ => crc32c::crc32c(buf),
    }
}

/// True when the stored checksum at `crc_at` matches.
fn checksum_ok(buf: &[u8], crc_at: usize) -> bool {
    buf.len() >= crc_at + 4 && le32(buf, crc_at) == checksum(buf, crc_at)
}

/// One of the two headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Higher is newer; the current header is the valid one with the higher number.
    pub sequence: u64,
    /// Changed before the first write of any kind after an open.
    pub file_write_guid: Guid,
    /// Changed before the first write of guest-visible data; a child's `parent_linkage`.
    pub data_write_guid: Guid,
    /// Non-zero: the log may hold entries with this GUID that must be replayed.
    pub log_guid: Guid,
    /// Log format version (0).
    pub log_version: u16,
    /// File format version (1).
    pub version: u16,
    /// Bytes of the log (multiple of 1 MiB).
    pub log_length: u32,
    /// File offset of the log (multiple of 1 MiB).
    pub log_offset: u64,
}

impl Header {
    /// The 4 KiB header with its checksum, as written at 64 KiB and 128 KiB.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        b[0..4].copy_from_slice(b"head");
        b[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        b[16..32].copy_from_slice(&self.file_write_guid.0);
        b[32..48].copy_from_slice(&self.data_write_guid.0);
        b[48..64].copy_from_slice(&self.log_guid.0);
        b[64..66].copy_from_slice(&self.log_version.to_le_bytes());
        b[66..68].copy_from_slice(&self.version.to_le_bytes());
        b[68..72].copy_from_slice(&self.log_length.to_le_bytes());
        b[72..80].copy_from_slice(&self.log_offset.to_le_bytes());
        let c = checksum(&b, 4);
        b[4..8].copy_from_slice(&c.to_le_bytes());
        b
    }
}

/// Parses a header from its 4 KiB; `None` when it is not valid (signature, checksum,
/// version 1), which is not an error by itself: the other header may be.
pub fn parse_header(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER_LEN || &b[0..4] != b"head" || !checksum_ok(&b[..HEADER_LEN], 4) {
        return None;
    }
    let h = Header {
        sequence: le64(b, 8),
        file_write_guid: Guid(bytes16(b, 16)),
        data_write_guid: Guid(bytes16(b, 32)),
        log_guid: Guid(bytes16(b, 48)),
        log_version: le16(b, 64),
        version: le16(b, 66),
        log_length: le32(b, 68),
        log_offset: le64(b, 72),
    };
    (h.version == 1).then_some(h)
}

/// Picks the current header: the only valid one, or the valid one with the higher sequence
/// number. Two valid headers with the same number are accepted only when identical (as qemu
/// does: Disk2VHD writes two identical headers). Returns the index (0: at 64 KiB) too.
pub fn current_header(
    h: [Option<Header>; 2],
) -> std::result::Result<(usize, Header), &'static str> {
    let [a, b] = h;
    match (a, b) {
        (Some(a), None) => Ok((0, a)),
        (None, Some(b)) => Ok((1, b)),
        (None, None) => Err("neither header is valid (signature, CRC-32C or version)"),
        (Some(a), Some(b)) => {
            if a.sequence > b.sequence {
                Ok((0, a))
            } else if b.sequence > a.sequence {
                Ok((1, b))
            } else if a == b {
                Ok((0, a))
            } else {
                Err("both headers are valid with the same sequence number but differ")
            }
        }
    }
}

/// Checks the current header's log fields (the log is located by them).
pub fn check_header(h: &Header, file_size: u64) -> std::result::Result<(), String> {
    if h.log_version != 0 {
        return Err(format!("log version {} (only 0 is defined)", h.log_version));
    }
    if h.log_offset < HEADER_SECTION || h.log_offset % MIB != 0 {
        return Err(format!(
            "log offset {:#x} is not a multiple of 1 MiB past the header section",
            h.log_offset
        ));
    }
    if h.log_offset.checked_add(u64::from(h.log_length)).is_none() {
        return Err(format!(
            "log offset {:#x} plus its length overflows",
            h.log_offset
        ));
    }
    if u64::from(h.log_length) % MIB != 0 {
        return Err(format!(
            "log length {} is not a multiple of 1 MiB",
            h.log_length
        ));
    }
    if !h.log_guid.is_zero()
        && h.log_offset
            .checked_add(u64::from(h.log_length))
            .is_none_or(|e| e > file_size)
    {
        return Err(format!(
            "the log ({} bytes at {:#x}) lies past the end of the file ({file_size} bytes)",
            h.log_length, h.log_offset
        ));
    }
    Ok(())
}

/// A region of the file named by the region table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// File offset (multiple of 1 MiB).
    pub offset: u64,
    /// Bytes (multiple of 1 MiB).
    pub length: u32,
}

impl Region {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.length)
    }
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.offset < end && start < self.end()
    }
}

/// What the region table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionTable {
    /// The block allocation table.
    pub bat: Region,
    /// The metadata region.
    pub metadata: Region,
}

/// Why a table was refused: the image is damaged, or uses something we do not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableError {
    /// Damaged or contradictory.
    Corrupt(String),
    /// A required entry we do not understand (the spec says: do not open the file).
    Unsupported(String),
}

/// Parses a 64 KiB region table. `log` is the log's range, which no region may overlap.
pub fn parse_region_table(
    b: &[u8],
    log: (u64, u64),
) -> std::result::Result<RegionTable, TableError> {
    use TableError::{Corrupt, Unsupported};
    if b.len() < TABLE_LEN || &b[0..4] != b"regi" {
        return Err(Corrupt("no \"regi\" signature".into()));
    }
    if !checksum_ok(&b[..TABLE_LEN], 4) {
        return Err(Corrupt("CRC-32C mismatch".into()));
    }
    let n = le32(b, 8);
    if n > MAX_TABLE_ENTRIES {
        return Err(Corrupt(format!(
            "{n} entries (at most {MAX_TABLE_ENTRIES})"
        )));
    }
    let (mut bat, mut metadata) = (None, None);
    let mut seen: Vec<Region> = Vec::new();
    for i in 0..n as usize {
        let e = &b[16 + 32 * i..48 + 32 * i];
        let guid = Guid(bytes16(e, 0));
        let r = Region {
            offset: le64(e, 16),
            length: le32(e, 24),
        };
        let required = le32(e, 28) & 1 != 0;
        let known = guid == BAT_REGION || guid == METADATA_REGION;
        if !known {
            if required {
                return Err(Unsupported(format!(
                    "required region {guid} is not one this reader knows"
                )));
            }
            continue;
        }
        if r.offset % MIB != 0
            || r.offset < HEADER_SECTION
            || u64::from(r.length) % MIB != 0
            || r.offset.checked_add(u64::from(r.length)).is_none()
        {
            return Err(Corrupt(format!(
                "region {guid} ({} bytes at {:#x}) is not 1 MiB aligned past the header section",
                r.length, r.offset
            )));
        }
        if r.length == 0 {
            return Err(Corrupt(format!("region {guid} is empty")));
        }
        if r.overlaps(log.0, log.1) || seen.iter().any(|s| s.overlaps(r.offset, r.end())) {
            return Err(Corrupt(format!(
                "region {guid} ({} bytes at {:#x}) overlaps the log or another region",
                r.length, r.offset
            )));
        }
        seen.push(r);
        let slot = if guid == BAT_REGION {
            &mut bat
        } else {
            &mut metadata
        };
        if slot.replace(r).is_some() {
            return Err(Corrupt(format!("region {guid} is listed twice")));
        }
    }
    match (bat, metadata) {
        (Some(bat), Some(metadata)) => Ok(RegionTable { bat, metadata }),
        _ => Err(Corrupt("the BAT or the metadata region is missing".into())),
    }
}

/// An entry of the metadata table: where one item lies inside the metadata region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Byte offset from the start of the metadata region.
    pub offset: u32,
    /// Bytes.
    pub length: u32,
}

/// The metadata table's entries for the items we read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetadataTable {
    /// File parameters.
    pub file_parameters: Option<Item>,
    /// Virtual disk size.
    pub virtual_disk_size: Option<Item>,
    /// Page 83 data.
    pub page83: Option<Item>,
    /// Logical sector size.
    pub logical_sector_size: Option<Item>,
    /// Physical sector size.
    pub physical_sector_size: Option<Item>,
    /// Parent locator.
    pub parent_locator: Option<Item>,
}

/// Parses the 64 KiB metadata table at the start of a metadata region of `region_len` bytes.
pub fn parse_metadata_table(
    b: &[u8],
    region_len: u32,
) -> std::result::Result<MetadataTable, TableError> {
    use TableError::{Corrupt, Unsupported};
    if b.len() < TABLE_LEN || &b[0..8] != b"metadata" {
        return Err(Corrupt("no \"metadata\" signature".into()));
    }
    let n = u32::from(le16(b, 10));
    if n > MAX_TABLE_ENTRIES {
        return Err(Corrupt(format!(
            "{n} entries (at most {MAX_TABLE_ENTRIES})"
        )));
    }
    let mut t = MetadataTable::default();
    for i in 0..n as usize {
        let e = &b[32 + 32 * i..64 + 32 * i];
        let guid = Guid(bytes16(e, 0));
        let item = Item {
            offset: le32(e, 16),
            length: le32(e, 20),
        };
        let required = le32(e, 24) & 4 != 0;
        let slot = match guid {
            g if g == FILE_PARAMETERS => &mut t.file_parameters,
            g if g == VIRTUAL_DISK_SIZE => &mut t.virtual_disk_size,
            g if g == PAGE83_DATA => &mut t.page83,
            g if g == LOGICAL_SECTOR_SIZE => &mut t.logical_sector_size,
            g if g == PHYSICAL_SECTOR_SIZE => &mut t.physical_sector_size,
            g if g == PARENT_LOCATOR => &mut t.parent_locator,
            g if required => {
                return Err(Unsupported(format!(
                    "required metadata item {g} is not one this reader knows"
                )))
            }
            _ => continue,
        };
        let end = u64::from(item.offset) + u64::from(item.length);
        if item.length > MAX_ITEM_LEN
            || (item.length > 0 && (item.offset < TABLE_LEN as u32 || end > u64::from(region_len)))
        {
            return Err(Corrupt(format!(
                "metadata item {guid} ({} bytes at {:#x}) lies outside the metadata region",
                item.length, item.offset
            )));
        }
        if slot.replace(item).is_some() {
            return Err(Corrupt(format!("metadata item {guid} is listed twice")));
        }
    }
    Ok(t)
}

/// The virtual disk's parameters, from the metadata items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Payload block size (power of two, 1..=256 MiB).
    pub block_size: u32,
    /// The blocks stay allocated (a fixed VHDX).
    pub leave_allocated: bool,
    /// A differencing VHDX.
    pub has_parent: bool,
    /// Guest-visible size in bytes.
    pub disk_size: u64,
    /// 512 or 4096.
    pub logical_sector: u32,
    /// 512 or 4096.
    pub physical_sector: u32,
    /// SCSI page 83 id.
    pub page83: Guid,
}

impl Params {
    /// Payload blocks per chunk (per sector bitmap block).
    pub fn chunk_ratio(&self) -> u64 {
        SECTORS_PER_BITMAP * u64::from(self.logical_sector) / u64::from(self.block_size)
    }
    /// Payload blocks covering the disk.
    pub fn data_blocks(&self) -> u64 {
        self.disk_size.div_ceil(u64::from(self.block_size))
    }
    /// BAT entries the disk needs (payload and sector bitmap entries interleaved).
    pub fn bat_entries(&self) -> u64 {
        let (d, cr) = (self.data_blocks(), self.chunk_ratio());
        if self.has_parent {
            d.div_ceil(cr) * (cr + 1)
        } else if d == 0 {
            0
        } else {
            d + (d - 1) / cr
        }
    }
    /// BAT index of payload block `block`.
    pub fn payload_index(&self, block: u64) -> u64 {
        block + block / self.chunk_ratio()
    }
    /// BAT index of the sector bitmap entry of chunk `chunk`.
    pub fn bitmap_index(&self, chunk: u64) -> u64 {
        chunk * (self.chunk_ratio() + 1) + self.chunk_ratio()
    }
}

/// Decodes the items' bytes (`fp`: file parameters, `size`, `ls`/`ps`: sector sizes, `p83`).
pub fn parse_params(
    fp: &[u8],
    size: &[u8],
    ls: &[u8],
    ps: &[u8],
    p83: &[u8],
) -> std::result::Result<Params, String> {
    if fp.len() < 8 || size.len() < 8 || ls.len() < 4 || ps.len() < 4 || p83.len() < 16 {
        return Err("a metadata item is shorter than its value".into());
    }
    let block_size = le32(fp, 0);
    let flags = le32(fp, 4);
    let p = Params {
        block_size,
        leave_allocated: flags & 1 != 0,
        has_parent: flags & 2 != 0,
        disk_size: le64(size, 0),
        logical_sector: le32(ls, 0),
        physical_sector: le32(ps, 0),
        page83: Guid(bytes16(p83, 0)),
    };
    if !block_size.is_power_of_two() || !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Err(format!(
            "block size {block_size} is not a power of two from 1 MiB to 256 MiB"
        ));
    }
    for (what, v) in [
        ("logical", p.logical_sector),
        ("physical", p.physical_sector),
    ] {
        if v != 512 && v != 4096 {
            return Err(format!("{what} sector size {v} (512 or 4096)"));
        }
    }
    if p.disk_size > MAX_DISK_SIZE || p.disk_size % u64::from(p.logical_sector) != 0 {
        return Err(format!(
            "virtual disk size {} is over 64 TiB or not a multiple of the {}-byte sector",
            p.disk_size, p.logical_sector
        ));
    }
    Ok(p)
}

/// Payload block states (the low 3 bits of a BAT entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    /// 0: not in this file (a differencing disk reads its parent).
    NotPresent,
    /// 1: contents undefined (read as zeros).
    Undefined,
    /// 2: reads as zeros.
    Zero,
    /// 3 (and 5, the 0.95 draft's value, accepted like qemu): unmapped, read as zeros.
    Unmapped,
    /// 6: the whole block is in the file.
    FullyPresent,
    /// 7: the sector bitmap says which sectors are in the file (differencing only).
    PartiallyPresent,
    /// 4: reserved.
    Reserved(u8),
}

impl BlockState {
    /// The state of a payload BAT entry.
    pub fn of(entry: u64) -> BlockState {
        match entry & 7 {
            0 => BlockState::NotPresent,
            1 => BlockState::Undefined,
            2 => BlockState::Zero,
            3 | 5 => BlockState::Unmapped,
            6 => BlockState::FullyPresent,
            7 => BlockState::PartiallyPresent,
            s => BlockState::Reserved(s as u8),
        }
    }
}

/// The file offset a BAT entry points at (FileOffsetMB, bits 20..64, in bytes).
pub fn entry_offset(entry: u64) -> u64 {
    entry & !((1 << 20) - 1)
}

/// Sector bitmap entry state: present.
pub const SB_BLOCK_PRESENT: u64 = 6;

/// The parent locator's entries, decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParentLocator {
    /// `(key, value)` pairs in the order stored.
    pub entries: Vec<(String, String)>,
}

impl ParentLocator {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses the parent locator item (`b` is the whole item).
pub fn parse_parent_locator(b: &[u8]) -> std::result::Result<ParentLocator, TableError> {
    use TableError::{Corrupt, Unsupported};
    if b.len() < 20 {
        return Err(Corrupt("parent locator shorter than its header".into()));
    }
    let kind = Guid(bytes16(b, 0));
    if kind != PARENT_TYPE_VHDX {
        return Err(Unsupported(format!(
            "parent locator type {kind} (only VHDX parents, {PARENT_TYPE_VHDX}, are read)"
        )));
    }
    let n = usize::from(le16(b, 18));
    if 20 + 12 * n > b.len() {
        return Err(Corrupt(format!(
            "{n} key/value entries do not fit the {}-byte locator",
            b.len()
        )));
    }
    let text = |off: u32, len: u16, what: &str| -> std::result::Result<String, TableError> {
        let (off, len) = (off as usize, usize::from(len));
        let bytes = b
            .get(off..off.saturating_add(len))
            .filter(|_| len > 0 && len % 2 == 0)
            .ok_or_else(|| {
                Corrupt(format!(
                    "parent locator {what} ({len} bytes at {off}) lies outside the locator"
                ))
            })?;
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16(&units)
            .map_err(|_| Corrupt(format!("parent locator {what} is not valid UTF-16")))
    };
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let e = &b[20 + 12 * i..32 + 12 * i];
        let key = text(le32(e, 0), le16(e, 8), "key")?;
        let value = text(le32(e, 4), le16(e, 10), "value")?;
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(Corrupt(format!("parent locator key {key:?} appears twice")));
        }
        entries.push((key, value));
    }
    Ok(ParentLocator { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_print_and_parse_in_microsoft_order() {
        assert_eq!(
            BAT_REGION.to_string(),
            "2dc27766-f623-4200-9d64-115e9bfd4a08"
        );
        assert_eq!(
            Guid::parse("{2DC27766-F623-4200-9D64-115E9BFD4A08}"),
            Some(BAT_REGION)
        );
        assert_eq!(Guid::parse("2dc27766-f623-4200-9d64-115e9bfd4a0"), None);
        assert_eq!(Guid::parse("{zzc27766-f623-4200-9d64-115e9bfd4a08}"), None);
        assert!(Guid::ZERO.is_zero());
    }

    #[test]
    fn header_round_trip_and_choice() {
        let h = Header {
            sequence: 7,
            file_write_guid: BAT_REGION,
            data_write_guid: METADATA_REGION,
            log_guid: Guid::ZERO,
            log_version: 0,
            version: 1,
            log_length: 1 << 20,
            log_offset: 1 << 20,
        };
        let b = h.to_bytes();
        assert_eq!(parse_header(&b), Some(h.clone()));
        let mut bad = b.clone();
        bad[100] ^= 1;
        assert_eq!(parse_header(&bad), None);
        let mut older = h.clone();
        older.sequence = 6;
        assert_eq!(
            current_header([Some(older.clone()), Some(h.clone())]).map(|x| x.0),
            Ok(1)
        );
        assert!(current_header([None, None]).is_err());
        let mut other = h.clone();
        other.log_length = 2 << 20;
        assert!(current_header([Some(h.clone()), Some(other)]).is_err());
        assert_eq!(
            current_header([Some(h.clone()), Some(h)]).map(|x| x.0),
            Ok(0)
        );
    }

    #[test]
    fn bat_geometry() {
        let p = Params {
            block_size: 1 << 20,
            leave_allocated: false,
            has_parent: false,
            disk_size: 5 << 30,
            logical_sector: 512,
            physical_sector: 4096,
            page83: Guid::ZERO,
        };
        assert_eq!(p.chunk_ratio(), 4096);
        assert_eq!(p.data_blocks(), 5120);
        assert_eq!(p.bat_entries(), 5121);
        assert_eq!(p.payload_index(4096), 4097);
        assert_eq!(p.bitmap_index(0), 4096);
        let d = Params {
            has_parent: true,
            ..p
        };
        assert_eq!(d.bat_entries(), 2 * 4097);
        let four_k = Params {
            logical_sector: 4096,
            block_size: 256 << 20,
            ..p
        };
        assert_eq!(four_k.chunk_ratio(), 128);
    }

    #[test]
    fn parent_locator_entries() {
        let mut b = vec![0u8; 20];
        b[..16].copy_from_slice(&PARENT_TYPE_VHDX.0);
        let kv = [("parent_linkage", "{x}"), ("relative_path", ".\\p.vhdx")];
        b[18..20].copy_from_slice(&(kv.len() as u16).to_le_bytes());
        let mut strings = Vec::new();
        let base = 20 + 12 * kv.len();
        let mut table = Vec::new();
        for (k, v) in kv {
            let ku: Vec<u8> = k.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let vu: Vec<u8> = v.encode_utf16().flat_map(u16::to_le_bytes).collect();
            let ko = base + strings.len();
            strings.extend_from_slice(&ku);
            let vo = base + strings.len();
            strings.extend_from_slice(&vu);
            table.extend_from_slice(&(ko as u32).to_le_bytes());
            table.extend_from_slice(&(vo as u32).to_le_bytes());
            table.extend_from_slice(&(ku.len() as u16).to_le_bytes());
            table.extend_from_slice(&(vu.len() as u16).to_le_bytes());
        }
        b.extend_from_slice(&table);
        b.extend_from_slice(&strings);
        let l = parse_parent_locator(&b).expect("locator");
        assert_eq!(l.get("relative_path"), Some(".\\p.vhdx"));
        // A value pointing outside the item is an error, not a panic.
        let mut bad = b.clone();
        bad[20 + 4..20 + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_parent_locator(&bad).is_err());
        b[0] ^= 1;
        assert!(matches!(
            parse_parent_locator(&b),
            Err(TableError::Unsupported(_))
        ));
    }
}
