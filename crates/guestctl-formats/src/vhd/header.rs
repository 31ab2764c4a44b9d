//! The VHD footer and dynamic disk header ("Virtual Hard Disk Image Format Specification",
//! Microsoft, 2006), parsed from bytes and built back into bytes (the writer in
//! guestctl-convert uses the same code). I/O-free. Every field is big-endian.

use guestctl_block::{Error, Result};

use crate::bytes::{be16, be32, be64, bytes16};

/// Cookie of the footer.
pub const FOOTER_MAGIC: &[u8; 8] = b"conectix";
/// Cookie of the dynamic disk header.
pub const DYN_MAGIC: &[u8; 8] = b"cxsparse";
/// Bytes of the footer (images made before Virtual PC 2004 have 511).
pub const FOOTER_LEN: usize = 512;
/// Bytes of the dynamic disk header.
pub const DYN_LEN: usize = 1024;
/// Largest disk qemu (and Hyper-V) accept: 2040 GiB.
pub const MAX_DISK_BYTES: u64 = 0xff00_0000 * 512;
/// The largest CHS geometry (65535 cylinders, 16 heads, 255 sectors): images that carry it
/// are sized by `current_size` whatever made them.
pub const MAX_CHS_SECTORS: u64 = 65535 * 16 * 255;
/// Default block size of dynamic disks (and the one Hyper-V and qemu write).
pub const DEFAULT_BLOCK_SIZE: u32 = 2 << 20;
/// Seconds from the Unix epoch to the VHD epoch (2000-01-01 00:00:00 UTC).
pub const EPOCH: u64 = 946_684_800;

/// The disk types of the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskType {
    /// Data, then the footer.
    Fixed,
    /// Footer copy, dynamic header, BAT, blocks, footer.
    Dynamic,
    /// A dynamic disk whose unwritten sectors come from a parent disk.
    Differencing,
}

impl DiskType {
    /// The footer value.
    pub fn code(self) -> u32 {
        match self {
            DiskType::Fixed => 2,
            DiskType::Dynamic => 3,
            DiskType::Differencing => 4,
        }
    }
    /// The name guestctl prints (`subformat`).
    pub fn name(self) -> &'static str {
        match self {
            DiskType::Fixed => "fixed",
            DiskType::Dynamic => "dynamic",
            DiskType::Differencing => "differencing",
        }
    }
}

/// One's complement of the byte sum of `b`, with the 4 checksum bytes at `skip` counted as 0.
pub fn checksum(b: &[u8], skip: usize) -> u32 {
    let sum = b
        .iter()
        .enumerate()
        .filter(|(i, _)| !(skip..skip + 4).contains(i))
        .fold(0u32, |s, (_, &x)| s.wrapping_add(u32::from(x)));
    !sum
}

/// The hard disk footer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// Feature bits (bit 1 "reserved" is always set).
    pub features: u32,
    /// File format version (0x00010000).
    pub version: u32,
    /// Offset of the dynamic disk header; `u64::MAX` for fixed disks.
    pub data_offset: u64,
    /// Creation time, seconds since 2000-01-01 UTC.
    pub timestamp: u32,
    /// The application that made the image (`"vpc "`, `"qemu"`, `"win "`, ...).
    pub creator_app: [u8; 4],
    /// Its version (major << 16 | minor).
    pub creator_version: u32,
    /// Its host OS (`"Wi2k"`, `"Mac "`).
    pub creator_os: [u8; 4],
    /// Size at creation.
    pub original_size: u64,
    /// Current size in bytes.
    pub current_size: u64,
    /// CHS geometry: cylinders.
    pub cylinders: u16,
    /// Heads.
    pub heads: u8,
    /// Sectors per track.
    pub sectors: u8,
    /// The raw disk type (see [`Footer::disk_type`]).
    pub disk_type_code: u32,
    /// The stored checksum.
    pub checksum: u32,
    /// Unique id (a differencing child names its parent by it).
    pub unique_id: [u8; 16],
    /// Saved-state flag.
    pub saved_state: u8,
}

fn corrupt(what: &'static str, msg: String, at: u64) -> Error {
    Error::corrupt(msg).structure(what).at(at)
}

impl Footer {
    /// Parses a footer (511 or 512 bytes) found at byte `at` of the file, verifying the cookie
    /// and checksum.
    pub fn parse(b: &[u8], at: u64) -> Result<Footer> {
        const S: &str = "vhd footer";
        if b.len() < FOOTER_LEN - 1 || &b[..8] != FOOTER_MAGIC {
            return Err(corrupt(S, "no \"conectix\" cookie".into(), at));
        }
        let stored = be32(b, 64);
        let computed = checksum(b, 64);
        if stored != computed {
            return Err(corrupt(
                S,
                format!(
                    "checksum {stored:#010x} does not match the footer's bytes ({computed:#010x})"
                ),
                at,
            ));
        }
        let mut app = [0u8; 4];
        app.copy_from_slice(&b[28..32]);
        let mut os = [0u8; 4];
        os.copy_from_slice(&b[36..40]);
        Ok(Footer {
            features: be32(b, 8),
            version: be32(b, 12),
            data_offset: be64(b, 16),
            timestamp: be32(b, 24),
            creator_app: app,
            creator_version: be32(b, 32),
            creator_os: os,
            original_size: be64(b, 40),
            current_size: be64(b, 48),
            cylinders: be16(b, 56),
            heads: b[58],
            sectors: b[59],
            disk_type_code: be32(b, 60),
            checksum: stored,
            unique_id: bytes16(b, 68),
            saved_state: b[84],
        })
    }

    /// The footer as 512 bytes, with its checksum computed.
    pub fn to_bytes(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[..8].copy_from_slice(FOOTER_MAGIC);
        b[8..12].copy_from_slice(&self.features.to_be_bytes());
        b[12..16].copy_from_slice(&self.version.to_be_bytes());
        b[16..24].copy_from_slice(&self.data_offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.timestamp.to_be_bytes());
        b[28..32].copy_from_slice(&self.creator_app);
        b[32..36].copy_from_slice(&self.creator_version.to_be_bytes());
        b[36..40].copy_from_slice(&self.creator_os);
        b[40..48].copy_from_slice(&self.original_size.to_be_bytes());
        b[48..56].copy_from_slice(&self.current_size.to_be_bytes());
        b[56..58].copy_from_slice(&self.cylinders.to_be_bytes());
        b[58] = self.heads;
        b[59] = self.sectors;
        b[60..64].copy_from_slice(&self.disk_type_code.to_be_bytes());
        b[68..84].copy_from_slice(&self.unique_id);
        b[84] = self.saved_state;
        let c = checksum(&b, 64);
        b[64..68].copy_from_slice(&c.to_be_bytes());
        b
    }

    /// A footer for a disk of `size` bytes (whole sectors) made by `creator_app`: features
    /// and version as the spec sets them, `current_size` = `size`, and the spec's CHS
    /// geometry when it addresses exactly `size`, otherwise the largest geometry (which every
    /// reader takes as "use current_size", as qemu's `force_size=on` writes it).
    pub fn new(
        size: u64,
        kind: DiskType,
        data_offset: u64,
        creator_app: [u8; 4],
        timestamp: u32,
        unique_id: [u8; 16],
    ) -> Footer {
        let sectors = size / 512;
        let (c, h, s) = geometry(sectors);
        let exact = u64::from(c) * u64::from(h) * u64::from(s) == sectors;
        let (c, h, s) = if exact { (c, h, s) } else { (65535, 16, 255) };
        Footer {
            features: 2,
            version: 0x0001_0000,
            data_offset,
            timestamp,
            creator_app,
            creator_version: 0x0001_0000,
            creator_os: *b"Wi2k",
            original_size: size,
            current_size: size,
            cylinders: c,
            heads: h,
            sectors: s,
            disk_type_code: kind.code(),
            checksum: 0,
            unique_id,
            saved_state: 0,
        }
    }

    /// The disk type, or None for a value the spec does not define (0 none, 1 and 5
    /// deprecated).
    pub fn disk_type(&self) -> Option<DiskType> {
        match self.disk_type_code {
            2 => Some(DiskType::Fixed),
            3 => Some(DiskType::Dynamic),
            4 => Some(DiskType::Differencing),
            _ => None,
        }
    }

    /// Sectors the CHS geometry addresses.
    pub fn chs_sectors(&self) -> u64 {
        u64::from(self.cylinders) * u64::from(self.heads) * u64::from(self.sectors)
    }

    /// True when the guest-visible size comes from the CHS geometry rather than
    /// `current_size`. qemu 10's rule: Virtual PC (`"vpc "`) and older qemu (`"qemu"`) size
    /// disks by their geometry, every other creator (Hyper-V `"win "`, qemu's
    /// `force_size` `"qem2"`, Disk2vhd `"d2v "`, XenServer `"tap\0"`, Azure `"wa\0\0"`, ...) by
    /// `current_size`; and a disk with the largest geometry is always sized by
    /// `current_size`, since its geometry cannot describe it.
    pub fn size_from_chs(&self) -> bool {
        matches!(&self.creator_app, b"vpc " | b"qemu") && self.chs_sectors() != MAX_CHS_SECTORS
    }

    /// The guest-visible size in bytes, as `qemu-img info` reports it (whole sectors).
    pub fn virtual_size(&self) -> u64 {
        if self.size_from_chs() {
            self.chs_sectors() * 512
        } else {
            self.current_size / 512 * 512
        }
    }

    /// `creator_app` as text (NULs dropped).
    pub fn creator(&self) -> String {
        String::from_utf8_lossy(&self.creator_app)
            .trim_end_matches('\0')
            .to_string()
    }
}

/// The CHS geometry of the spec's appendix for a disk of `sectors` 512-byte sectors (rounded
/// down; at most 65535/16/255).
pub fn geometry(sectors: u64) -> (u16, u8, u8) {
    let total = sectors.min(MAX_CHS_SECTORS);
    let (spt, heads, cth) = if total >= 65535 * 16 * 63 {
        (255u64, 16u64, total / 255)
    } else {
        let mut spt = 17u64;
        let mut cth = total / spt;
        let mut heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
        (spt, heads, cth)
    };
    ((cth / heads).min(65535) as u16, heads as u8, spt as u8)
}

/// A parent locator entry of the dynamic disk header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Locator {
    /// Platform code (`W2ru`, `W2ku`, `MacX`, ...; 0 = unused).
    pub code: u32,
    /// Space reserved for the locator data (sectors by the spec; some writers store bytes).
    pub data_space: u32,
    /// Bytes of locator data.
    pub data_len: u32,
    /// Byte offset of the locator data in the file.
    pub data_offset: u64,
}

/// Platform codes of parent locators.
pub mod platform {
    /// Relative Windows path, UTF-16LE.
    pub const W2RU: u32 = u32::from_be_bytes(*b"W2ru");
    /// Absolute Windows path, UTF-16LE.
    pub const W2KU: u32 = u32::from_be_bytes(*b"W2ku");
    /// A Mac OS X file URL, UTF-8.
    pub const MACX: u32 = u32::from_be_bytes(*b"MacX");
    /// A Mac OS alias record (not a path; not followed).
    pub const MAC: u32 = u32::from_be_bytes(*b"Mac ");
}

/// The dynamic disk header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynHeader {
    /// Unused (`u64::MAX`).
    pub data_offset: u64,
    /// Byte offset of the BAT.
    pub table_offset: u64,
    /// Header version (0x00010000).
    pub version: u32,
    /// BAT entries.
    pub max_table_entries: u32,
    /// Bytes per block (a power of two).
    pub block_size: u32,
    /// The stored checksum.
    pub checksum: u32,
    /// Unique id of the parent (differencing disks).
    pub parent_uuid: [u8; 16],
    /// Modification time of the parent, seconds since 2000.
    pub parent_timestamp: u32,
    /// The parent's file name (UTF-16BE in the file).
    pub parent_name: String,
    /// The eight parent locators.
    pub locators: [Locator; 8],
}

impl DynHeader {
    /// Parses the header found at byte `at` (1024 bytes), verifying cookie and checksum.
    pub fn parse(b: &[u8], at: u64) -> Result<DynHeader> {
        const S: &str = "vhd dynamic disk header";
        if b.len() < DYN_LEN || &b[..8] != DYN_MAGIC {
            return Err(corrupt(S, "no \"cxsparse\" cookie".into(), at));
        }
        let stored = be32(b, 36);
        let computed = checksum(&b[..DYN_LEN], 36);
        if stored != computed {
            return Err(corrupt(
                S,
                format!(
                    "checksum {stored:#010x} does not match the header's bytes ({computed:#010x})"
                ),
                at,
            ));
        }
        let units: Vec<u16> = b[64..576]
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .take_while(|&u| u != 0)
            .collect();
        let mut locators = [Locator::default(); 8];
        for (i, l) in locators.iter_mut().enumerate() {
            let o = 576 + i * 24;
            *l = Locator {
                code: be32(b, o),
                data_space: be32(b, o + 4),
                data_len: be32(b, o + 8),
                data_offset: be64(b, o + 16),
            };
        }
        Ok(DynHeader {
            data_offset: be64(b, 8),
            table_offset: be64(b, 16),
            version: be32(b, 24),
            max_table_entries: be32(b, 28),
            block_size: be32(b, 32),
            checksum: stored,
            parent_uuid: bytes16(b, 40),
            parent_timestamp: be32(b, 56),
            parent_name: String::from_utf16_lossy(&units),
            locators,
        })
    }

    /// The header as 1024 bytes with its checksum computed. The parent name is cut to the
    /// 256 UTF-16 units that fit.
    pub fn to_bytes(&self) -> [u8; DYN_LEN] {
        let mut b = [0u8; DYN_LEN];
        b[..8].copy_from_slice(DYN_MAGIC);
        b[8..16].copy_from_slice(&self.data_offset.to_be_bytes());
        b[16..24].copy_from_slice(&self.table_offset.to_be_bytes());
        b[24..28].copy_from_slice(&self.version.to_be_bytes());
        b[28..32].copy_from_slice(&self.max_table_entries.to_be_bytes());
        b[32..36].copy_from_slice(&self.block_size.to_be_bytes());
        b[40..56].copy_from_slice(&self.parent_uuid);
        b[56..60].copy_from_slice(&self.parent_timestamp.to_be_bytes());
        for (i, u) in self.parent_name.encode_utf16().take(256).enumerate() {
            b[64 + 2 * i..66 + 2 * i].copy_from_slice(&u.to_be_bytes());
        }
        for (i, l) in self.locators.iter().enumerate() {
            let o = 576 + i * 24;
            b[o..o + 4].copy_from_slice(&l.code.to_be_bytes());
            b[o + 4..o + 8].copy_from_slice(&l.data_space.to_be_bytes());
            b[o + 8..o + 12].copy_from_slice(&l.data_len.to_be_bytes());
            b[o + 16..o + 24].copy_from_slice(&l.data_offset.to_be_bytes());
        }
        let c = checksum(&b, 36);
        b[36..40].copy_from_slice(&c.to_be_bytes());
        b
    }
}

/// Bytes of one block's sector bitmap: a bit per sector, rounded up to whole sectors.
pub fn bitmap_bytes(block_size: u64) -> u64 {
    (block_size / 512).div_ceil(8).div_ceil(512) * 512
}

/// The path a parent locator's data spells, or None for platforms that hold no path (Mac
/// aliases, the deprecated Wi2r/Wi2k codes) and for undecodable data. Windows paths get `/`
/// separators; a `MacX` file URL loses its `file://[localhost]` prefix and percent escapes.
pub fn locator_path(code: u32, data: &[u8]) -> Option<String> {
    let s = match code {
        platform::W2RU | platform::W2KU => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&u| u != 0)
                .collect();
            String::from_utf16(&units).ok()?.replace('\\', "/")
        }
        platform::MACX => {
            let text = std::str::from_utf8(data).ok()?.trim_end_matches('\0');
            let rest = text.strip_prefix("file://")?;
            let rest = rest.strip_prefix("localhost").unwrap_or(rest);
            percent_decode(rest)?
        }
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A footer with the spec's (rounded-down) geometry, whatever it addresses.
    pub(crate) fn footer(creator: &[u8; 4], size: u64, kind: DiskType) -> Footer {
        let data_offset = if kind == DiskType::Fixed {
            u64::MAX
        } else {
            512
        };
        let mut f = Footer::new(size, kind, data_offset, *creator, 0, [7; 16]);
        (f.cylinders, f.heads, f.sectors) = geometry(size / 512);
        f
    }

    #[test]
    fn footer_round_trips_and_checksums() {
        let f = footer(b"qemu", 5 << 20, DiskType::Dynamic);
        let b = f.to_bytes();
        let g = Footer::parse(&b, 0).expect("parse");
        assert_eq!(g.current_size, f.current_size);
        assert_eq!(g.disk_type(), Some(DiskType::Dynamic));
        // 511-byte footers of old Virtual PC versions parse too.
        assert!(Footer::parse(&b[..511], 0).is_ok());
        let mut bad = b;
        bad[100] ^= 1;
        let e = Footer::parse(&bad, 0x1000).expect_err("checksum");
        assert!(
            e.to_string()
                .contains("vhd footer at offset 0x1000: checksum"),
            "{e}"
        );
    }

    #[test]
    fn size_rule_follows_qemu() {
        // 5 MB: CHS 152/4/17 = 10336 sectors (5291 KiB) < current_size.
        let mut f = footer(b"qemu", 5_000_000 / 512 * 512, DiskType::Fixed);
        assert_eq!((f.cylinders, f.heads, f.sectors), (143, 4, 17));
        assert_eq!(f.virtual_size(), 143 * 4 * 17 * 512);
        f.creator_app = *b"vpc ";
        assert!(f.size_from_chs());
        for app in [
            b"qem2", b"win ", b"d2v ", b"tap\0", b"wa\0\0", b"CTXS", b"xyz ",
        ] {
            f.creator_app = *app;
            assert_eq!(f.virtual_size(), 5_000_000 / 512 * 512, "{app:?}");
        }
        f.creator_app = *b"qemu";
        (f.cylinders, f.heads, f.sectors) = (65535, 16, 255);
        assert_eq!(f.virtual_size(), f.current_size);
        // current_size is cut to whole sectors.
        f.creator_app = *b"win ";
        f.current_size = 1000;
        assert_eq!(f.virtual_size(), 512);
    }

    #[test]
    fn geometry_matches_the_spec_appendix() {
        assert_eq!(geometry(0), (0, 4, 17));
        assert_eq!(geometry(MAX_CHS_SECTORS + 5), (65535, 16, 255));
        // 127 GiB: past 65535*16*63 sectors.
        let (c, h, s) = geometry(127 << 21);
        assert_eq!((h, s), (16, 255));
        assert_eq!(u64::from(c), (127u64 << 21) / 255 / 16);
    }

    #[test]
    fn dyn_header_round_trips() {
        let mut locators = [Locator::default(); 8];
        locators[0] = Locator {
            code: platform::W2RU,
            data_space: 1,
            data_len: 20,
            data_offset: 4096,
        };
        let h = DynHeader {
            data_offset: u64::MAX,
            table_offset: 1536,
            version: 0x0001_0000,
            max_table_entries: 3,
            block_size: DEFAULT_BLOCK_SIZE,
            checksum: 0,
            parent_uuid: [9; 16],
            parent_timestamp: 5,
            parent_name: "päränt.vhd".into(),
            locators,
        };
        let b = h.to_bytes();
        let g = DynHeader::parse(&b, 512).expect("parse");
        assert_eq!(g.parent_name, "päränt.vhd");
        assert_eq!(g.locators, locators);
        assert_eq!(g.table_offset, 1536);
        let mut bad = b;
        bad[1000] = 1;
        assert!(DynHeader::parse(&bad, 512).is_err());
    }

    #[test]
    fn locators_decode() {
        let w: Vec<u8> = ".\\dir\\p.vhd\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(
            locator_path(platform::W2RU, &w).as_deref(),
            Some("./dir/p.vhd")
        );
        assert_eq!(
            locator_path(platform::MACX, b"file://localhost/Users/a%20b/p.vhd").as_deref(),
            Some("/Users/a b/p.vhd")
        );
        assert_eq!(locator_path(platform::MACX, b"file:///x/%zz"), None);
        assert_eq!(locator_path(platform::MAC, b"alias"), None);
        assert_eq!(bitmap_bytes(2 << 20), 512);
        assert_eq!(bitmap_bytes(512), 512);
        assert_eq!(bitmap_bytes(32 << 20), 8192);
    }
}
