//! The hosted sparse extent header (magic "KDMV"), parsed from its 512 bytes. I/O-free.

use guestctl_block::{Error, Result};

/// "KDMV" as a little-endian u32.
pub const MAGIC: &[u8; 4] = b"KDMV";
/// gdOffset value meaning "the grain directory is located by the footer".
pub const GD_AT_END: u64 = u64::MAX;
/// Largest grain accepted (64 MiB; real images use 64 KiB). qemu allows up to 1 GiB, which
/// would make a single decompression buffer unbounded for practical purposes.
pub const MAX_GRAIN_SECTORS: u64 = 1 << 17;
/// Largest capacity accepted (64 TiB).
pub const MAX_CAPACITY_SECTORS: u64 = 1 << 37;
/// Largest grain directory accepted, in entries (a 64 MiB table).
pub const MAX_GD_ENTRIES: u64 = 1 << 24;

/// Header flags.
pub mod flags {
    /// A redundant grain directory exists.
    pub const REDUNDANT_GT: u32 = 1 << 1;
    /// GTE value 1 means "zero grain".
    pub const ZEROED_GTE: u32 = 1 << 2;
    /// Grains are compressed.
    pub const COMPRESSED: u32 = 1 << 16;
    /// Grains carry markers (streamOptimized).
    pub const MARKERS: u32 = 1 << 17;
}

/// A parsed sparse header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseHeader {
    /// 1, 2 or 3.
    pub version: u32,
    /// Feature flags.
    pub flags: u32,
    /// Extent capacity in sectors.
    pub capacity: u64,
    /// Grain size in sectors.
    pub grain_sectors: u64,
    /// Embedded descriptor: start sector.
    pub descriptor_offset: u64,
    /// Embedded descriptor: sectors.
    pub descriptor_size: u64,
    /// Grain table entries per grain table.
    pub gtes_per_gt: u32,
    /// Grain directory sector (or [`GD_AT_END`]).
    pub gd_offset: u64,
    /// Not closed cleanly.
    pub unclean_shutdown: bool,
    /// 0 none, 1 deflate.
    pub compress_algorithm: u16,
}

fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn le64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl SparseHeader {
    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_sectors * 512
    }
    /// Guest bytes one grain table covers.
    pub fn gt_coverage(&self) -> u64 {
        self.grain_bytes() * u64::from(self.gtes_per_gt)
    }
    /// Entries the grain directory has.
    pub fn gd_entries(&self) -> u64 {
        (self.capacity * 512).div_ceil(self.gt_coverage())
    }
    /// Grains are compressed.
    pub fn compressed(&self) -> bool {
        self.flags & flags::COMPRESSED != 0
    }
    /// Grains carry markers.
    pub fn markers(&self) -> bool {
        self.flags & flags::MARKERS != 0
    }
    /// GTE 1 means a zero grain.
    pub fn zeroed_gte(&self) -> bool {
        self.flags & flags::ZEROED_GTE != 0
    }
}

/// Parses and validates a sparse header from at least 512 bytes. `gd_offset` may still be
/// [`GD_AT_END`]; the caller then reads the footer and parses it with this same function.
pub fn parse(b: &[u8]) -> Result<SparseHeader> {
    let bad =
        |msg: String, off: u64| Err(Error::corrupt(msg).structure("vmdk sparse header").at(off));
    if b.len() < 512 {
        return bad(
            format!("file is too short for a sparse header ({} bytes)", b.len()),
            0,
        );
    }
    if &b[0..4] != MAGIC {
        return bad("bad magic (expected KDMV)".into(), 0);
    }
    let h = SparseHeader {
        version: le32(b, 4),
        flags: le32(b, 8),
        capacity: le64(b, 12),
        grain_sectors: le64(b, 20),
        descriptor_offset: le64(b, 28),
        descriptor_size: le64(b, 36),
        gtes_per_gt: le32(b, 44),
        gd_offset: le64(b, 56),
        unclean_shutdown: b[72] != 0,
        compress_algorithm: u16::from_le_bytes([b[77], b[78]]),
    };
    if !(1..=3).contains(&h.version) {
        return Err(
            Error::unsupported(format!("vmdk sparse extent version {}", h.version))
                .structure("vmdk sparse header")
                .at(4),
        );
    }
    if h.grain_sectors == 0
        || !h.grain_sectors.is_power_of_two()
        || h.grain_sectors > MAX_GRAIN_SECTORS
    {
        return bad(
            format!("grain size of {} sectors is invalid", h.grain_sectors),
            20,
        );
    }
    if h.gtes_per_gt == 0 || h.gtes_per_gt > 512 {
        return bad(
            format!(
                "{} grain table entries per table (1..=512 allowed)",
                h.gtes_per_gt
            ),
            44,
        );
    }
    if h.capacity > MAX_CAPACITY_SECTORS {
        return bad(
            format!("capacity of {} sectors is too large", h.capacity),
            12,
        );
    }
    if h.gd_entries() > MAX_GD_ENTRIES {
        return bad(
            format!("grain directory of {} entries is too large", h.gd_entries()),
            56,
        );
    }
    if h.compressed() && h.compress_algorithm != 1 {
        return Err(Error::unsupported(format!(
            "vmdk compression algorithm {}",
            h.compress_algorithm
        ))
        .structure("vmdk sparse header")
        .at(77));
    }
    if h.descriptor_size.saturating_mul(512) > super::descriptor::MAX_DESCRIPTOR_BYTES {
        return bad(
            format!(
                "embedded descriptor of {} sectors is too large",
                h.descriptor_size
            ),
            36,
        );
    }
    Ok(h)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn header(capacity: u64, grain: u64) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[0..4].copy_from_slice(MAGIC);
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[12..20].copy_from_slice(&capacity.to_le_bytes());
        b[20..28].copy_from_slice(&grain.to_le_bytes());
        b[44..48].copy_from_slice(&512u32.to_le_bytes());
        b[56..64].copy_from_slice(&21u64.to_le_bytes());
        b
    }

    #[test]
    fn parses_and_bounds() {
        let h = parse(&header(2048, 128)).expect("ok");
        assert_eq!(h.grain_bytes(), 65536);
        assert_eq!(h.gd_entries(), 1);
        assert!(parse(&header(2048, 0)).is_err());
        assert!(parse(&header(2048, 3)).is_err());
        assert!(parse(&header(2048, 1 << 30)).is_err());
        assert!(parse(&header(u64::MAX, 128)).is_err());
        assert!(parse(&header(1 << 37, 1)).is_err(), "gd too large");
        let mut b = header(2048, 128);
        b[44..48].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(parse(&b).is_err());
        let mut b = header(2048, 128);
        b[8..12].copy_from_slice(&flags::COMPRESSED.to_le_bytes());
        assert!(parse(&b).is_err(), "compressed with algorithm 0");
        assert!(parse(&b[..100]).is_err());
    }
}
